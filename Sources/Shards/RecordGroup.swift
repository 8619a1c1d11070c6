import DS2Core

/// Several consecutive records stored as one LMDB value (docs/FORMAT.md §2.3).
///
/// LMDB gives a value larger than half a page whole overflow pages, so a record stored on
/// its own wastes the rest of its last 4 KiB page: about 2 KB per record, 4 % of an 8-bit
/// record of 3 seconds. A group packs records up to `targetBytes`, so that the rounding
/// falls once per group. Layout (little-endian):
///
/// ```
/// 0        "DS2G"
/// 4        u32  CRC-32C of bytes [8, D): the count, the directory and the keys
/// 8        u32  N, the records in the group (≥ 1)
/// 12       N × (u16 key length, u32 record length)
/// 12 + 6N  the N keys, concatenated; they end at D
///          the N records, each starting at the next multiple of 8 (zero padding);
///          the value ends where the last record ends
/// ```
///
/// The group is stored under its first record's key; keys ascend within a group and
/// across groups, so a cursor walk still visits records in (frames, id) order, and the
/// record of key `k` is in the group with the greatest key ≤ `k`.
public enum RecordGroup {
  /// `"DS2G"`.
  public static let magic: [UInt8] = [0x44, 0x53, 0x32, 0x47]
  /// A group is closed once it holds this many bytes (1 MiB: the page rounding is then
  /// under 0.2 % of a group, and a writer holds at most one group and a record).
  public static let targetBytes = 1 << 20
  /// Bytes before the directory.
  static let headerBytes = 12
  /// Directory bytes per record.
  static let entryBytes = 6

  /// The record layout version of every record in a group (groups came with it).
  static let recordVersion = UInt16(FeatureDType.currentRecordVersion)

  /// Whether `value` is a group (else it is one record, as in datasets before format 3).
  @inline(__always)
  public static func isGroup(_ value: UnsafeRawBufferPointer) -> Bool {
    value.count >= 4 && value[0] == 0x44 && value[1] == 0x53 && value[2] == 0x32 && value[3] == 0x47
  }

  /// Where the records start: after the header, directory and keys, at a multiple of 8.
  @inline(__always)
  static func recordsStart(count: Int, keyBytes: Int) -> Int {
    (headerBytes + entryBytes * count + keyBytes + 7) & ~7
  }

  /// Calls `body(key, record)` for each record of the group `value` stored under
  /// `storedKey`, in order; return false to stop. Returns false when `body` stopped.
  /// - Throws: `RecordDecodingError` when the group's structure is damaged (checked whole,
  ///   with its CRC, before the first call).
  @discardableResult
  public static func forEachRecord(
    in value: UnsafeRawBufferPointer, storedKey: UnsafeRawBufferPointer,
    _ body: (_ key: UnsafeRawBufferPointer, _ record: UnsafeRawBufferPointer) throws -> Bool
  ) throws -> Bool {
    let directory = try parse(value, storedKey: storedKey)
    for entry in directory {
      let key = UnsafeRawBufferPointer(rebasing: value[entry.keyOffset..<(entry.keyOffset + entry.keyLength)])
      let record = UnsafeRawBufferPointer(rebasing: value[entry.recordOffset..<(entry.recordOffset + entry.recordLength)])
      if try !body(key, record) { return false }
    }
    return true
  }

  /// The record stored under `key` in the group `value`, or nil.
  /// - Throws: `RecordDecodingError` when the group's structure is damaged.
  public static func record(
    forKey key: UnsafeRawBufferPointer, in value: UnsafeRawBufferPointer, storedKey: UnsafeRawBufferPointer
  ) throws -> UnsafeRawBufferPointer? {
    for entry in try parse(value, storedKey: storedKey) {
      let candidate = UnsafeRawBufferPointer(rebasing: value[entry.keyOffset..<(entry.keyOffset + entry.keyLength)])
      if candidate.elementsEqual(key) {
        return UnsafeRawBufferPointer(rebasing: value[entry.recordOffset..<(entry.recordOffset + entry.recordLength)])
      }
    }
    return nil
  }

  struct Entry {
    var keyOffset: Int
    var keyLength: Int
    var recordOffset: Int
    var recordLength: Int
  }

