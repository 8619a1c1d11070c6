import Crypto
import DS2Core
import Dispatch
import Foundation
import Synchronization

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
        FeatureCodec.encodeAndQuantize(values, bins: bins, into: destination, as: dtype)
      }
    }
    var statistics = FeatureStatistics(bins: bins)
    features.withUnsafeBufferPointer { statistics.add(frames: frames, values: $0) }
    self.statistics = statistics
  }
}

/// Completes shards in the background, in order: SHA-256, fsync, rename from `.partial`
/// to the final name, directory fsync. The writer goes on with the next shard meanwhile.
///
/// The digest is CPU work and runs where `digestOn` puts it (the pipeline hands it to
/// its own worker threads, so that finishing never takes a core beyond the run's
/// thread count); the flush and the rename are waiting, not computing, and run on the
/// finisher's serial queue. One finisher can serve the writers of several splits;
/// completions are reported in the order shards were handed over, with the position the
/// writer was at.
public final class ShardFinisher: Sendable {
  /// A shard that is durable and has its final name.
  public struct Completion: Sendable {
    public var split: String
    /// The caller's position (`SplitWriter.position`) when the shard was closed.
    public var position: Int
    public var shard: ShardInfo
  }

  private let queue = DispatchQueue(label: "ds2-data.shard-finisher", qos: .userInitiated)
  private let digestOn: @Sendable (@escaping @Sendable () -> Void) -> Void
  private let state = Mutex<(completions: [Completion], failure: Error?)>(([], nil))

  /// - Parameter digestOn: runs a digest computation; by default on a global queue.
  public init(
    digestOn: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void = { DispatchQueue.global(qos: .userInitiated).async(execute: $0) }
  ) {
    self.digestOn = digestOn
  }

  /// Finishes the closed shard at `directory/file.partial`: digest, fsync, rename to
  /// `directory/file`, then a completion carrying `shard` with its size and digest.
  func finish(split: String, position: Int, directory: String, shard: ShardInfo) {
    let partial = directory + "/" + shard.file + ".partial"
    let final = directory + "/" + shard.file
    let digest = PendingDigest()
    digestOn { digest.fulfil(Result { try SplitWriter.sizeAndDigest(path: partial) }) }
    queue.async { [self] in
      if state.withLock({ $0.failure != nil }) { return }
      do {
        try SplitWriter.synchronize(path: partial)
        var done = shard
        (done.bytes, done.sha256) = try digest.wait().get()
        try? FileManager.default.removeItem(atPath: final)
        try FileManager.default.moveItem(atPath: partial, toPath: final)
        // The new name is on disk before the journal (written after this) lists the shard.
        AtomicFile.synchronizeDirectory(containing: final)
        state.withLock { $0.completions.append(Completion(split: split, position: position, shard: done)) }
      } catch {
        state.withLock { $0.failure = error }
      }
    }
  }

  /// Starts writing the pages of `directory/file.partial` written so far to disk, without
  /// waiting (Linux `sync_file_range`; elsewhere nothing), so that its fsync when the shard
  /// is closed has little left to wait for. Runs after the finishing already queued. A
  /// hint: a failure is ignored (the fsync reports errors).
  func startWriteback(directory: String, file: String) {
    #if os(Linux)
      let partial = directory + "/" + file + ".partial"
      queue.async {
        let descriptor = open(partial, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        Writeback.start(descriptor: descriptor)
        close(descriptor)
      }
    #endif
  }

  /// Removes and returns the completions so far, and the first error a completion hit
  /// (shards handed over after that one are not completed; those before it are returned).
  public func takeCompletions() -> (completions: [Completion], failure: Error?) {
    state.withLock { state in
      let taken = state.completions
      state.completions.removeAll()
      return (taken, state.failure)
    }
  }

  /// Blocks until every handed-over shard is completed (or failed). Its digest must be
  /// able to run meanwhile (not on a thread that is waiting here).
  public func waitUntilIdle() { queue.sync {} }
}

/// A digest computed elsewhere, waited for by the finisher's queue.
private final class PendingDigest: Sendable {
  private let ready = DispatchSemaphore(value: 0)
  private let result = Mutex<Result<(Int, String), Error>?>(nil)

  func fulfil(_ result: Result<(Int, String), Error>) {
    self.result.withLock { $0 = result }
    ready.signal()
  }

