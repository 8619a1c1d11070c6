import Crypto
import DS2Core
import Foundation

/// A record ready to store: encoded bytes plus what the writer tracks about it.
public struct EncodedRecord: Sendable {
  public var key: [UInt8]
  public var value: [UInt8]
  public var frames: Int
  public var samples: Int
  /// Statistics of the record's stored (quantized) feature values.
  public var statistics: FeatureStatistics

  /// Encodes `record`, quantizing features to `dtype` and measuring statistics of the
  /// values exactly as stored.
  public init(_ record: ShardRecord, dtype: FeatureDType) {
    var values = record.features.values
    self.init(
      id: record.id, transcript: record.transcript, labels: record.labels, sampleCount: record.sampleCount,
      frames: record.frames, bins: record.bins, features: &values, dtype: dtype, infoJSON: record.infoJSON)
  }

  /// Encodes a record whose `frames × bins` features are in `features`; on return they
  /// hold the stored (quantized) values. One pass over the features writes the bytes and
  /// quantizes; one more measures statistics.
  public init(
    id: String, transcript: String, labels: [Int32], sampleCount: Int, frames: Int, bins: Int,
    features: inout [Float], dtype: FeatureDType, infoJSON: String
  ) {
    precondition(features.count == frames * bins, "features must hold frames × bins values")
    key = RecordLayout.key(frames: frames, id: id)
    self.frames = frames
    samples = sampleCount
    value = features.withUnsafeMutableBufferPointer { values in
      ShardRecord.encode(
        id: id, transcript: transcript, labels: labels, sampleCount: sampleCount, frames: frames, bins: bins,
        dtype: dtype, infoJSON: infoJSON
      ) { destination in
        FeatureCodec.encodeAndQuantize(values, into: destination, as: dtype)
      }
    }
    var statistics = FeatureStatistics(bins: bins)
    features.withUnsafeBufferPointer { statistics.add(frames: frames, values: $0) }
    self.statistics = statistics
  }
}

/// Writes the records of one split, in the order given, into size-capped LMDB shards.
///
/// Records must arrive in ascending key order (frames, then id). A new shard starts when
/// the next record would push the current one's estimated file size past
/// `maxShardBytes`. Each shard is written as `<file>.partial`, synced, then renamed;
/// only then is it reported to `onShardFinished` (which a resumable run journals).
/// Transactions commit every `commitBytes` of values, a rule that depends only on the
/// records, and every shard starts from an empty file, so a shard's bytes depend only on
/// its records: a run resumed at shard `k` writes the same files as an uninterrupted one.
public final class SplitWriter {
  public let directory: String
  public let split: String
  public let bins: Int
  public let maxShardBytes: Int
  private let commitBytes = 8 << 20

  private var shards: [ShardInfo] = []
  private let firstShardIndex: Int
  /// Called after each shard is complete and renamed, before the next one starts.
  public var onShardFinished: ((ShardInfo) throws -> Void)?
  private var environment: LMDBEnvironment?
  private var pending: [(key: [UInt8], value: [UInt8])] = []
  private var pendingBytes = 0
  private var current = ShardAccumulator(bins: 0)
  private var lastKey: [UInt8]?

  /// - Parameters:
  ///   - directory: the dataset directory; shards go to `<directory>/shards/`.
  ///   - maxShardBytes: the size cap of one shard file.
  ///   - firstShardIndex: the index of the first shard this writer writes (a resumed
  ///     run continues after the shards it already has).
  public init(directory: String, split: String, bins: Int, maxShardBytes: Int, firstShardIndex: Int = 0) throws {
    self.firstShardIndex = firstShardIndex
    self.directory = directory
    self.split = split
    self.bins = bins
    self.maxShardBytes = maxShardBytes
    current = ShardAccumulator(bins: bins)
    try FileManager.default.createDirectory(
      atPath: directory + "/shards", withIntermediateDirectories: true)
  }

  /// Estimated file bytes one value occupies: LMDB overflow pages (16-byte header) plus
  /// its share of leaf and branch pages (node header, key, page number, slot).
  static func estimatedBytes(valueSize: Int, keySize: Int) -> Int {
    let page = 4096
    return ((valueSize + 16 + page - 1) / page) * page + 2 * (keySize + 24)
  }

  /// Fixed file bytes of a shard: two meta pages, the root, free-list pages — with room.
  static let shardOverheadBytes = 16 * 4096
  /// Pages a commit may leave behind (copied-on-write leaf/branch path, free list).
  static let commitOverheadBytes = 4 * 4096

