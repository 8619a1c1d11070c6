import DS2Core

extension FeatureDType {
  /// The code in the record header.
  var code: UInt8 {
    switch self {
    case .float16: return 1
    case .float32: return 2
    case .uint8: return 3
    }
  }
  init?(code: UInt8) {
    switch code {
    case 1: self = .float16
    case 2: self = .float32
    case 3: self = .uint8
    default: return nil
    }
  }
}

/// One utterance as stored in a shard: identity, text, labels and the raw log spectrogram.
///
/// See docs/FORMAT.md for the byte layout (`ShardRecord.encode` / `decode`).
public struct ShardRecord: Sendable, Equatable {
  public var id: String
  public var transcript: String
  public var labels: [Int32]
  /// Samples of the (resampled) audio the features were computed from.
  public var sampleCount: Int
  public var features: FeatureMatrix
  /// Metadata as a JSON object (speaker; for augmented copies, what was done to the audio), or "".
  public var infoJSON: String

  public init(
    id: String, transcript: String, labels: [Int32], sampleCount: Int, features: FeatureMatrix,
    infoJSON: String = ""
  ) {
    self.id = id
    self.transcript = transcript
    self.labels = labels
    self.sampleCount = sampleCount
    self.features = features
    self.infoJSON = infoJSON
  }

  public var frames: Int { features.frames }
  public var bins: Int { features.bins }
}

/// The record layout constants (docs/FORMAT.md, "Record value").
public enum RecordLayout {
  /// `"DS2R"`.
  public static let magic: [UInt8] = [0x44, 0x53, 0x32, 0x52]
  /// Version of the record layout written by this build: 2 stores a CRC-32C of the record
  /// in the header's last field (version 1 left it zero); 3 stores the 8-bit parameters in
  /// float16 (float32 before).
  public static let version = UInt16(FeatureDType.currentRecordVersion)
  /// Record versions this build reads.
  public static let readableVersions: ClosedRange<UInt16> = 1...3
  /// Byte offset of the CRC-32C in the header (version 2).
  public static let checksumOffset = 36

  /// The CRC-32C of a version-2 record: over every byte except the checksum field itself.
  public static func checksum(of record: UnsafeRawBufferPointer) -> UInt32 {
    let head = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: record[0..<checksumOffset]))
    return CRC32C.checksum(UnsafeRawBufferPointer(rebasing: record[(checksumOffset + 4)...]), continuing: head)
  }

  /// A key as text for messages: `frames/id` when it is well formed, else its bytes in hex.
  public static func describe(key: UnsafeRawBufferPointer) -> String {
    if key.count >= 4, let id = String(validating: UnsafeRawBufferPointer(rebasing: key[4...]), as: UTF8.self) {
      let frames = key[0..<4].reduce(0) { $0 << 8 | Int($1) }
      return "\(id) (\(frames) frames)"
    }
    return "with key " + key.prefix(64).map { String(format: "%02x", $0) }.joined()
  }
  /// Bytes in the fixed header.
  public static let headerSize = 40

  /// Bytes of an encoded record (docs/FORMAT.md §3): header, id, transcript and info,
  /// padded to 4 bytes, then the labels and the features.
  public static func valueSize(
    idBytes: Int, transcriptBytes: Int, infoBytes: Int, labelCount: Int, frames: Int, bins: Int, dtype: FeatureDType
  ) -> Int {
    let stringsEnd = headerSize + idBytes + transcriptBytes + infoBytes
    return ((stringsEnd + 3) & ~3) + 4 * labelCount + dtype.featureBlockBytes(frames: frames, bins: bins)
  }
  /// Longest id that fits an LMDB key (511 bytes) after the 4-byte frame prefix.
  public static let maxIdBytes = 507

  /// The LMDB key of a record: frame count as 4 bytes big-endian, then the id in UTF-8.
  /// Byte-wise key order is therefore (frames, id) order.
  public static func key(frames: Int, id: String) -> [UInt8] {
    let f = UInt32(frames)
    return [UInt8(f >> 24), UInt8((f >> 16) & 0xff), UInt8((f >> 8) & 0xff), UInt8(f & 0xff)] + Array(id.utf8)
  }
}

/// A record that cannot be decoded; names what is wrong.
public struct RecordDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { "bad record: \(message)" }
}