  func wait() -> Result<(Int, String), Error> {
    ready.wait()
    return result.withLock { $0! }
  }
}

/// One shard of a split as planned before any record is computed (`SplitWriter.planShards`).
public struct PlannedShard: Sendable, Equatable {
  /// The position (index in the split's length order) of its first record.
  public var start: Int
  /// An upper bound of its file size if every planned record is written (what boundaries
  /// follow).
  public var estimatedBytes: Int
  /// Its file size if every planned record is written (`SplitWriter.expectedShardFileBytes`).
  public var expectedBytes: Int

  public init(start: Int, estimatedBytes: Int, expectedBytes: Int = 0) {
    self.start = start
    self.estimatedBytes = estimatedBytes
    self.expectedBytes = expectedBytes
  }
}

/// Writes the records of one split, in the order given, into size-capped LMDB shards.
///
/// Records must arrive in ascending key order (frames, then id). Where shards start is
/// planned from the planned records' sizes (`planShards`): a new shard starts where the
/// next record would push the estimated file size past `maxShardBytes`. A record that is
/// then rejected leaves its planned room unused, so no later boundary moves: a shard's
/// records depend only on the plan, which is what lets separate tasks write separate
/// shards of one dataset. A shard all of whose records are rejected is not written (its
/// index stays unused). Each shard is written as `<file>.partial`; when it is full it is
/// closed and handed to the `ShardFinisher`, which makes it durable and renames it, and
/// reports it. Records are stored in groups (`RecordGroup`) closed at `RecordGroup.targetBytes`
/// and at the shard's end; transactions commit every `commitBytes` of groups. Both rules
/// depend only on the records, and every shard starts from an empty file, so a shard's
/// bytes depend only on its records: a run resumed at shard `k` writes the same files as an
/// uninterrupted one.
public final class SplitWriter {
  public let directory: String
  public let split: String
  public let bins: Int
  public let maxShardBytes: Int
  /// The caller's position (e.g. the index of the item being written), reported with
  /// each completed shard so that a journal knows what the shard covers.
  public var position = 0
  /// The version of the rules that turn records into shard files (commit sizes, size
  /// estimates, page layout). A resume journal records it: a run is resumed only by the
  /// rules that began it, or its shards would follow two rules at once. Bump it with any
  /// change that moves shard boundaries or bytes for the same records.
  public static let layoutVersion = 4
  /// Values per transaction: small enough that a run's last commit, on its critical path,
  /// is short; large enough that the per-commit page writes stay a small part.
  static let commitBytes = 2 << 20
  /// The planned shards of the split.
  public let plannedShards: [PlannedShard]
  private let finisher: ShardFinisher
  private var nextShardIndex: Int
  private var environment: LMDBEnvironment?
  private var pending: [(key: [UInt8], value: [UInt8])] = []
  private var pendingBytes = 0
  private var group = RecordGroup.Builder()
  private var current = ShardAccumulator(bins: 0)
  private var lastKey: [UInt8]?

  /// - Parameters:
  ///   - directory: the dataset directory; shards go to `<directory>/shards/`.
  ///   - maxShardBytes: the size cap of one shard file.
  ///   - plannedShards: where the split's shards start (`planShards`); the shard of a
  ///     record is the one whose range holds `position`.
  ///   - finisher: completes closed shards in the background.
  /// - Precondition: `plannedShards` is not empty and starts at position 0.
  public init(
    directory: String, split: String, bins: Int, maxShardBytes: Int, plannedShards: [PlannedShard], finisher: ShardFinisher
  ) throws {
    precondition(plannedShards.first?.start == 0, "planned shards start at position 0")
    self.directory = directory
    self.split = split
    self.bins = bins
    self.maxShardBytes = maxShardBytes
    self.plannedShards = plannedShards
    self.nextShardIndex = 0
    self.finisher = finisher
    current = ShardAccumulator(bins: bins)
    try FileManager.default.createDirectory(
      atPath: directory + "/shards", withIntermediateDirectories: true)
  }

