import DS2Core

/// Where one record of a split lives, and what a batcher needs to know about it without
/// decoding its features.
public struct RecordLocation: Sendable, Equatable, Hashable {
  /// Index of the shard in the split's `shards` list.
  public var shard: Int
  /// The record's LMDB key (`RecordLayout.key(frames:id:)`).
  public var key: [UInt8]
  /// Feature frames `T`.
  public var frames: Int
  /// Label count `L`.
  public var labelCount: Int
  /// Samples of the audio the features came from (at the dataset rate).
  public var sampleCount: Int

  public init(shard: Int, key: [UInt8], frames: Int, labelCount: Int, sampleCount: Int) {
    self.shard = shard
    self.key = key
    self.frames = frames
    self.labelCount = labelCount
    self.sampleCount = sampleCount
  }
}

extension Dataset {
  /// Every record of `split` in stored (ascending length) order, from a cursor walk that
  /// reads only keys and record headers (the feature blocks stay unread in the memory map).
  /// - Throws: `DatasetError` naming the shard of a malformed record, `LMDBError`.
  public func index(split name: String) throws -> [RecordLocation] {
    let split = try split(name)
    var locations: [RecordLocation] = []
    locations.reserveCapacity(split.records)
    for (shardIndex, shard) in split.shards.enumerated() {
      let first = locations.count
      do {
        try environment(for: shard).forEachRecord(grouped: isGrouped) { key, value in
          let header: ShardRecord.Header
          do { header = try ShardRecord.decodeHeader(value) } catch let error as RecordDecodingError {
            throw RecordDecodingError("record \(RecordLayout.describe(key: key)): \(error.message)")
          }
          locations.append(
            RecordLocation(
              shard: shardIndex, key: Array(key), frames: header.frames, labelCount: header.labelCount,
              sampleCount: header.sampleCount))
          return true
        }
      } catch let error as RecordDecodingError {
        throw DatasetError("\(directory)/\(shard.file): \(error)")
      }
      try checkRecordCount(locations.count - first, of: shard)
    }
    return locations
  }

  /// Reads the record at `location` of `split`, decoded and (unless `normalized` is false)
  /// normalized; only that record's bytes are touched.
  /// - Throws: `DatasetError` when the record is missing or malformed (naming the shard),
  ///   `LMDBError`.
  public func record(split name: String, at location: RecordLocation, normalized: Bool = true) throws -> ShardRecord {
    let split = try split(name)
    guard split.shards.indices.contains(location.shard) else {
      throw DatasetError("\(directory): split \(name) has no shard \(location.shard)")
    }
    let shard = split.shards[location.shard]
    let found: ShardRecord?
    do {
      found = try record(shard: shard, key: location.key, normalized: normalized)
    } catch let error as RecordDecodingError {
      throw DatasetError("\(directory)/\(shard.file): \(error)")
    }
    guard let found else {
      throw DatasetError("\(directory)/\(shard.file): no record with key \(location.key) (\(location.frames) frames)")
    }
    return found
  }
}
