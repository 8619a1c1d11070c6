import Augmentation
import Crypto
import DS2Core
import Foundation
import Shards

/// What listing and probing decided for one recipe, written once by the plan step
/// (`prepare --plan-only`, `augment --plan-only`) into `partitions/plan.bin`, so that each
/// task of a partitioned run reads it instead of listing and probing the whole corpus
/// (docs/SCALING.md, "The plan step").
///
/// A task trusts the plan for the corpus as a whole and checks the files it reads itself:
/// each audio file's size and modification time must still be those recorded here.
///
/// File layout: the 8 bytes `DS2PLAN\n`, a little-endian UInt32 version, a length-prefixed
/// JSON header (identity, splits, rejections, vocabulary), the utterance table (binary,
/// `ByteWriter`), and the SHA-256 of everything before it, which is also the plan's
/// `digest` (recorded by every part, compared by `merge`).
struct StoredPlan: Equatable {
  static let fileName = "plan.bin"
  static let magic = Array("DS2PLAN\n".utf8)
  /// 2: an augment plan stores each utterance's copies' record sizes.
  static let version: UInt32 = 2
  /// Plans larger than this are refused before reading (about 40 million utterances).
  static let maxBytes = 1 << 34

  struct Header: Codable, Equatable {
    /// `Recipe.contentIdentity` of the run the plan is for.
    var identity: JSONValue
    var missingSplits: [String]
    /// Rejections of the listing, in the order found.
    var listingRejections: [ItemError]
    /// Rejections of id, transcript and header checks, in the order found.
    var probeRejections: [ItemError]
    var vocabulary: Vocabulary
    var utterances: Int
    /// Whether each utterance is followed by its augmented copies' record sizes (augment).
    var storesCopySizes: Bool = false
  }

  /// One augmented copy of an utterance as the plan step drew it: which speed (its index in
  /// `speedFactors`) and the stored size of its record, info JSON included, so that tasks
  /// need not encode every copy's info to plan shards.
  struct CopySize: Equatable, Sendable {
    var copy: Int
    var valueBytes: Int
  }

  /// An audio file as the plan saw it.
  struct FileStamp: Equatable {
    var bytes: Int64
    var modifiedNanoseconds: Int64

    /// `path`'s size and modification time, or nil when it cannot be examined.
    init?(path: String) {
      var info = stat()
      guard stat(path, &info) == 0 else { return nil }
      bytes = Int64(info.st_size)
      modifiedNanoseconds = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
    }

    init(bytes: Int64, modifiedNanoseconds: Int64) {
      self.bytes = bytes
      self.modifiedNanoseconds = modifiedNanoseconds
    }
  }

  var header: Header
  /// The probed utterances in listing order (before augmentation's copies).
  var utterances: [PlannedUtterance]
  /// `stamps[i]` is the audio file of `utterances[i]` when planned.
  var stamps: [FileStamp]
  /// `copySizes[i]`: the copies of `utterances[i]` (augment plans; nil otherwise).
  var copySizes: [[CopySize]]?

  /// Hex SHA-256 of the encoded plan (set by `encoded()` and `read`).
  private(set) var digest = ""

  init(header: Header, utterances: [PlannedUtterance], stamps: [FileStamp], copySizes: [[CopySize]]? = nil) {
    self.header = header
    self.utterances = utterances
    self.stamps = stamps
    self.copySizes = copySizes
    self.header.storesCopySizes = copySizes != nil
  }

  static func == (a: StoredPlan, b: StoredPlan) -> Bool {
    a.header == b.header && a.stamps == b.stamps && a.copySizes == b.copySizes && a.utterances.count == b.utterances.count
      && zip(a.utterances, b.utterances).allSatisfy { $0.source == $1.source && $0.labels == $1.labels
        && $0.samples == $1.samples && $0.frames == $1.frames && $0.id == $1.id }
  }