  /// Estimated file bytes a record adds to its shard: its bytes, key and directory entry
  /// in its group, alignment, and, for the first record of a group, the group's share of
  /// pages (its last overflow page, page header, leaf and branch room).
  static func estimatedBytes(valueSize: Int, keySize: Int, startsGroup: Bool) -> Int {
    valueSize + keySize + RecordGroup.entryBytes + 7 + (startsGroup ? 4096 + 16 + RecordGroup.headerBytes + 2 * (keySize + 24) : 0)
  }

  /// The shards of a split whose records, in order, encode to `valueSizes` bytes under
  /// keys of `keySizes` bytes: a new shard starts where the next record would push the
  /// estimated file size (`estimatedBytes`, commit overhead every `commitBytes` of values)
  /// past `maxShardBytes`. Always at least one shard, starting at 0.
  public static func planShards(valueSizes: [Int], keySizes: [Int], maxShardBytes: Int) -> [PlannedShard] {
    precondition(valueSizes.count == keySizes.count, "one key size per value size")
    var shards = [PlannedShard(start: 0, estimatedBytes: shardOverheadBytes)]
    var records = 0
    var pendingBytes = 0
    var groups = GroupSizer()
    for (index, (valueSize, keySize)) in zip(valueSizes, keySizes).enumerated() {
      func growth(startsGroup: Bool) -> Int {
        estimatedBytes(valueSize: valueSize, keySize: keySize, startsGroup: startsGroup)
          + (pendingBytes + valueSize >= commitBytes ? commitOverheadBytes : 0)
      }
      if records > 0 && shards[shards.count - 1].estimatedBytes + growth(startsGroup: groups.isEmpty) > maxShardBytes {
        shards.append(PlannedShard(start: index, estimatedBytes: shardOverheadBytes))
        records = 0
        pendingBytes = 0
        groups = GroupSizer()
      }
      shards[shards.count - 1].estimatedBytes += growth(startsGroup: groups.isEmpty)
      _ = groups.add(valueSize: valueSize, keySize: keySize)
      records += 1
      pendingBytes += valueSize
      if pendingBytes >= commitBytes { pendingBytes = 0 }
    }
    for index in shards.indices {
      let end = index + 1 < shards.count ? shards[index + 1].start : valueSizes.count
      shards[index].expectedBytes = expectedShardFileBytes(
        valueSizes: valueSizes[shards[index].start..<end], keySizes: keySizes[shards[index].start..<end])
    }
    return shards
  }

  /// Where `SplitWriter` closes record groups, from the records' sizes alone (the writer's
  /// rule: a group closes once it holds `RecordGroup.targetBytes`, and at the shard's end).
  struct GroupSizer {
    private var count = 0
    private var keyBytes = 0
    private var recordsEnd = 0
    private var firstKeyBytes = 0

    var isEmpty: Bool { count == 0 }
    /// The open group's encoded size.
    var bytes: Int { count == 0 ? 0 : RecordGroup.recordsStart(count: count, keyBytes: keyBytes) + recordsEnd }

    /// Adds a record; returns the group's (key, value) sizes when this record closed it.
    mutating func add(valueSize: Int, keySize: Int) -> (keySize: Int, valueSize: Int)? {
      if count == 0 { firstKeyBytes = keySize }
      recordsEnd = (count == 0 ? 0 : (recordsEnd + 7) & ~7) + valueSize
      count += 1
      keyBytes += keySize
      return bytes >= RecordGroup.targetBytes ? close() : nil
    }

    /// Closes the open group, if any; returns its (key, value) sizes.
    mutating func close() -> (keySize: Int, valueSize: Int)? {
      guard count > 0 else { return nil }
      defer { self = GroupSizer() }
      return (firstKeyBytes, bytes)
    }
  }

  /// The size of the shard file `SplitWriter` writes for records of `valueSizes` bytes under
  /// keys of `keySizes` bytes, appended in order: the records' groups (`GroupSizer`) laid
  /// out as LMDB lays out values (`lmdbFileBytes`). Exact on the bundled corpora and the
  /// 2-hour benchmark corpus.
  public static func expectedShardFileBytes(valueSizes: some Collection<Int>, keySizes: some Collection<Int>) -> Int {
    precondition(valueSizes.count == keySizes.count, "one key size per value size")
    var groups = GroupSizer()
    var groupValueSizes: [Int] = []
    var groupKeySizes: [Int] = []
    for (valueSize, keySize) in zip(valueSizes, keySizes) {
      if let closed = groups.add(valueSize: valueSize, keySize: keySize) {
        groupKeySizes.append(closed.keySize)
        groupValueSizes.append(closed.valueSize)
      }
    }
    if let closed = groups.close() {
      groupKeySizes.append(closed.keySize)
      groupValueSizes.append(closed.valueSize)
    }
    return lmdbFileBytes(valueSizes: groupValueSizes, keySizes: groupKeySizes)
  }