  /// Stops writing: the shard in progress is closed and its `.partial` file removed.
  /// Completed shards stay.
  public func abandon() {
    environment = nil
    pending.removeAll()
    pendingBytes = 0
    try? FileManager.default.removeItem(atPath: directory + "/" + shardFileName + ".partial")
  }

  /// Appends one record.
  /// - Throws: `LMDBError` (disk or map full, I/O).
  public func append(_ record: EncodedRecord) throws {
    if let lastKey {
      precondition(lastKey.lexicographicallyPrecedes(record.key), "records must arrive in ascending key order")
    }
    lastKey = record.key
    let size = Self.estimatedBytes(valueSize: record.value.count, keySize: record.key.count)
    let growth = size + (pendingBytes + record.value.count >= commitBytes ? Self.commitOverheadBytes : 0)
    if current.records > 0 && current.estimatedBytes + growth > maxShardBytes {
      try finishShard()
    }
    if environment == nil { try startShard(firstRecordBytes: size) }
    current.add(record, estimatedBytes: growth)
    pending.append((record.key, record.value))
    pendingBytes += record.value.count
    if pendingBytes >= commitBytes { try flush() }
  }

  /// Finishes the last shard and returns the shards this writer wrote, in order.
  public func finish() throws -> [ShardInfo] {
    if environment != nil { try finishShard() }
    return shards
  }

  private var shardFileName: String {
    let index = String(firstShardIndex + shards.count)
    return "shards/\(split)-" + String(repeating: "0", count: max(0, 5 - index.count)) + index + ".mdb"
  }

  private func startShard(firstRecordBytes: Int) throws {
    let path = directory + "/" + shardFileName + ".partial"
    try? FileManager.default.removeItem(atPath: path)
    // Room for the cap (or one oversized record), branch pages and page reuse slack.
    let capacity = max(maxShardBytes, firstRecordBytes)
    let mapSize = ((capacity + capacity / 8 + (4 << 20)) / 4096 + 1) * 4096
    environment = try LMDBEnvironment(path: path, readOnly: false, mapSizeBytes: mapSize)
    current = ShardAccumulator(bins: bins)
    current.estimatedBytes = Self.shardOverheadBytes
  }

  private func flush() throws {
    guard let environment, !pending.isEmpty else { return }
    try environment.append(pending)
    pending.removeAll(keepingCapacity: true)
    pendingBytes = 0
  }

  private func finishShard() throws {
    try flush()
    guard let environment else { return }
    try environment.sync()
    self.environment = nil  // closes the file
    let name = shardFileName
    let partial = directory + "/" + name + ".partial"
    let final = directory + "/" + name
    let (bytes, digest) = try Self.sizeAndDigest(path: partial)
    try? FileManager.default.removeItem(atPath: final)
    try FileManager.default.moveItem(atPath: partial, toPath: final)
    let info = ShardInfo(
      file: name, records: current.records, minFrames: current.minFrames, maxFrames: current.maxFrames,
      frames: current.frames, samples: current.samples, bytes: bytes, sha256: digest, statistics: current.statistics)
    shards.append(info)
    try onShardFinished?(info)
  }

  /// Size and SHA-256 (lowercase hex) of a file, read in 4 MiB blocks.
  public static func sizeAndDigest(path: String) throws -> (Int, String) {
    guard let handle = FileHandle(forReadingAtPath: path) else {
      throw ConfigurationError("\(path): cannot open for checksumming")
    }
    defer { try? handle.close() }
    var hasher = SHA256()
    var size = 0
    while true {
      let block = try handle.read(upToCount: 4 << 20) ?? Data()
      if block.isEmpty { break }
      size += block.count
      hasher.update(data: block)
    }
    let digest = hasher.finalize().map { byte in
      let hex = String(byte, radix: 16)
      return hex.count == 1 ? "0" + hex : hex
    }.joined()
    return (size, digest)
  }
}

/// Running totals of the shard being written.
private struct ShardAccumulator {
  var records = 0
  var frames = 0
  var samples = 0
  var minFrames = Int.max
  var maxFrames = 0
  var estimatedBytes = 0
  var statistics: FeatureStatistics

  init(bins: Int) { statistics = FeatureStatistics(bins: bins) }

  mutating func add(_ record: EncodedRecord, estimatedBytes size: Int) {
    records += 1
    frames += record.frames
    samples += record.samples
    minFrames = min(minFrames, record.frames)
    maxFrames = max(maxFrames, record.frames)
    estimatedBytes += size
    statistics.merge(record.statistics)
  }
}