  /// The file's bytes; sets `digest`.
  mutating func encoded() throws -> [UInt8] {
    // Strings repeated across utterances (split, speaker, transcript file, metadata) are
    // stored once, in a table, and referred to by index.
    var table: [String] = []
    var tableIndex: [String: UInt32] = [:]
    func intern(_ text: String?) -> UInt32 {
      guard let text else { return UInt32.max }
      if let index = tableIndex[text] { return index }
      table.append(text)
      tableIndex[text] = UInt32(table.count - 1)
      return UInt32(table.count - 1)
    }
    precondition(copySizes == nil || copySizes!.count == utterances.count, "copies for every utterance")
    var body = ByteWriter()
    for (index, (utterance, stamp)) in zip(utterances, stamps).enumerated() {
      let source = utterance.source
      body.put(source.id)
      body.put(intern(source.split))
      body.put(source.audioPath)
      body.put(Int64(source.channel ?? -1))
      body.put(source.startSeconds)
      body.put(source.durationSeconds ?? -1)
      body.put(source.transcript)
      body.put(intern(source.speaker))
      body.put(intern(source.transcriptPath))
      body.put(Int64(source.transcriptLine ?? -1))
      body.put(UInt32(utterance.labels.count))
      for label in utterance.labels { body.put(UInt32(bitPattern: label)) }
      body.put(Int64(utterance.samples))
      body.put(Int64(utterance.frames))
      // The record's metadata: the speaker, when known.
      if let speaker = source.speaker {
        body.put(UInt32(1))
        body.put(intern("speaker"))
        body.put(intern(speaker))
      } else {
        body.put(UInt32(0))
      }
      if utterance.id == source.id { body.put(UInt32.max) } else { body.put(utterance.id) }
      body.put(stamp.bytes)
      body.put(stamp.modifiedNanoseconds)
      if let copies = copySizes?[index] {
        body.put(UInt32(copies.count))
        for copy in copies {
          body.put(UInt32(copy.copy))
          body.put(Int64(copy.valueBytes))  // may pass 4 GiB: an hour of many bins in float32
        }
      }
    }
    var writer = ByteWriter()
    writer.bytes.reserveCapacity(body.bytes.count + 4096)
    writer.bytes += Self.magic
    writer.put(Self.version)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    writer.put(Array(try encoder.encode(header)))
    writer.put(UInt32(table.count))
    for text in table { writer.put(text) }
    writer.bytes += body.bytes
    let hash = Array(SHA256.hash(data: writer.bytes))
    digest = hash.map { String(format: "%02x", $0) }.joined()
    return writer.bytes + hash
  }

  /// Reads and checks a plan file, every utterance decoded.
  /// - Throws: `ConfigurationError` naming the file when it cannot be read, is not a plan,
  ///   is of another version, or is damaged (its checksum or structure is wrong).
  static func read(_ path: String) throws -> StoredPlan {
    try StoredPlan(file: try File(path: path))
  }

  /// The plan in `file`, every utterance decoded.
  /// - Throws: `ConfigurationError` for damage.
  init(file: File) throws {
    var utterances: [PlannedUtterance] = []
    var stamps: [FileStamp] = []
    utterances.reserveCapacity(file.header.utterances)
    stamps.reserveCapacity(file.header.utterances)
    var copySizes: [[CopySize]] = []
    try file.forEachUtterance { utterance, stamp, copies, _ in
      utterances.append(utterance)
      stamps.append(stamp)
      if let copies { copySizes.append(copies) }
    }
    self.init(
      header: file.header, utterances: utterances, stamps: stamps, copySizes: file.header.storesCopySizes ? copySizes : nil)
    digest = file.digest
  }

  /// A plan file read and checked (magic, version, checksum, header, string table), whose
  /// utterances are decoded when asked for: a task keeps what ordering and shard planning
  /// need for every utterance (`forEachUtterance`) and decodes whole only its own share
  /// (`utterance(at:)`).
  final class File {
    let path: String
    let header: Header
    /// Hex SHA-256 of the plan (`StoredPlan.digest`).
    let digest: String
    private var bytes: [UInt8]
    private let table: [String]
    /// Where the first utterance starts.
    private let utterancesOffset: Int