  /// The size of an LMDB file written by appending values of `valueSizes` bytes under keys
  /// of `keySizes` bytes in order, with a commit every `commitBytes` of values, with 4 KiB
  /// pages: two meta pages; per value, overflow pages (16-byte page header) or, for a
  /// value small enough, room inline; leaf pages filled in key order (a node is an 8-byte
  /// header, the key and the value or an 8-byte overflow page number, plus a 2-byte slot,
  /// on 4,080 usable bytes); branch pages above them; and the pages of free list and copied
  /// tree its commits leave (`pagesLeftByCommits`).
  static func lmdbFileBytes(valueSizes: some Collection<Int>, keySizes: some Collection<Int>) -> Int {
    let page = 4096
    let usable = page - 16
    let nodeMaximum = (usable / 2) & ~1
    var pages = 2
    var leafUsed = usable  // forces a first leaf
    var leaves = 0
    var firstKeys: [Int] = []
    var transactions = 0
    var pendingValues = 0
    for (valueSize, keySize) in zip(valueSizes, keySizes) {
      pendingValues += valueSize
      if pendingValues >= commitBytes {
        transactions += 1
        pendingValues = 0
      }
      var node = 8 + keySize
      if node + valueSize > nodeMaximum {
        node += 8
        pages += (valueSize + 16 + page - 1) / page
      } else {
        node += valueSize
      }
      let slot = ((node + 1) & ~1) + 2
      if leafUsed + slot > usable {
        leaves += 1
        leafUsed = 0
        firstKeys.append(keySize)
      }
      leafUsed += slot
    }
    pages += leaves
    // Branch levels: every child but the first carries its first key.
    if pendingValues > 0 { transactions += 1 }
    var depth = 1
    var children = firstKeys
    while children.count > 1 {
      depth += 1
      var parents: [Int] = []
      var used = usable
      for (index, keySize) in children.enumerated() {
        let slot = ((8 + (index == 0 ? 0 : keySize) + 1) & ~1) + 2
        if used + slot > usable {
          parents.append(keySize)
          used = 0
        }
        used += slot
      }
      pages += parents.count
      children = parents
    }
    pages += pagesLeftByCommits(transactions: transactions, depth: depth)
    return pages * page
  }

  /// Pages an LMDB file keeps beyond its tree and values after `transactions` appending
  /// commits into a tree of `depth` levels: each commit copies the path it changed and
  /// records the pages it freed in the free list, which later commits reuse. Measured with
  /// liblmdb 0.9: none for one transaction, 2 for two, 4 for three, then 3 + 2 · depth.
  static func pagesLeftByCommits(transactions: Int, depth: Int) -> Int {
    switch transactions {
    case ...1: return 0
    case 2: return 2
    case 3: return 4
    default: return 3 + 2 * depth
    }
  }

  /// The planned shard whose range holds `position`.
  func plannedShardIndex(containing position: Int) -> Int {
    var low = 0
    var high = plannedShards.count - 1
    while low < high {
      let middle = (low + high + 1) / 2
      if plannedShards[middle].start <= position { low = middle } else { high = middle - 1 }
    }
    return low
  }

  /// Fixed file bytes of a shard: two meta pages, the root, free-list pages — with room.
  static let shardOverheadBytes = 16 * 4096
  /// Pages a commit may leave behind (copied-on-write leaf/branch path, free list).
  static let commitOverheadBytes = 4 * 4096

  /// Stops writing: the shard in progress is closed and its `.partial` file removed.
  /// Shards already handed to the finisher are still completed.
  public func abandon() {
    environment = nil
    pending.removeAll()
    pendingBytes = 0
    group = RecordGroup.Builder()
    try? FileManager.default.removeItem(atPath: directory + "/" + shardFileName + ".partial")
  }