extension ShardRecord {
  /// Serializes a record; `writeFeatures` fills the feature block (`frames × bins`
  /// values of `dtype`, little-endian) in place.
  static func encode(
    id: String, transcript: String, labels: [Int32], sampleCount: Int, frames: Int, bins: Int,
    dtype: FeatureDType, infoJSON: String, writeFeatures: (UnsafeMutableRawBufferPointer) -> Void
  ) -> [UInt8] {
    let idBytes = Array(id.utf8)
    let textBytes = Array(transcript.utf8)
    let infoBytes = Array(infoJSON.utf8)
    let stringsEnd = RecordLayout.headerSize + idBytes.count + textBytes.count + infoBytes.count
    let labelsOffset = (stringsEnd + 3) & ~3
    let featuresOffset = labelsOffset + 4 * labels.count
    let total = RecordLayout.valueSize(
      idBytes: idBytes.count, transcriptBytes: textBytes.count, infoBytes: infoBytes.count, labelCount: labels.count,
      frames: frames, bins: bins, dtype: dtype)
    return [UInt8](unsafeUninitializedCapacity: total) { buffer, count in
      let raw = UnsafeMutableRawBufferPointer(buffer)
      UnsafeMutableRawBufferPointer(rebasing: raw[0..<featuresOffset]).initializeMemory(as: UInt8.self, repeating: 0)
      var writer = ByteWriter(raw)
      writer.bytes(RecordLayout.magic)
      writer.u16(RecordLayout.version)
      writer.u8(dtype.code)
      writer.u8(0)
      writer.u32(UInt32(frames))
      writer.u32(UInt32(bins))
      writer.u32(UInt32(labels.count))
      writer.u32(UInt32(idBytes.count))
      writer.u32(UInt32(textBytes.count))
      writer.u32(UInt32(infoBytes.count))
      writer.u32(UInt32(sampleCount))
      writer.u32(0)
      writer.bytes(idBytes)
      writer.bytes(textBytes)
      writer.bytes(infoBytes)
      writer.offset = labelsOffset
      for label in labels { writer.u32(UInt32(bitPattern: label)) }
      writeFeatures(UnsafeMutableRawBufferPointer(rebasing: raw[featuresOffset..<total]))
      let crc = RecordLayout.checksum(of: UnsafeRawBufferPointer(raw))
      raw.storeBytes(of: crc.littleEndian, toByteOffset: RecordLayout.checksumOffset, as: UInt32.self)
      count = total
    }
  }

  /// Serializes the record, storing features as `dtype`.
  public func encoded(as dtype: FeatureDType) -> [UInt8] {
    Self.encode(
      id: id, transcript: transcript, labels: labels, sampleCount: sampleCount, frames: frames, bins: bins,
      dtype: dtype, infoJSON: infoJSON
    ) { destination in
      features.values.withUnsafeBufferPointer { FeatureCodec.encode($0, bins: bins, into: destination, as: dtype) }
    }
  }

  /// The parsed header of a stored record: what a reader needs before touching features.
  public struct Header: Sendable, Equatable {
    /// Record layout version (1 to 3).
    public var version: UInt16
    /// The stored CRC-32C (from version 2; 0 in version 1).
    public var checksum: UInt32
    public var dtype: FeatureDType
    public var frames: Int
    public var bins: Int
    public var labelCount: Int
    public var sampleCount: Int
    public var id: String
    public var transcript: String
    public var infoJSON: String
    var labelsOffset: Int
    var featuresOffset: Int
  }

  /// Parses and validates a record's header and lengths.
  /// - Throws: `RecordDecodingError` for any inconsistency; never traps on bad bytes.
  public static func decodeHeader(_ bytes: UnsafeRawBufferPointer) throws -> Header {
    guard bytes.count >= RecordLayout.headerSize else {
      throw RecordDecodingError("\(bytes.count) bytes, shorter than the \(RecordLayout.headerSize)-byte header")
    }
    var reader = ByteReader(bytes)
    guard reader.bytes(4) == RecordLayout.magic else { throw RecordDecodingError("wrong magic (not a DS2R record)") }
    let version = reader.u16()
    guard RecordLayout.readableVersions.contains(version) else {
      throw RecordDecodingError("record version \(version); this build reads versions 1 to 3")
    }
    let dtypeCode = reader.u8()
    guard let dtype = FeatureDType(code: dtypeCode) else { throw RecordDecodingError("unknown dtype code \(dtypeCode)") }
    _ = reader.u8()
    let frames = Int(reader.u32())
    let bins = Int(reader.u32())
    let labelCount = Int(reader.u32())
    let idLength = Int(reader.u32())
    let textLength = Int(reader.u32())
    let infoLength = Int(reader.u32())
    let sampleCount = Int(reader.u32())
    let checksum = reader.u32()
    let stringsEnd = RecordLayout.headerSize + idLength + textLength + infoLength
    let labelsOffset = (stringsEnd + 3) & ~3
    let featuresOffset = labelsOffset + 4 * labelCount
    let featureBytes = dtype.checkedFeatureBlockBytes(frames: frames, bins: bins, recordVersion: Int(version))
    guard let featureBytes, featuresOffset + featureBytes == bytes.count else {
      throw RecordDecodingError(
        "lengths do not add up: header says \(frames)×\(bins) \(dtype.rawValue) features, "
          + "\(labelCount) labels, strings \(idLength)+\(textLength)+\(infoLength) bytes; record has \(bytes.count) bytes")
    }
    func string(_ start: Int, _ length: Int, _ what: String) throws -> String {
      guard let text = String(validating: UnsafeRawBufferPointer(rebasing: bytes[start..<start + length]), as: UTF8.self) else {
        throw RecordDecodingError("\(what) is not valid UTF-8")
      }
      return text
    }
    let idStart = RecordLayout.headerSize
    return Header(
      version: version, checksum: checksum, dtype: dtype, frames: frames, bins: bins, labelCount: labelCount, sampleCount: sampleCount,
      id: try string(idStart, idLength, "id"),
      transcript: try string(idStart + idLength, textLength, "transcript"),
      infoJSON: try string(idStart + idLength + textLength, infoLength, "info"),
      labelsOffset: labelsOffset, featuresOffset: featuresOffset)
  }