    /// - Throws: `ConfigurationError` naming the file (unreadable, not a plan, another
    ///   version, damaged).
    init(path: String) throws {
      self.path = path
      do { bytes = try RegularFile.read(path, maxBytes: StoredPlan.maxBytes) } catch {
        throw ConfigurationError("\(path): cannot read the plan: \(error)")
      }
      guard bytes.count >= magic.count + 4 + 32, Array(bytes.prefix(magic.count)) == magic else {
        throw ConfigurationError("\(path): not a ds2-data plan")
      }
      let hash = bytes.withUnsafeBytes { Array(SHA256.hash(data: UnsafeRawBufferPointer(rebasing: $0.dropLast(32)))) }
      guard hash == Array(bytes.suffix(32)) else { throw Self.damaged(path, "checksum mismatch") }
      digest = hash.map { String(format: "%02x", $0) }.joined()
      do {
        (header, table, utterancesOffset) = try bytes.withUnsafeBytes { raw in
          var reader = ByteReader(UnsafeRawBufferPointer(rebasing: raw.dropLast(32)), offset: magic.count)
          let version = try reader.uint32()
          guard version == StoredPlan.version else {
            throw ConfigurationError(
              "\(path): plan version \(version); this ds2-data reads version \(StoredPlan.version); write it again")
          }
          let header = try JSONDecoder().decode(Header.self, from: Data(try reader.blob()))
          var table: [String] = []
          for _ in 0..<(try reader.count(elementBytes: 4)) { table.append(try reader.string()) }
          return (header, table, reader.offset)
        }
      } catch let error as ConfigurationError {
        throw error
      } catch {
        throw Self.damaged(path, "\(error)")
      }
      // Each utterance takes at least 90 bytes: a larger count is damage, not a size to reserve.
      guard header.utterances >= 0, header.utterances <= bytes.count / 90 else {
        throw Self.damaged(path, "utterance count")
      }
    }

    static func damaged(_ path: String, _ why: String) -> ConfigurationError {
      ConfigurationError("\(path): damaged plan (\(why)); write it again with --plan-only")
    }

    /// Visits every utterance in plan order with its audio file's stamp, its copies' sizes
    /// (augment plans) and its offset (for `utterance(at:)`); checks that the count matches
    /// and nothing follows.
    /// - Throws: `ConfigurationError` for damage, or what `body` throws.
    func forEachUtterance(_ body: (PlannedUtterance, FileStamp, [CopySize]?, Int) throws -> Void) throws {
      try read { reader in
        for _ in 0..<header.utterances {
          let offset = reader.offset
          let (utterance, stamp, copies) = try decodeUtterance(&reader)
          try body(utterance, stamp, copies, offset)
        }
        guard reader.isAtEnd else { throw Self.damaged(path, "trailing bytes") }
      }
    }

    /// The utterance that starts at `offset` (as `forEachUtterance` gave it).
    /// - Throws: `ConfigurationError` for damage.
    func utterance(at offset: Int) throws -> (PlannedUtterance, FileStamp, [CopySize]?) {
      guard offset >= utterancesOffset, offset < bytes.count - 32 else { throw Self.damaged(path, "offset \(offset)") }
      return try read { reader in
        reader.offset = offset
        return try decodeUtterance(&reader)
      }
    }

    /// Frees the file's bytes (after the last `utterance(at:)`).
    func release() { bytes = [] }

    private func read<T>(_ body: (inout ByteReader) throws -> T) throws -> T {
      do {
        return try bytes.withUnsafeBytes { raw in
          var reader = ByteReader(UnsafeRawBufferPointer(rebasing: raw.dropLast(32)), offset: utterancesOffset)
          return try body(&reader)
        }
      } catch let error as ConfigurationError {
        throw error
      } catch {
        throw Self.damaged(path, "\(error)")
      }
    }