  /// Appends one record.
  /// - Throws: `LMDBError` (disk or map full, I/O).
  public func append(_ record: EncodedRecord) throws {
    if let lastKey {
      precondition(lastKey.lexicographicallyPrecedes(record.key), "records must arrive in ascending key order")
    }
    lastKey = record.key
    let shard = plannedShardIndex(containing: position)
    if environment != nil && shard != nextShardIndex { try closeShard() }
    let size = Self.estimatedBytes(valueSize: record.value.count, keySize: record.key.count, startsGroup: group.isEmpty)
    if environment == nil {
      nextShardIndex = shard
      try startShard(capacityBytes: max(size, plannedShards[shard].estimatedBytes))
    }
    current.add(record, estimatedBytes: size)
    group.add(key: record.key, record: record.value)
    if group.byteCount >= RecordGroup.targetBytes { try closeGroup() }
  }

  /// Moves the open group, if any, to the pending transaction; commits every `commitBytes`.
  private func closeGroup() throws {
    guard !group.isEmpty else { return }
    let (key, value) = group.take()
    pending.append((key, value))
    pendingBytes += value.count
    if pendingBytes >= Self.commitBytes { try flush() }
  }

  /// Closes the last shard and hands it to the finisher (which may still be working on
  /// it when this returns).
  public func finish() throws {
    if environment != nil { try closeShard() }
  }

  private var shardFileName: String { Self.shardFileName(split: split, index: nextShardIndex) }

  /// `shards/<split>-<index, 5 digits>.mdb`, relative to the dataset folder.
  public static func shardFileName(split: String, index: Int) -> String {
    let digits = String(index)
    return "shards/\(split)-" + String(repeating: "0", count: max(0, 5 - digits.count)) + digits + ".mdb"
  }

  private func startShard(capacityBytes: Int) throws {
    let path = directory + "/" + shardFileName + ".partial"
    try? FileManager.default.removeItem(atPath: path)
    // Room for the cap (or a larger planned shard), branch pages and page reuse slack.
    let capacity = max(maxShardBytes, capacityBytes)
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
    finisher.startWriteback(directory: directory, file: shardFileName)
  }

  private func closeShard() throws {
    try closeGroup()
    try flush()
    guard environment != nil else { return }
    self.environment = nil  // closes the file; its pages are in the page cache
    let totals = current
    finisher.finish(
      split: split, position: position, directory: directory,
      shard: ShardInfo(
        file: shardFileName, records: totals.records, minFrames: totals.minFrames, maxFrames: totals.maxFrames,
        frames: totals.frames, samples: totals.samples, bytes: 0, sha256: "", statistics: totals.statistics))
    nextShardIndex += 1
  }

  /// Flushes a closed file to disk (`fsync`).
  /// - Throws: `FileSystemError` with the call and errno.
  static func synchronize(path: String) throws {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { throw FileSystemError(path: path, operation: "open to fsync", errorNumber: errno) }
    defer { close(descriptor) }
    guard fsync(descriptor) == 0 else { throw FileSystemError(path: path, operation: "fsync", errorNumber: errno) }
  }

  /// Size and SHA-256 (lowercase hex) of a file, read in 256 KiB blocks (they stay in
  /// the L2 cache between the copy out of the page cache and the hashing: measured faster
  /// than 4 MiB blocks or mapping the file).
  /// - Throws: `FileSystemError` naming the file when it cannot be opened or read.
  public static func sizeAndDigest(path: String) throws -> (Int, String) {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else {
      throw FileSystemError(path: path, operation: "open for checksumming", errorNumber: errno)
    }
    defer { close(descriptor) }
    var hasher = SHA256()
    var total = 0
    let block = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 4096)
    defer { block.deallocate() }
    while true {
      let count = read(descriptor, block.baseAddress, block.count)
      if count < 0 {
        if errno == EINTR { continue }
        throw FileSystemError(path: path, operation: "read for checksumming", errorNumber: errno)
      }
      if count == 0 { break }
      total += count
      hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: block[0..<count]))
    }
    return (total, hex(hasher.finalize()))
  }

  private static func hex(_ digest: SHA256.Digest) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var text: [UInt8] = []
    text.reserveCapacity(2 * SHA256.Digest.byteCount)
    for byte in digest {
      text.append(digits[Int(byte >> 4)])
      text.append(digits[Int(byte & 15)])
    }
    return String(decoding: text, as: UTF8.self)
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