  /// Checks the whole structure of a group and returns where its keys and records are.
  /// - Throws: `RecordDecodingError` naming what is wrong; never traps on bad bytes.
  static func parse(_ value: UnsafeRawBufferPointer, storedKey: UnsafeRawBufferPointer) throws -> [Entry] {
    func damaged(_ message: String) -> RecordDecodingError {
      RecordDecodingError("damaged record group \(RecordLayout.describe(key: storedKey)): \(message)")
    }
    guard value.count >= headerBytes, isGroup(value) else { throw damaged("\(value.count) bytes, no group header") }
    let stored = UInt32(littleEndian: value.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
    let count = Int(UInt32(littleEndian: value.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
    guard count >= 1, count <= (value.count - headerBytes) / entryBytes else {
      throw damaged("it claims \(count) records in \(value.count) bytes")
    }
    var keyBytes = 0
    for index in 0..<count {
      keyBytes += Int(UInt16(littleEndian: value.loadUnaligned(fromByteOffset: headerBytes + entryBytes * index, as: UInt16.self)))
    }
    let keysStart = headerBytes + entryBytes * count
    let keysEnd = keysStart + keyBytes
    guard keysEnd <= value.count else { throw damaged("its keys run past its \(value.count) bytes") }
    let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: value[8..<keysEnd]))
    guard computed == stored else {
      throw damaged(
        "directory checksum mismatch (stored CRC-32C \(String(format: "%08x", stored)), computed \(String(format: "%08x", computed)))")
    }
    var entries: [Entry] = []
    entries.reserveCapacity(count)
    var keyOffset = keysStart
    var recordOffset = keysEnd
    for index in 0..<count {
      let keyLength = Int(UInt16(littleEndian: value.loadUnaligned(fromByteOffset: headerBytes + entryBytes * index, as: UInt16.self)))
      let recordLength = Int(
        UInt32(littleEndian: value.loadUnaligned(fromByteOffset: headerBytes + entryBytes * index + 2, as: UInt32.self)))
      guard (1...511).contains(keyLength) else { throw damaged("record \(index) has a key of \(keyLength) bytes") }
      let padded = (recordOffset + 7) & ~7  // records start at multiples of 8
      guard padded <= value.count, value[recordOffset..<padded].allSatisfy({ $0 == 0 }) else {
        throw damaged("non-zero padding before record \(index)")
      }
      recordOffset = padded
      guard recordLength <= value.count - recordOffset else {
        throw damaged("record \(index) runs past the group's \(value.count) bytes")
      }
      // Records in groups are of the version that brought groups: an older version field
      // (which would skip the record's checksum) is damage.
      guard recordLength >= 6,
        value.loadUnaligned(fromByteOffset: recordOffset + 4, as: UInt16.self) == recordVersion.littleEndian
      else {
        throw damaged("record \(index) is not a version-\(recordVersion) record")
      }
      let entry = Entry(keyOffset: keyOffset, keyLength: keyLength, recordOffset: recordOffset, recordLength: recordLength)
      let key = UnsafeRawBufferPointer(rebasing: value[keyOffset..<(keyOffset + keyLength)])
      if let previous = entries.last {
        let previousKey = UnsafeRawBufferPointer(rebasing: value[previous.keyOffset..<(previous.keyOffset + previous.keyLength)])
        guard previousKey.lexicographicallyPrecedes(key) else { throw damaged("keys out of order at record \(index)") }
      } else {
        guard key.elementsEqual(storedKey) else { throw damaged("its first key is not the key it is stored under") }
      }
      entries.append(entry)
      keyOffset += keyLength
      recordOffset += recordLength
    }
    guard recordOffset == value.count else {
      throw damaged("its records end at byte \(recordOffset) of \(value.count)")
    }
    return entries
  }

  /// Collects records into one group value (for `SplitWriter`).
  struct Builder {
    private(set) var keys: [[UInt8]] = []
    private var recordBytes: [UInt8] = []
    private var recordLengths: [Int] = []
    private var keyBytes = 0

    var isEmpty: Bool { keys.isEmpty }
    /// The group's encoded size so far.
    var byteCount: Int { keys.isEmpty ? 0 : Self.recordsStartFor(keys.count, keyBytes) + recordBytes.count }
    private static func recordsStartFor(_ count: Int, _ keyBytes: Int) -> Int {
      RecordGroup.recordsStart(count: count, keyBytes: keyBytes)
    }

    mutating func add(key: [UInt8], record: [UInt8]) {
      if !keys.isEmpty {
        let padded = (recordBytes.count + 7) & ~7
        recordBytes.append(contentsOf: repeatElement(0, count: padded - recordBytes.count))
      }
      keys.append(key)
      keyBytes += key.count
      recordLengths.append(record.count)
      recordBytes.append(contentsOf: record)
    }

    /// The group's key and value; empties the builder.
    mutating func take() -> (key: [UInt8], value: [UInt8]) {
      precondition(!keys.isEmpty, "a group holds at least one record")
      let start = Self.recordsStartFor(keys.count, keyBytes)
      var value = [UInt8](repeating: 0, count: start)
      value.reserveCapacity(start + recordBytes.count)
      value.withUnsafeMutableBytes { raw in
        raw.copyBytes(from: RecordGroup.magic)
        raw.storeBytes(of: UInt32(keys.count).littleEndian, toByteOffset: 8, as: UInt32.self)
        var offset = headerBytes
        for (key, length) in zip(keys, recordLengths) {
          raw.storeBytes(of: UInt16(key.count).littleEndian, toByteOffset: offset, as: UInt16.self)
          raw.storeBytes(of: UInt32(length).littleEndian, toByteOffset: offset + 2, as: UInt32.self)
          offset += entryBytes
        }
        for key in keys {
          UnsafeMutableRawBufferPointer(rebasing: raw[offset..<(offset + key.count)]).copyBytes(from: key)
          offset += key.count
        }
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[8..<offset]))
        raw.storeBytes(of: crc.littleEndian, toByteOffset: 4, as: UInt32.self)
      }
      value.append(contentsOf: recordBytes)
      let key = keys[0]
      keys.removeAll(keepingCapacity: true)
      recordBytes.removeAll(keepingCapacity: true)
      recordLengths.removeAll(keepingCapacity: true)
      keyBytes = 0
      return (key, value)
    }
  }
}
