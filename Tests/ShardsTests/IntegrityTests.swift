import DS2Core
import Foundation
import TestSupport
import XCTest

@testable import Shards

final class ChecksumTests: XCTestCase {
  /// RFC 3720 (iSCSI) appendix B.4 check values, and the classic "123456789".
  func testCRC32CCheckValues() {
    func crc(_ bytes: [UInt8]) -> (UInt32, UInt32) {
      bytes.withUnsafeBytes { (CRC32C.checksum($0), CRC32C.software($0)) }
    }
    let cases: [([UInt8], UInt32)] = [
      (Array("123456789".utf8), 0xE306_9283),
      ([UInt8](repeating: 0, count: 32), 0x8A91_36AA),
      ([UInt8](repeating: 0xFF, count: 32), 0x62A8_AB43),
      ((0..<32).map(UInt8.init), 0x46DD_794E),
      ((0..<32).map { UInt8(31 - $0) }, 0x113F_DB5C),
      ([], 0),
    ]
    for (bytes, expected) in cases {
      let (fast, table) = crc(bytes)
      XCTAssertEqual(fast, expected, "\(bytes.prefix(4))")
      XCTAssertEqual(table, expected, "\(bytes.prefix(4))")
    }
  }

  /// The computation used by this build equals the table-driven one at every length and
  /// alignment, and a CRC continued over pieces equals the CRC of the whole.
  func testCRC32CAgreesAcrossPathsAndPieces() {
    var generator = SeededGenerator(seed: 7)
    let bytes = (0..<40_009).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
    bytes.withUnsafeBytes { raw in
      for start in 0..<9 {
        // Around the three-lane rounds of 3 × 256 and 3 × 4096 bytes.
        for length in [0, 1, 7, 8, 9, 63, 64, 65, 767, 768, 769, 1000, 1536, 4090, 12_287, 12_288, 12_296, 25_000, 40_000] {
          let piece = UnsafeRawBufferPointer(rebasing: raw[start..<(start + length)])
          XCTAssertEqual(CRC32C.checksum(piece), CRC32C.software(piece), "start \(start) length \(length)")
        }
      }
      let whole = CRC32C.checksum(raw)
      let split = CRC32C.checksum(
        UnsafeRawBufferPointer(rebasing: raw[1000...]), continuing: CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[..<1000])))
      XCTAssertEqual(whole, split)
    }
  }

  /// Decoding (with and without the checksum in the same pass) gives the values an
  /// element-by-element reading gives (`Float16` conversion, the 8-bit formula), and the
  /// CRC the table-driven `CRC32C.software` gives, for every dtype and for blocks that
  /// leave a tail shorter than a word.
  func testDecodingWithTheChecksumEqualsTheSeparatePasses() {
    var generator = SeededGenerator(seed: 11)
    for dtype in [FeatureDType.float16, .float32, .uint8] {
      for (frames, bins) in [(0, 161), (3, 0), (1, 1), (1, 3), (3, 5), (2, 161), (7, 161), (13, 7), (300, 161)] {
       for version in [2, 3] {
        let size = dtype.featureBlockBytes(frames: frames, bins: bins, recordVersion: version)
        let bytes = (0..<size).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        bytes.withUnsafeBytes { raw in
          let (values, crc) = FeatureCodec.decodeChecking(
            raw, frames: frames, bins: bins, as: dtype, recordVersion: version, continuing: 0x1234_5678)
          // Element by element, as docs/FORMAT.md §3 states it.
          let reference: [Float] = (0..<(frames * bins)).map { i in
            switch dtype {
            case .float16: return Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            case .float32: return Float(bitPattern: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
            case .uint8 where version >= 3:
              // Record version 3: the minimum and step in float16.
              let k = i % bins
              let minimum = Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self)))
              let step = Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: 2 * (bins + k), as: UInt16.self)))
              return minimum + Float(raw[4 * bins + i]) * step
            case .uint8:
              // Record versions 1 and 2: in float32.
              let k = i % bins
              let minimum = Float(bitPattern: raw.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self))
              let step = Float(bitPattern: raw.loadUnaligned(fromByteOffset: 4 * (bins + k), as: UInt32.self))
              return minimum + Float(raw[8 * bins + i]) * step
            }
          }
          // Equal bits, or both NaN (a NaN's payload is not part of the format).
          func mismatches(_ got: [Float]) -> Int {
            zip(got, reference).filter { !($0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN)) }.count
          }
          let what = "\(dtype) \(frames)×\(bins) record version \(version)"
          XCTAssertEqual(values.count, reference.count)
          XCTAssertEqual(mismatches(values), 0, what)
          XCTAssertEqual(
            mismatches(FeatureCodec.decode(raw, frames: frames, bins: bins, as: dtype, recordVersion: version)), 0, what)
          XCTAssertEqual(crc, CRC32C.software(raw, continuing: 0x1234_5678), what)
          // The same block one byte past an 8-byte boundary (loads of any alignment).
          ([0] + bytes).withUnsafeBytes { shifted in
            let block = UnsafeRawBufferPointer(rebasing: shifted[1...])
            let (values, crc) = FeatureCodec.decodeChecking(
              block, frames: frames, bins: bins, as: dtype, recordVersion: version, continuing: 0x1234_5678)
            XCTAssertEqual(mismatches(values), 0, "\(what), unaligned")
            XCTAssertEqual(crc, CRC32C.software(raw, continuing: 0x1234_5678), "\(what), unaligned")
          }
        }
       }
      }
    }
  }

  /// A transform applied while decoding (checked or not, aligned or not) gives the values
  /// that decoding and then normalizing by rows gives, bit for bit: for bins below the
  /// vectors' 16, in blocks long enough for the checked rounds; one of other bins is ignored.
  func testDecodingAppliesTheTransformAsNormalizingAfterwards() {
    var generator = SeededGenerator(seed: 12)
    for dtype in [FeatureDType.float16, .float32, .uint8] {
      for (frames, bins) in [(1, 1), (13, 7), (400, 7), (2, 161), (300, 161), (97, 20)] {
        let size = dtype.featureBlockBytes(frames: frames, bins: bins)
        let bytes = (0..<size).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let subtract = (0..<bins).map { _ in Float(Double(generator.next() % 2000) / 100 - 10) }
        let multiply = (0..<bins).map { _ in Float(Double(generator.next() % 1000 + 1) / 400) }
        let transform = BinTransform(subtract: subtract, multiply: multiply)
        let what = "\(dtype) \(frames)×\(bins)"
        ([0] + bytes).withUnsafeBytes { padded in
          for block in [UnsafeRawBufferPointer(rebasing: padded[1...]), UnsafeRawBufferPointer(rebasing: padded[0..<size])] {
            let plain = FeatureCodec.decode(block, frames: frames, bins: bins, as: dtype)
            let reference = plain.indices.map { (plain[$0] - subtract[$0 % bins]) * multiply[$0 % bins] }
            func mismatches(_ got: [Float]) -> Int {
              zip(got, reference).filter { !($0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN)) }.count
            }
            let (checked, crc) = FeatureCodec.decodeChecking(
              block, frames: frames, bins: bins, as: dtype, continuing: 7, transform: transform)
            XCTAssertEqual(mismatches(checked), 0, what)
            XCTAssertEqual(crc, CRC32C.software(UnsafeRawBufferPointer(rebasing: block[0..<size]), continuing: 7), what)
            XCTAssertEqual(mismatches(FeatureCodec.decode(block, frames: frames, bins: bins, as: dtype, transform: transform)), 0, what)
            let other = BinTransform(subtract: [1] + subtract, multiply: [2] + multiply)
            let ignored = FeatureCodec.decode(block, frames: frames, bins: bins, as: dtype, transform: other)
            XCTAssertEqual(zip(ignored, plain).filter { !($0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN)) }.count, 0, what)
          }
        }
      }
    }
  }

  /// Every single-byte change anywhere in a record is caught by `decode`, and the header
  /// names the checksum; a version-1 record (no checksum) still decodes.
  func testRecordChecksumCatchesEveryFlippedByte() throws {
    let record = makeRecord(id: "84-121123-0001", frames: 6, info: #"{"speaker":"84"}"#)
    let bytes = record.encoded(as: .float16)
    XCTAssertEqual(try ShardRecord.decode(bytes), try ShardRecord.decode(record.encoded(as: .float16)))
    let header = try bytes.withUnsafeBytes { try ShardRecord.decodeHeader($0) }
    XCTAssertEqual(header.version, 3)
    XCTAssertEqual(header.checksum, bytes.withUnsafeBytes { RecordLayout.checksum(of: $0) })
    var caught = 0
    for index in 0..<bytes.count {
      var damaged = bytes
      damaged[index] ^= 0x20
      do {
        _ = try ShardRecord.decode(damaged)
        XCTFail("a flipped bit at byte \(index) of \(bytes.count) went unnoticed")
      } catch is RecordDecodingError {
        caught += 1
      }
    }
    XCTAssertEqual(caught, bytes.count)

    // Version 1 (as older builds wrote it): version field 1, checksum field 0.
    var version1 = bytes
    version1[4] = 1
    version1[5] = 0
    for i in 36..<40 { version1[i] = 0 }
    let old = try ShardRecord.decode(version1)
    XCTAssertEqual(old.id, record.id)
    XCTAssertEqual(old.labels, record.labels)
  }

  func testDecodeRefusesAnotherDType() throws {
    let bytes = makeRecord(id: "x", frames: 2).encoded(as: .float32)
    XCTAssertThrowsError(try bytes.withUnsafeBytes { try ShardRecord.decode($0, expecting: .float16) }) { error in
      XCTAssertTrue("\(error)".contains("float32"), "\(error)")
    }
  }
}

