import DS2Core
import Foundation

/// Why a dataset directory cannot be read.
public struct DatasetError: Error, Sendable, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// Applies a dataset's normalization to raw stored features.
public struct FeatureNormalizer: Sendable {
  public let mode: NormalizationMode
  private let mean: [Float]
  private let inverseStd: [Float]
  private let stdFloor: Double

  /// In `global` mode with statistics, the same normalization as a transform that decoding
  /// applies as it converts (bit-identical to `apply` after decoding).
  public let transform: BinTransform?

  public init(_ info: NormalizationInfo) {
    mode = info.mode
    stdFloor = info.stdFloor
    mean = info.mean.map { Float($0) }
    inverseStd = info.std.map { Float(1 / max($0, info.stdFloor)) }
    transform =
      mode == .global && !mean.isEmpty && mean.count == inverseStd.count
      ? BinTransform(subtract: mean, multiply: inverseStd) : nil
  }

  /// Normalizes `features` in place according to `mode`.
  /// - Throws: `DatasetError` when the features' bins differ from the statistics'.
  public func apply(_ features: inout FeatureMatrix) throws {
    let bins = features.bins
    switch mode {
    case .none:
      return
    case .global:
      guard bins == mean.count, bins == inverseStd.count else {
        throw DatasetError("features have \(bins) bins, the normalization statistics \(mean.count)")
      }
      Self.normalize(&features, mean: mean, inverseStd: inverseStd)
    case .utterance:
      var statistics = FeatureStatistics(bins: bins)
      features.values.withUnsafeBufferPointer { statistics.add(frames: features.frames, values: $0) }
      let mean = statistics.mean.map { Float($0) }
      let inverseStd = statistics.standardDeviation.map { Float(1 / max($0, stdFloor)) }
      Self.normalize(&features, mean: mean, inverseStd: inverseStd)
    }
  }

  /// (value − mean[bin]) · inverseStd[bin] for every value; both vectors have `features.bins` values.
  private static func normalize(_ features: inout FeatureMatrix, mean: [Float], inverseStd: [Float]) {
    let (frames, bins) = (features.frames, features.bins)
    features.values.withUnsafeMutableBufferPointer { values in
      mean.withUnsafeBufferPointer { mean in
        inverseStd.withUnsafeBufferPointer { inverseStd in
          guard let base = values.baseAddress, let mean = mean.baseAddress, let inverseStd = inverseStd.baseAddress
          else { return }
          // Row pointers, so that the inner loop has no checked index arithmetic and vectorizes.
          for t in 0..<frames {
            let row = base + t * bins
            for k in 0..<bins { row[k] = (row[k] - mean[k]) * inverseStd[k] }
          }
        }
      }
    }
  }
}

/// A complete dataset on disk, opened for reading.
///
/// Opening requires `manifest.json`, which ds2-data writes last and atomically: a
/// directory still being written has none and is refused.
public final class Dataset {
  public let directory: String
  public let manifest: DatasetManifest
  public let normalizer: FeatureNormalizer
  private var environments: [String: LMDBEnvironment] = [:]
  /// Map addresses of the records whose CRC-32C this reader has checked: shards are
  /// immutable and stay mapped while the dataset is open, so a record is checked on its
  /// first read only (a trainer's later epochs read it without the checksum's cost).
  private var checkedRecords = Set<UInt>()
  /// False only to measure what the checksums cost (`ds2-bench read`).
  let verifyingChecksums: Bool