    private func decodeUtterance(_ reader: inout ByteReader) throws -> (PlannedUtterance, FileStamp, [CopySize]?) {
      func lookup(_ index: UInt32) throws -> String? {
        if index == UInt32.max { return nil }
        guard Int(index) < table.count else { throw ByteReader.Damaged(offset: reader.offset) }
        return table[Int(index)]
      }
      let id = try reader.string()
      guard let split = try lookup(try reader.uint32()) else { throw Self.damaged(path, "utterance \(id): no split") }
      let audioPath = try reader.string()
      let channel = try reader.int64(), start = try reader.double(), duration = try reader.double()
      let transcript = try reader.string(), speaker = try lookup(try reader.uint32())
      let transcriptPath = try lookup(try reader.uint32()), transcriptLine = try reader.int64()
      let labelCount = try reader.count(elementBytes: 4)
      var labels: [Int32] = []
      labels.reserveCapacity(labelCount)
      for _ in 0..<labelCount { labels.append(Int32(bitPattern: try reader.uint32())) }
      let samples = try reader.int64(), frames = try reader.int64()
      // The metadata is the speaker again (when known): checked, not kept twice.
      let metadataCount = try reader.count(elementBytes: 8)
      guard metadataCount == (speaker == nil ? 0 : 1) else { throw Self.damaged(path, "utterance \(id): metadata") }
      if metadataCount == 1 {
        guard try lookup(try reader.uint32()) == "speaker", try lookup(try reader.uint32()) == speaker else {
          throw Self.damaged(path, "utterance \(id): metadata")
        }
      }
      let recordId = try reader.peekUInt32() == UInt32.max ? (try reader.uint32(), id).1 : try reader.string()
      let stamp = FileStamp(bytes: try reader.int64(), modifiedNanoseconds: try reader.int64())
      var copies: [CopySize]?
      if header.storesCopySizes {
        let count = try reader.count(elementBytes: 12)
        copies = try (0..<count).map { _ in
          let copy = Int(try reader.uint32()), valueBytes = try reader.int64()
          guard valueBytes > 0 else { throw Self.damaged(path, "utterance \(id): copy size") }
          return CopySize(copy: copy, valueBytes: Int(valueBytes))
        }
      }
      guard samples > 0, samples <= 1 << 40, frames > 0, frames <= samples, channel >= -1, channel < Int64(Int32.max),
        transcriptLine >= -1, start.isFinite, duration.isFinite
      else {
        throw Self.damaged(path, "utterance \(id)")
      }
      let source = UtteranceSource(
        id: id, split: split, audioPath: audioPath, channel: channel < 0 ? nil : Int(channel), startSeconds: start,
        durationSeconds: duration < 0 ? nil : duration, transcript: transcript, speaker: speaker,
        transcriptPath: transcriptPath, transcriptLine: transcriptLine < 0 ? nil : Int(transcriptLine))
      return (
        PlannedUtterance(
          source: source, labels: labels, samples: Int(samples), frames: Int(frames), augmentation: nil, id: recordId),
        stamp, copies
      )
    }
  }

  /// Checks that the audio file at `path` still has the size and modification time the
  /// plan recorded.
  /// - Throws: `ConfigurationError` naming the file when it changed or disappeared.
  static func checkFile(_ path: String, against stamp: FileStamp, planPath: String) throws {
    guard let now = FileStamp(path: path), now == stamp else {
      throw ConfigurationError(
        "\(path) changed (or is gone) since the plan \(planPath) was written: the corpus must not change between "
          + "the plan step and the merge; write the plan again (--plan-only) into a new output and rerun every part")
    }
  }
}

/// Little-endian fixed-width integers and byte strings with a UInt32 length.
struct ByteWriter {
  var bytes: [UInt8] = []

