import DS2Core
import Foundation
import TestSupport
import XCTest

@testable import Shards

/// Record groups (docs/FORMAT.md §2.3) and the readers of datasets written before them.
final class RecordGroupTests: XCTestCase {
  /// Encoded records of `count` lengths, in key order.
  func records(_ count: Int, dtype: FeatureDType = .float16) -> [EncodedRecord] {
    (0..<count).map { i in
      EncodedRecord(makeRecord(id: String(format: "spk-%03d", i), frames: 3 + 2 * i, bins: 7, seed: UInt64(i)), dtype: dtype)
    }
  }

  func group(_ records: [EncodedRecord]) -> (key: [UInt8], value: [UInt8]) {
    var builder = RecordGroup.Builder()
    for record in records { builder.add(key: record.key, record: record.value) }
    XCTAssertEqual(builder.byteCount, builder.take().value.count)
    for record in records { builder.add(key: record.key, record: record.value) }
    return builder.take()
  }

  /// A group gives back its records, in order and at multiples of 8; each is found by its
  /// key; a key between, before or after them is not; the layout is as documented.
  func testGroupsGiveBackTheirRecordsAndFindEachByKey() throws {
    let stored = records(5)
    let (key, value) = group(stored)
    XCTAssertEqual(key, stored[0].key)
    XCTAssertEqual(Array(value[0..<4]), Array("DS2G".utf8))
    XCTAssertEqual(value.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt32.self) }, 5)
    let keyBytes = stored.reduce(0) { $0 + $1.key.count }
    let directoryEnd = 12 + 6 * 5 + keyBytes
    XCTAssertEqual(
      value.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 4, as: UInt32.self) },
      value.withUnsafeBytes { CRC32C.software(UnsafeRawBufferPointer(rebasing: $0[8..<directoryEnd])) })
    try value.withUnsafeBytes { raw in
      try key.withUnsafeBytes { storedKey in
        var seen: [([UInt8], [UInt8])] = []
        try RecordGroup.forEachRecord(in: raw, storedKey: storedKey) { k, r in
          XCTAssertEqual((r.baseAddress! - raw.baseAddress!) % 8, 0, "records start at multiples of 8")
          seen.append((Array(k), Array(r)))
          return true
        }
        XCTAssertEqual(seen.map(\.0), stored.map(\.key))
        XCTAssertEqual(seen.map(\.1), stored.map(\.value))
        for record in stored {
          let found = try record.key.withUnsafeBytes { try RecordGroup.record(forKey: $0, in: raw, storedKey: storedKey) }
          XCTAssertEqual(found.map(Array.init), record.value)
        }
        for absent in [[UInt8](stored[0].key.dropLast()), stored[2].key + [0], stored[4].key + [0x7f]] {
          XCTAssertNil(try absent.withUnsafeBytes { try RecordGroup.record(forKey: $0, in: raw, storedKey: storedKey) })
        }
      }
    }
  }

  /// Every single-byte change in a group's header, directory or keys is refused as a
  /// damaged group before any record is used; so are truncation, trailing bytes, and a
  /// group under another key. Changes in a record's bytes are left to the record's CRC.
  func testEveryChangeToTheDirectoryIsRefused() throws {
    let stored = records(4)
    let (key, value) = group(stored)
    let directoryEnd = 12 + 6 * 4 + stored.reduce(0) { $0 + $1.key.count }
    func refused(_ bytes: [UInt8], under storedKey: [UInt8]) -> Bool {
      bytes.withUnsafeBytes { raw in
        storedKey.withUnsafeBytes { k in
          do {
            try RecordGroup.forEachRecord(in: raw, storedKey: k) { _, _ in true }
            return false
          } catch let error as RecordDecodingError {
            return error.message.hasPrefix("damaged record group")
          } catch {
            return false
          }
        }
      }
    }
    XCTAssertFalse(refused(value, under: key))
    for index in 0..<directoryEnd {
      for flip: UInt8 in [0x01, 0x80] {
        var damaged = value
        damaged[index] ^= flip
        XCTAssertTrue(refused(damaged, under: key), "byte \(index) ^ \(flip)")
      }
    }
    XCTAssertTrue(refused(Array(value.dropLast()), under: key))
    XCTAssertTrue(refused(value + [0], under: key))
    XCTAssertTrue(refused(Array(value.prefix(11)), under: key))
    XCTAssertTrue(refused(value, under: stored[1].key))
    // Outside the directory's CRC: the padding between records must be zero, and every
    // record must be of the version that brought groups (an older one would skip its CRC).
    var offsets: [Range<Int>] = []
    try value.withUnsafeBytes { raw in
      try key.withUnsafeBytes { k in
        try RecordGroup.forEachRecord(in: raw, storedKey: k) { _, record in
          let start = record.baseAddress! - raw.baseAddress!
          offsets.append(start..<(start + record.count))
          return true
        }
      }
    }
    let gaps = zip(offsets, offsets.dropFirst()).filter { $0.upperBound < $1.lowerBound }
    XCTAssertFalse(gaps.isEmpty, "records of these lengths are padded")
    for (before, _) in gaps {
      var damaged = value
      damaged[before.upperBound] = 0xAB
      XCTAssertTrue(refused(damaged, under: key), "padding after a record")
    }
    for range in offsets {
      for version: UInt8 in [1, 2, 4] {
        var damaged = value
        damaged[range.lowerBound + 4] = version
        XCTAssertTrue(refused(damaged, under: key), "record version \(version) in a group")
      }
    }
    // Random damage anywhere: a typed error or records whose own checks then apply; never a trap.
    var generator = SeededGenerator(seed: 5)
    for _ in 0..<2000 {
      var damaged = value
      for _ in 0..<(1 + Int(generator.next() % 4)) {
        damaged[Int(generator.next() % UInt64(damaged.count))] = UInt8(truncatingIfNeeded: generator.next())
      }
      if generator.next() % 4 == 0 { damaged = Array(damaged.prefix(Int(generator.next() % UInt64(damaged.count)))) }
      damaged.withUnsafeBytes { raw in
        key.withUnsafeBytes { k in
          _ = try? RecordGroup.forEachRecord(in: raw, storedKey: k) { _, record in
            _ = try? ShardRecord.decode(record)
            return true
          }
        }
      }
    }
  }

  /// Shards of format versions 1 and 2 (one record per value, 8-bit parameters in float32)
  /// are still read, alone or beside groups: a cursor walk and a lookup by key give their
  /// records, and a version-2 uint8 record decodes to the values its version-3 twin does.
  func testValuesWrittenBeforeGroupsAreStillRead() throws {
    let directory = TemporaryDirectory("record-groups")
    let stored = records(6, dtype: .uint8)
    let legacy = stored.map { record -> EncodedRecord in
      var copy = record
      copy.value = try! LegacyFormat.recordVersionTwo(record.value)
      return copy
    }
    for (old, new) in zip(legacy, stored) {
      XCTAssertEqual(try ShardRecord.decode(old.value).features, try ShardRecord.decode(new.value).features)
      XCTAssertEqual(try old.value.withUnsafeBytes { try ShardRecord.decodeHeader($0) }.version, 2)
    }
    // A shard as format 2 wrote it (lone version-2 records) and one as format 3 does.
    let grouped = group(Array(stored[3...]))
    for (name, pairs, isGrouped) in [
      ("lone.mdb", legacy.map { ($0.key, $0.value) }, false), ("grouped.mdb", [group(Array(stored[..<3])), grouped], true),
    ] {
      do {
        try LMDBEnvironment(path: directory.path + "/" + name, readOnly: false, mapSizeBytes: 16 << 20).append(pairs)
      }
      let environment = try LMDBEnvironment(path: directory.path + "/" + name, readOnly: true)
      var walked: [[UInt8]] = []
      try environment.forEachRecord(grouped: isGrouped) { key, record in
        walked.append(Array(key))
        _ = try ShardRecord.decode(record)
        return true
      }
      XCTAssertEqual(walked, stored.map(\.key), name)
      for (index, record) in stored.enumerated() {
        let found = try environment.withRecord(forKey: record.key, grouped: isGrouped) { $0.map(Array.init) }
        XCTAssertEqual(found, isGrouped ? record.value : legacy[index].value, name)
      }
      XCTAssertNil(try environment.withRecord(forKey: [0, 0, 0, 0], grouped: isGrouped) { $0.map(Array.init) })
      XCTAssertNil(try environment.withRecord(forKey: stored[1].key + [0], grouped: isGrouped) { $0.map(Array.init) })
      XCTAssertNil(try environment.withRecord(forKey: stored[5].key + [0], grouped: isGrouped) { $0.map(Array.init) })
      // The other layout is refused, not misread.
      XCTAssertThrowsError(try environment.forEachRecord(grouped: !isGrouped) { _, _ in true }) {
        XCTAssertTrue($0 is RecordDecodingError, "\($0)")
      }
    }
    // Keys that do not ascend from one group to the next (a record moved or duplicated
    // across groups) stop a walk.
    let path = directory.path + "/unordered.mdb"
    do {
      let first = group(Array(stored[0..<3]) + [stored[4]])  // its last key is above the next group's first
      try LMDBEnvironment(path: path, readOnly: false, mapSizeBytes: 16 << 20).append([first, group([stored[3], stored[5]])])
    }
    XCTAssertThrowsError(try LMDBEnvironment(path: path, readOnly: true).forEachRecord(grouped: true) { _, _ in true }) {
      XCTAssertTrue("\($0)".contains("keys out of order"), "\($0)")
    }
  }
}