  /// - Parameter verifyingChecksums: check each record's CRC-32C on its first read (the
  ///   default; false leaves damaged feature values undetected).
  /// - Throws: `DatasetError` when the directory holds no complete dataset or its
  ///   manifest cannot be decoded or has an unsupported version.
  public init(directory: String, verifyingChecksums: Bool = true) throws {
    self.directory = directory
    self.verifyingChecksums = verifyingChecksums
    let path = directory + "/manifest.json"
    var status = stat()
    guard stat(directory, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR else {
      throw DatasetError("\(directory): no such directory")
    }
    guard RegularFile.exists(path) else {
      throw DatasetError("\(directory): no manifest.json — not a ds2-data dataset, or still being written")
    }
    let data: Data
    do {
      data = Data(try RegularFile.read(path, maxBytes: DatasetManifest.maxBytes))
    } catch let error as RegularFileError {
      throw DatasetError(error.description)
    }
    let manifest: DatasetManifest
    do {
      manifest = try JSONDecoder().decode(DatasetManifest.self, from: data)
    } catch {
      throw DatasetError("\(path): cannot decode the manifest: \(error)")
    }
    guard manifest.format == DatasetManifest.formatName else {
      throw DatasetError("\(path): format is \(manifest.format), expected \(DatasetManifest.formatName)")
    }
    guard DatasetManifest.readableFormatVersions.contains(manifest.formatVersion) else {
      throw DatasetError(
        "\(path): format version \(manifest.formatVersion); this build reads versions "
          + "\(DatasetManifest.readableFormatVersions.lowerBound) to \(DatasetManifest.readableFormatVersions.upperBound)")
    }
    try manifest.validate(path: path)
    self.manifest = manifest
    self.normalizer = FeatureNormalizer(manifest.normalization)
  }

  /// The split called `name`.
  /// - Throws: `DatasetError` naming the available splits.
  public func split(_ name: String) throws -> SplitInfo {
    guard let split = manifest.split(named: name) else {
      throw DatasetError(
        "\(directory): no split \(name); it has \(manifest.splits.map(\.name).joined(separator: ", "))")
    }
    return split
  }

  func environment(for shard: ShardInfo) throws -> LMDBEnvironment {
    if let environment = environments[shard.file] { return environment }
    let path = directory + "/" + shard.file
    var status = stat()
    guard lstat(path, &status) == 0 else {
      throw DatasetError("\(path): shard listed in the manifest is missing")
    }
    guard (status.st_mode & S_IFMT) == S_IFREG else {
      throw DatasetError("\(path): shard listed in the manifest is not a regular file")
    }
    guard Int(status.st_size) == shard.bytes else {
      throw DatasetError(
        "\(path): \(status.st_size) bytes, the manifest says \(shard.bytes) (truncated, or replaced since the manifest was read)")
    }
    let environment = try LMDBEnvironment(path: path, readOnly: true)
    environments[shard.file] = environment
    return environment
  }

  /// Decodes the record stored under `key` in `shard` and checks it against the manifest
  /// (key, bins, dtype, label ids, checksum), so that no reader computes on a damaged or
  /// foreign record.
  /// - Throws: `DatasetError` naming the shard and the record.
  func checkedRecord(_ value: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer, shard: ShardInfo, normalized: Bool)
    throws -> ShardRecord
  {
    let file = directory + "/" + shard.file
    var record: ShardRecord
    do {
      let address = UInt(bitPattern: value.baseAddress)
      let firstRead = verifyingChecksums && !checkedRecords.contains(address)
      record = try ShardRecord.decode(
        value, expecting: manifest.features.dtype, verifyingChecksum: firstRead, transform: normalized ? normalizer.transform : nil)
      if firstRead { checkedRecords.insert(address) }
    } catch let error as RecordDecodingError {
      throw DatasetError("\(file): record \(RecordLayout.describe(key: key)): \(error)")
    }
    let features = manifest.features
    func bad(_ message: String) -> DatasetError { DatasetError("\(file): record \(record.id): \(message)") }
    guard record.bins == features.bins else { throw bad("\(record.bins) bins, the manifest says \(features.bins)") }
    guard record.frames >= 1 else { throw bad("no frames") }
    guard key.elementsEqual(RecordLayout.key(frames: record.frames, id: record.id)) else {
      throw bad("its key does not match its frames and id")
    }
    let vocabularySize = manifest.vocabulary.count
    guard !record.labels.contains(where: { $0 <= 0 || Int($0) >= vocabularySize }) else {
      throw bad("label id outside 1..<\(vocabularySize)")
    }
    // Global normalization was applied while decoding (the record has the manifest's bins,
    // checked above, which are the statistics' when the manifest was accepted).
    if normalized && (normalizer.transform?.bins != record.bins) {
      do { try normalizer.apply(&record.features) } catch let error as DatasetError { throw bad(error.message) }
    }
    return record
  }

  /// Whether the shards store records in groups (format 3; one per value before).
  var isGrouped: Bool { manifest.formatVersion >= 3 }

  /// Throws unless a walk through `shard` found the records its manifest entry counts.
  func checkRecordCount(_ count: Int, of shard: ShardInfo) throws {
    guard count == shard.records else {
      throw DatasetError("\(directory)/\(shard.file): \(count) records, the manifest says \(shard.records)")
    }
  }

  /// Visits the raw bytes of every record of `split` in stored (ascending length) order.
  /// The buffers are valid only during the call; return false to stop.
  /// - Throws: `DatasetError`, `LMDBError`, or what `body` throws.
  public func forEachRawRecord(
    split name: String, _ body: (_ shard: ShardInfo, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
  ) throws {
    let split = try split(name)
    for shard in split.shards {
      var keepGoing = true
      var count = 0
      do {
        try environment(for: shard).forEachRecord(grouped: isGrouped) { key, value in
          count += 1
          keepGoing = try body(shard, key, value)
          return keepGoing
        }
      } catch let error as RecordDecodingError {
        throw DatasetError("\(directory)/\(shard.file): \(error)")
      }
      if !keepGoing { return }
      try checkRecordCount(count, of: shard)
    }
  }

  /// Visits every record of `split` in stored order, decoded, checked against the manifest
  /// and (unless `normalized` is false) normalized. Return false to stop.
  /// - Throws: `DatasetError` naming the shard and record, `LMDBError`.
  public func forEachRecord(
    split name: String, normalized: Bool = true, _ body: (ShardRecord) throws -> Bool
  ) throws {
    try forEachRawRecord(split: name) { shard, key, value in
      try body(try checkedRecord(value, key: key, shard: shard, normalized: normalized))
    }
  }

  /// Reads one record by its key (`RecordLayout.key(frames:id:)`) from `shard`.
  /// - Throws: `DatasetError` naming the shard and record, `LMDBError`.
  public func record(shard: ShardInfo, key: [UInt8], normalized: Bool = true) throws -> ShardRecord? {
    try environment(for: shard).withRecord(forKey: key, grouped: isGrouped) { value in
      guard let value else { return nil }
      return try key.withUnsafeBytes { try checkedRecord(value, key: $0, shard: shard, normalized: normalized) }
    }
  }
}