final class OutputFolderTests: XCTestCase {
  func testRefusesUnsafePaths() throws {
    let directory = TemporaryDirectory("owned")
    let corpus = directory.file("corpus/LibriSpeech/x")
    try Data("a".utf8).write(to: URL(fileURLWithPath: corpus))
    func refusal(_ path: String, protecting: [String] = []) -> String {
      do {
        _ = try OutputFolder(path: path, kind: .dataset, protectedPaths: protecting)
        return "accepted"
      } catch {
        return "\(error)"
      }
    }
    XCTAssertTrue(refusal("").contains("empty"))
    XCTAssertTrue(refusal("/").contains("into /"))
    XCTAssertTrue(refusal("/tmp/../").contains("into /"))
    XCTAssertTrue(refusal(directory.path + "/corpus", protecting: [directory.path + "/corpus"]).contains("is the input"))
    XCTAssertTrue(refusal(directory.path, protecting: [directory.path + "/corpus"]).contains("contains the input"))
    XCTAssertTrue(refusal(directory.path + "/corpus/../corpus/", protecting: [directory.path + "/corpus"]).contains("is the input"))
    // A folder beside or inside the input is fine.
    XCTAssertEqual(refusal(directory.path + "/out", protecting: [directory.path + "/corpus"]), "accepted")
  }