  mutating func put(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
  mutating func put(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
  mutating func put(_ value: Int64) { put(UInt64(bitPattern: value)) }
  mutating func put(_ value: Double) { put(value.bitPattern) }
  /// A blob of any size (UInt64 length).
  mutating func put(_ blob: [UInt8]) {
    put(UInt64(blob.count))
    bytes += blob
  }
  /// A string shorter than 4 GiB (UInt32 length; `UInt32.max` is reserved).
  mutating func put(_ text: String) {
    let utf8 = text.utf8
    precondition(utf8.count < Int(UInt32.max), "string of 4 GiB")
    put(UInt32(utf8.count))
    bytes += utf8
  }
}

/// Reads what `ByteWriter` wrote from a buffer the caller keeps alive; every read is
/// bounds-checked and throws `Damaged` past the end or on invalid UTF-8.
struct ByteReader {
  struct Damaged: Error, CustomStringConvertible {
    var offset: Int
    var description: String { "truncated or malformed at byte \(offset)" }
  }

  let raw: UnsafeRawBufferPointer
  var offset: Int
  var isAtEnd: Bool { offset == raw.count }

  init(_ raw: UnsafeRawBufferPointer, offset: Int) {
    self.raw = raw
    self.offset = offset
  }

  private mutating func load<T: FixedWidthInteger>(_: T.Type) throws -> T {
    guard raw.count - offset >= MemoryLayout<T>.size else { throw Damaged(offset: offset) }
    defer { offset += MemoryLayout<T>.size }
    return T(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: T.self))
  }
  mutating func uint64() throws -> UInt64 { try load(UInt64.self) }
  mutating func uint32() throws -> UInt32 { try load(UInt32.self) }
  mutating func peekUInt32() throws -> UInt32 {
    let start = offset
    defer { offset = start }
    return try uint32()
  }
  mutating func int64() throws -> Int64 { Int64(bitPattern: try uint64()) }
  mutating func double() throws -> Double { Double(bitPattern: try uint64()) }
  /// A UInt32 count of elements of at least `elementBytes` bytes each that fit in what is left.
  mutating func count(elementBytes: Int) throws -> Int {
    let value = Int(try uint32())
    guard value <= (raw.count - offset) / elementBytes else { throw Damaged(offset: offset - 4) }
    return value
  }
  /// A blob with a UInt64 length.
  mutating func blob() throws -> [UInt8] {
    let length = try uint64()
    guard length <= UInt64(raw.count - offset) else { throw Damaged(offset: offset - 8) }
    defer { offset += Int(length) }
    return Array(raw[offset..<(offset + Int(length))])
  }
  mutating func string() throws -> String {
    let start = offset
    let length = try count(elementBytes: 1)
    guard let text = String(validating: raw[offset..<(offset + length)], as: UTF8.self) else { throw Damaged(offset: start) }
    offset += length
    return text
  }
}

extension Preparer {
  /// The plan step's end: writes `plan` to `path` unless the same plan is already there.
  /// - Throws: `ConfigurationError` when a different plan is there and parts were already
  ///   made from it, or when the file cannot be written.
  func writePlan(_ plan: StoredPlan, to path: String, report: inout PrepareReport, started: DispatchTime) throws
    -> PrepareReport
  {
    var plan = plan
    let bytes = try plan.encoded()
    let root = (path as NSString).deletingLastPathComponent
    report.planFile = path
    report.plannedUtterances = plan.utterances.count
    report.plannedSeconds = plan.utterances.reduce(0.0) { $0 + Double($1.samples) } / Double(recipe.audio.sampleRateHertz)
    report.countRejections(plan.header.listingRejections + plan.header.probeRejections)
    report.planBytes = bytes.count
    func finished() -> PrepareReport {
      report.wallSeconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
      report.peakMemoryBytes = peakResidentBytes()
      return report
    }
    let existing = try? StoredPlan.read(path)
    if let existing, existing.digest == plan.digest {
      report.planWasCurrent = true
      return finished()
    }
    let parts = PartFolder.parts(in: root)
    // A damaged or missing plan may be written again when it comes out as the one the
    // finished parts were made from (they record its digest).
    let madeFrom = parts.compactMap { index, folder in PartFolder.readManifest(folder)?.planDigest.map { (index, folder, $0) } }
    if existing == nil && madeFrom.allSatisfy({ $0.2 == plan.digest }) {
      if !parts.isEmpty {
        logger.warning("\(path) was damaged or missing; writing it again (the plan the finished parts were made from)")
      }
    } else if parts.isEmpty {
      if existing != nil {
        logger.warning("\(path) held the plan of another recipe or corpus, from which no part has run; replacing it")
      }
    } else if let (index, other) = parts.first {
      let reason =
        existing == nil
        ? "the plan in \(path) is damaged, and the corpus or recipe now gives another plan than the one part "
          + "\(madeFrom.first { $0.2 != plan.digest }?.0 ?? index) was made from"
        : "\(other): part \(index) was made from the plan now in \(path), and the corpus or recipe has changed since"
      throw ConfigurationError(reason + "; write the new plan into a new output (parts of two plans cannot be merged)")
    }
    do {
      try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    } catch {
      throw ConfigurationError("cannot create \(root): \(error.localizedDescription)")
    }
    try AtomicFile.write(bytes, to: path)
    logger.info("wrote the plan \(path): \(plan.utterances.count) utterances, \(bytes.count) bytes")
    return finished()
  }

  /// Each utterance's augmented copies as `augmenter` draws them, with their record sizes
  /// (what every task would otherwise compute for every copy), on the pool's threads.
  func copySizes(of utterances: [PlannedUtterance], augmenter: Augmenter, bins: Int) throws -> [[StoredPlan.CopySize]] {
    let recipe = self.recipe
    let dtype = recipe.shards.dtype
    return try pool.map(utterances.count) { index in
      UtterancePlanner.expand([utterances[index]], recipe: recipe, with: augmenter, reject: { _ in }).compactMap { copy in
        copy.augmentation.map {
          StoredPlan.CopySize(copy: $0.copy, valueBytes: ShardStream.plannedValueBytes(copy, bins: bins, dtype: dtype))
        }
      }
    }
  }

  /// The size and modification time of each utterance's audio file (all -1 for a file
  /// that vanished since it was probed: a task reading it then stops).
  func stamps(of utterances: [PlannedUtterance]) throws -> [StoredPlan.FileStamp] {
    try pool.map(utterances.count) { index in
      StoredPlan.FileStamp(path: utterances[index].source.audioPath)
        ?? StoredPlan.FileStamp(bytes: -1, modifiedNanoseconds: -1)
    }
  }
}