  /// Decodes a whole record, converting features to Float, after checking its CRC-32C
  /// (version 2; unless the caller checked these very bytes before) and, when given, that
  /// its features are stored as `dtype`; applies `transform` as it converts when the record
  /// has the transform's bins.
  /// - Throws: `RecordDecodingError`.
  public static func decode(
    _ bytes: UnsafeRawBufferPointer, expecting dtype: FeatureDType? = nil, verifyingChecksum: Bool = true,
    transform: BinTransform? = nil
  ) throws -> ShardRecord {
    let header = try decodeHeader(bytes)
    let checking = header.version >= 2 && verifyingChecksum
    func mismatch(_ computed: UInt32) -> RecordDecodingError {
      RecordDecodingError(
        "checksum mismatch (stored CRC-32C \(String(format: "%08x", header.checksum)), computed "
          + "\(String(format: "%08x", computed))): the record's bytes are damaged")
    }
    if let dtype, header.dtype != dtype {
      // Damage is named as damage before what it may have changed.
      if checking, case let computed = RecordLayout.checksum(of: bytes), computed != header.checksum { throw mismatch(computed) }
      throw RecordDecodingError("features stored as \(header.dtype.rawValue), the manifest says \(dtype.rawValue)")
    }
    let features = UnsafeRawBufferPointer(rebasing: bytes[header.featuresOffset..<bytes.count])
    let values: [Float]
    if checking {
      // Every byte but the checksum field: the head here, the features while they are decoded.
      let head = CRC32C.checksum(
        UnsafeRawBufferPointer(rebasing: bytes[(RecordLayout.checksumOffset + 4)..<header.featuresOffset]),
        continuing: CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<RecordLayout.checksumOffset])))
      let computed: UInt32
      (values, computed) = FeatureCodec.decodeChecking(
        features, frames: header.frames, bins: header.bins, as: header.dtype, recordVersion: Int(header.version),
        continuing: head, transform: transform)
      guard computed == header.checksum else { throw mismatch(computed) }
    } else {
      values = FeatureCodec.decode(
        features, frames: header.frames, bins: header.bins, as: header.dtype, recordVersion: Int(header.version),
        transform: transform)
    }
    var labels = [Int32](repeating: 0, count: header.labelCount)
    for i in 0..<header.labelCount {
      labels[i] = Int32(bitPattern: bytes.loadUnaligned(fromByteOffset: header.labelsOffset + 4 * i, as: UInt32.self).littleEndian)
    }
    return ShardRecord(
      id: header.id, transcript: header.transcript, labels: labels, sampleCount: header.sampleCount,
      features: FeatureMatrix(frames: header.frames, bins: header.bins, values: values),
      infoJSON: header.infoJSON)
  }

  /// Decodes a record from an array of bytes.
  public static func decode(_ bytes: [UInt8]) throws -> ShardRecord {
    try bytes.withUnsafeBytes { try decode($0) }
  }
}

/// Little-endian writer over a preallocated buffer (bounds are the caller's invariant).
struct ByteWriter {
  let buffer: UnsafeMutableRawBufferPointer
  var offset = 0
  init(_ buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }
  mutating func u8(_ v: UInt8) { buffer[offset] = v; offset += 1 }
  mutating func u16(_ v: UInt16) { buffer.storeBytes(of: v.littleEndian, toByteOffset: offset, as: UInt16.self); offset += 2 }
  mutating func u32(_ v: UInt32) { buffer.storeBytes(of: v.littleEndian, toByteOffset: offset, as: UInt32.self); offset += 4 }
  mutating func bytes(_ v: [UInt8]) {
    for b in v { buffer[offset] = b; offset += 1 }
  }
}

/// Little-endian reader; callers check lengths first.
struct ByteReader {
  let buffer: UnsafeRawBufferPointer
  var offset = 0
  init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }
  mutating func u8() -> UInt8 { defer { offset += 1 }; return buffer[offset] }
  mutating func u16() -> UInt16 {
    defer { offset += 2 }
    return buffer.loadUnaligned(fromByteOffset: offset, as: UInt16.self).littleEndian
  }
  mutating func u32() -> UInt32 {
    defer { offset += 4 }
    return buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self).littleEndian
  }
  mutating func bytes(_ n: Int) -> [UInt8] { defer { offset += n }; return Array(buffer[offset..<offset + n]) }
}