  func testRefusesFoldersItDidNotWriteAndNamesWhatIsThere() throws {
    let directory = TemporaryDirectory("owned")
    let output = directory.path + "/mine"
    try FileManager.default.createDirectory(atPath: output + "/shards", withIntermediateDirectories: true)
    try Data("notes".utf8).write(to: URL(fileURLWithPath: output + "/recipe.yaml"))
    XCTAssertThrowsError(try OutputFolder(path: output, kind: .dataset)) { error in
      XCTAssertTrue("\(error)".contains("recipe.yaml, shards"), "\(error)")
      XCTAssertTrue("\(error)".contains("not written by ds2-data"), "\(error)")
    }
    XCTAssertFalse(FileManager.default.fileExists(atPath: output + "/" + OutputFolder.markerName))
    // A file where the folder should be.
    XCTAssertThrowsError(try OutputFolder(path: output + "/recipe.yaml", kind: .dataset)) { error in
      XCTAssertTrue("\(error)".contains("not a folder"), "\(error)")
    }
  }

  func testMarksLocksAndRefusesASecondWriter() throws {
    let directory = TemporaryDirectory("owned")
    let output = directory.path + "/new/dataset"
    var first: OutputFolder? = try OutputFolder(path: output, kind: .dataset)
    XCTAssertEqual(OutputFolder.readMarker(output + "/" + OutputFolder.markerName), .dataset)
    XCTAssertThrowsError(try OutputFolder(path: output, kind: .dataset)) { error in
      XCTAssertTrue("\(error)".contains("another ds2-data process"), "\(error)")
      XCTAssertTrue("\(error)".contains("pid \(getpid())"), "\(error)")
    }
    // Another kind of output is refused by its marker, whoever holds the lock.
    XCTAssertThrowsError(try OutputFolder(path: output, kind: .trainingRun)) { error in
      XCTAssertTrue("\(error)".contains("not a training run"), "\(error)")
    }
    withExtendedLifetime(first) {}
    first = nil
    XCTAssertNoThrow(try OutputFolder(path: output, kind: .dataset))
    // Shared holders (partitioned tasks) coexist; an exclusive one waits for none of them.
    let shared1 = try OutputFolder(path: output, kind: .dataset, lock: .shared)
    let shared2 = try OutputFolder(path: output, kind: .dataset, lock: .shared)
    XCTAssertThrowsError(try OutputFolder(path: output, kind: .dataset))
    withExtendedLifetime((shared1, shared2)) {}
  }

  func testRemovesOnlyItsOwnFiles() throws {
    let directory = TemporaryDirectory("owned")
    let folder = try OutputFolder(path: directory.path + "/d", kind: .dataset)
    let root = folder.path
    for name in ["manifest.json", "notes.txt", "shards/train-00000.mdb", "shards/train-00001.mdb.partial", "shards/README"] {
      let path = root + "/" + name
      try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
      try Data("x".utf8).write(to: URL(fileURLWithPath: path))
    }
    try folder.removeOwnedFiles(["manifest.json", "recipe.yaml"])
    let left = try folder.removeOwnedFiles(inFolder: "shards") { $0.hasSuffix(".mdb") || $0.hasSuffix(".mdb.partial") }
    XCTAssertEqual(left, ["README"])
    let remaining = try FileManager.default.subpathsOfDirectory(atPath: root).sorted()
    XCTAssertEqual(remaining, [OutputFolder.markerName, OutputFolder.lockName, "notes.txt", "shards", "shards/README"])
  }

  /// A dataset folder written before the marker existed is adopted, not refused.
  func testAdoptsAnOlderDatasetFolder() throws {
    let directory = TemporaryDirectory("owned")
    let output = directory.path + "/old"
    try FileManager.default.createDirectory(atPath: output + "/shards", withIntermediateDirectories: true)
    try Data(#"{"format":"ds2-data.shards","formatVersion":1}"#.utf8).write(to: URL(fileURLWithPath: output + "/manifest.json"))
    XCTAssertNoThrow(try OutputFolder(path: output, kind: .dataset, legacyEvidence: ["manifest.json"]))
    XCTAssertEqual(OutputFolder.readMarker(output + "/" + OutputFolder.markerName), .dataset)
  }
}
