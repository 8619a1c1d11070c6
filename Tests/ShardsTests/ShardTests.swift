import DS2Core
import Foundation
import TestSupport
import Synchronization
import XCTest

@testable import Shards

func makeRecord(id: String, frames: Int, bins: Int = 5, seed: UInt64 = 1, info: String = "") -> ShardRecord {
  var generator = SeededGenerator(seed: seed)
  let values = (0..<(frames * bins)).map { _ in Float(generator.nextUnitDouble() * 40 - 30) }
  return ShardRecord(
    id: id, transcript: "hello world", labels: [10, 7, 14, 14, 17, 1, 25, 17, 20, 14, 6], sampleCount: frames * 160 + 160,
    features: FeatureMatrix(frames: frames, bins: bins, values: values), infoJSON: info)
}

final class RecordCodecTests: XCTestCase {
  func testRoundTripFloat32IsExact() throws {
    let record = makeRecord(id: "103-1240-0000", frames: 7, info: #"{"speaker":"103"}"#)
    let decoded = try ShardRecord.decode(record.encoded(as: .float32))
    XCTAssertEqual(decoded, record)
  }

  func testRoundTripFloat16QuantizesLikeSwiftFloat16() throws {
    let record = makeRecord(id: "ä-ü-ünicode", frames: 9)
    let decoded = try ShardRecord.decode(record.encoded(as: .float16))
    XCTAssertEqual(decoded.id, record.id)
    XCTAssertEqual(decoded.labels, record.labels)
    XCTAssertEqual(decoded.transcript, record.transcript)
    for (a, b) in zip(decoded.features.values, record.features.values) {
      XCTAssertEqual(a, Float(Float16(b)))
    }
  }

  /// uint8 (FORMAT.md §3.1): every value decodes to `minimum + code · step` with the
  /// per-bin minimum (the smallest value rounded down to float16) and step (the range over
  /// 255 rounded up to float16) of the record, within half a step of the original; the
  /// writer's quantized copy (what the statistics see) equals what a reader decodes; a
  /// constant bin of a float16 value decodes exactly; the block is 4 bytes per bin plus one
  /// per value.
  func testUInt8IsAnAffineMapPerBin() throws {
    var record = makeRecord(id: "q", frames: 11, bins: 6)
    for t in 0..<11 { record.features.values[t * 6 + 2] = -7.25 }  // a constant bin
    let bytes = record.encoded(as: .uint8)
    let decoded = try ShardRecord.decode(bytes)
    XCTAssertEqual(bytes.count, record.encoded(as: .float32).count - 4 * 11 * 6 + 4 * 6 + 11 * 6)
    for k in 0..<6 {
      let column = (0..<11).map { record.features.values[$0 * 6 + k] }
      let minimum = Float(Float16(column.min()!).nextDownIfAbove(column.min()!))
      XCTAssertLessThanOrEqual(minimum, column.min()!)
      XCTAssertLessThan(column.min()! - minimum, 0.001 * abs(column.min()!) + 1e-6, "rounded down to the next float16")
      let range = column.max()! - minimum
      let step = range > 0 ? Float(Float16(range / 255).nextUpIfBelow(range / 255)) : 0
      XCTAssertGreaterThanOrEqual(step, range / 255)
      for t in 0..<11 {
        let original = record.features.values[t * 6 + k]
        let got = decoded.features.values[t * 6 + k]
        XCTAssertLessThanOrEqual(abs(got - original), step / 2 + 1e-5 * abs(original) + 1e-6, "t \(t) k \(k)")
        let code = ((got - minimum) / (step > 0 ? step : 1)).rounded()
        XCTAssertEqual(got, minimum + code * step, "decoded as minimum + code · step")
      }
    }
    XCTAssertEqual((0..<11).map { decoded.features.values[$0 * 6 + 2] }, Array(repeating: -7.25, count: 11))
    var values = record.features.values
    let encoded = EncodedRecord(
      id: record.id, transcript: record.transcript, labels: record.labels, sampleCount: record.sampleCount, frames: 11, bins: 6,
      features: &values, dtype: .uint8, infoJSON: "")
    XCTAssertEqual(encoded.value, bytes)
    XCTAssertEqual(values, decoded.features.values, "the statistics see exactly what readers decode")
  }

  func testHalfConversionMatchesSwiftFloat16Exhaustively() {
    // Every float16 value, the midpoints between neighbours (ties to even), and values
    // near them, against the standard library's conversion.
    for bits in UInt16.min...UInt16.max {
      let half = Float16(bitPattern: bits)
      guard !half.isNaN else { continue }
      let value = Float(half)
      XCTAssertEqual(FeatureCodec.halfBits(value), half.bitPattern, "\(value)")
      let next = Float(half.nextUp)
      if next.isFinite && value.isFinite {
        for probe in [(value + next) / 2, value.nextUp, next.nextDown] {
          XCTAssertEqual(FeatureCodec.halfBits(probe), Float16(probe).bitPattern, "\(probe)")
        }
      }
    }
    XCTAssertEqual(FeatureCodec.halfBits(1e10), Float16(Float(1e10)).bitPattern)
    for bits in UInt16.min...UInt16.max {
      let expected = Float(Float16(bitPattern: bits))
      let actual = FeatureCodec.float(fromHalf: bits)
      if expected.isNaN { XCTAssertTrue(actual.isNaN) } else { XCTAssertEqual(actual.bitPattern, expected.bitPattern, "\(bits)") }
    }
    XCTAssertTrue(Float16(bitPattern: FeatureCodec.halfBits(.nan)).isNaN)
  }

  func testLayoutIsAsDocumented() throws {
    let record = ShardRecord(
      id: "ab", transcript: "c", labels: [5], sampleCount: 480,
      features: FeatureMatrix(frames: 1, bins: 2, values: [1, -2]), infoJSON: "")
    let bytes = record.encoded(as: .float32)
    // header 40 + id 2 + text 1 = 43 → labels at 44, features at 48, 2 × 4 bytes.
    XCTAssertEqual(bytes.count, 56)
    XCTAssertEqual(Array(bytes[0..<4]), Array("DS2R".utf8))
    XCTAssertEqual(Array(bytes[4..<8]), [3, 0, 2, 0])  // version 3 LE, dtype float32, reserved
    XCTAssertEqual(Array(bytes[8..<12]), [1, 0, 0, 0])  // frames
    XCTAssertEqual(Array(bytes[32..<36]), [0xE0, 0x01, 0, 0])  // sampleCount 480
    // CRC-32C of bytes 0..<36 then 40..<56 (the checksum field left out), little-endian.
    let crc = CRC32C.software(bytes.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[40...]) },
      continuing: CRC32C.software(bytes.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[..<36]) }))
    XCTAssertEqual(Array(bytes[36..<40]), [UInt8(crc & 0xff), UInt8(crc >> 8 & 0xff), UInt8(crc >> 16 & 0xff), UInt8(crc >> 24)])
    XCTAssertEqual(Array(bytes[40..<43]), Array("abc".utf8))
    XCTAssertEqual(bytes[43], 0)  // padding
    XCTAssertEqual(Array(bytes[44..<48]), [5, 0, 0, 0])
    XCTAssertEqual(Array(bytes[48..<52]), [0, 0, 0x80, 0x3F])  // 1.0f LE
    XCTAssertEqual(RecordLayout.key(frames: 258, id: "x"), [0, 0, 1, 2, UInt8(ascii: "x")])
  }

  /// Fuzzing the record decoder (short run here; `DS2_FUZZ_ITERATIONS=2000000 swift test
  /// --filter RecordCodecTests/testFuzzedRecords` for the long run): any input decodes
  /// or throws `RecordDecodingError` — never a crash, never another error. Half of the
  /// mutants get their checksum recomputed, so the length and layout checks behind the
  /// checksum are fuzzed too.
  func testFuzzedRecordsGiveValuesOrTypedErrors() {
    let seeds = [
      makeRecord(id: "a", frames: 3).encoded(as: .float16), makeRecord(id: "bb", frames: 1, info: "{}").encoded(as: .float32),
      makeRecord(id: "103-1240-0000", frames: 2, bins: 161, info: #"{"speaker":"103"}"#).encoded(as: .float16),
    ]
    var mutator = Mutator(seeds: seeds, seed: 2024)
    var decoded = 0
    var rejected = 0
    for iteration in 0..<Mutator.iterations(short: 20_000) {
      var input = mutator.next()
      if iteration % 2 == 0 && input.count >= RecordLayout.headerSize {
        let crc = input.withUnsafeBytes { RecordLayout.checksum(of: $0) }
        input.withUnsafeMutableBytes { $0.storeBytes(of: crc.littleEndian, toByteOffset: RecordLayout.checksumOffset, as: UInt32.self) }
      }
      do {
        let record = try ShardRecord.decode(input)
        XCTAssertEqual(record.features.values.count, record.frames * record.bins)
        decoded += 1
      } catch is RecordDecodingError {
        rejected += 1
      } catch {
        XCTFail("unexpected error type \(error)")
      }
    }
    XCTAssertGreaterThan(rejected, 1000)
    XCTAssertGreaterThan(decoded, 100)
  }

  /// Property test: truncations and random byte mutations of valid records never crash
  /// the decoder; they decode or throw `RecordDecodingError`.
  func testMutatedRecordsThrowTypedErrorsNeverCrash() {
    var generator = SeededGenerator(seed: 99)
    let originals = [
      makeRecord(id: "a", frames: 3).encoded(as: .float16), makeRecord(id: "bb", frames: 1, info: "{}").encoded(as: .float32),
    ]
    var rejected = 0
    for original in originals {
      for length in 0..<original.count {
        XCTAssertThrowsError(try ShardRecord.decode(Array(original.prefix(length))))
      }
      for _ in 0..<3000 {
        var bytes = original
        for _ in 0..<(1 + Int(generator.next() % 4)) {
          bytes[Int(generator.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: generator.next())
        }
        do { _ = try ShardRecord.decode(bytes) } catch is RecordDecodingError { rejected += 1 } catch {
          XCTFail("unexpected error type \(error)")
        }
      }
    }
    XCTAssertGreaterThan(rejected, 100)
  }
}

final class SplitWriterTests: XCTestCase {
  /// A reader finds where LMDB mapped the file from the page numbers, not by reading
  /// /proc/self/maps (which Foundation's readers cut after its first page of lines, and
  /// which another thread's mmap or munmap can shift lines out of): the same range as the
  /// kernel's whole list of mappings, and found on every open while another thread maps and
  /// unmaps memory. The list is long here (thousands of mappings), as in a long test run.
  func testTheMapIsFoundWhileOtherThreadsMapMemory() throws {
    var regions: [UnsafeMutableRawPointer] = []
    for i in 0..<2000 {
      let region = mmap(nil, 4096, i % 2 == 0 ? PROT_READ : PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
      if let region, region != MAP_FAILED { regions.append(region) }
    }
    defer { for region in regions { munmap(region, 4096) } }
    // The last lines of the list (the stack) are read too.
    var local = 0
    let stack = withUnsafeMutablePointer(to: &local) { UInt(bitPattern: $0) }
    XCTAssertTrue(fileMappings(device: 0, inode: 0).contains { $0.contains(stack) }, "the end of /proc/self/maps was not read")

    let directory = TemporaryDirectory("map-range")
    var records: [ShardRecord] = []
    for i in 0..<12 { records.append(makeRecord(id: String(format: "u%03d", i), frames: 40 + i, bins: 161, seed: UInt64(i))) }
    let finisher = ShardFinisher()
    try writeSplit(records.map { EncodedRecord($0, dtype: .float16) }, directory: directory.path, split: "train", finisher: finisher)
    finisher.waitUntilIdle()
    let shard = try XCTUnwrap(finisher.takeCompletions().0.first?.shard)
    let path = directory.path + "/" + shard.file
    var status = stat()
    XCTAssertEqual(stat(path, &status), 0)
    let environment = try LMDBEnvironment(path: path, readOnly: true)
    let kernelView = fileMappings(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
    XCTAssertEqual(kernelView.map(\.lowerBound), [environment.mappedRange.lowerBound])
    XCTAssertEqual(environment.mappedRange.count, Int(status.st_size))

    let stop = Atomic<Bool>(false)
    let churning = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
      while !stop.load(ordering: .relaxed) {
        let region = mmap(nil, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if region != MAP_FAILED { munmap(region, 1 << 16) }
      }
      churning.signal()
    }
    defer {
      stop.store(true, ordering: .relaxed)
      churning.wait()
    }
    for _ in 0..<300 { XCTAssertNoThrow(try LMDBEnvironment(path: path, readOnly: true)) }
  }

  func testRecordsAreSplitByTheCapAndReadBackInKeyOrder() throws {
    let directory = TemporaryDirectory("shards")
    let bins = 161
    // ~32 KB of float16 features per record at 100 frames: a 1 MiB cap holds ~25.
    var records: [ShardRecord] = []
    for i in 0..<90 { records.append(makeRecord(id: String(format: "u%03d", i), frames: 60 + (i * 37) % 80, bins: bins, seed: UInt64(i))) }
    records.sort { ($0.frames, $0.id) < ($1.frames, $1.id) }
    let finisher = ShardFinisher()
    try writeSplit(records.map { EncodedRecord($0, dtype: .float16) }, directory: directory.path, split: "train", finisher: finisher)
    finisher.waitUntilIdle()
    let (completions, failure) = finisher.takeCompletions()
    XCTAssertNil(failure)
    let shards = completions.map(\.shard)
    XCTAssertGreaterThan(shards.count, 2)
    XCTAssertEqual(shards.reduce(0) { $0 + $1.records }, records.count)
    for (a, b) in zip(shards, shards.dropFirst()) { XCTAssertLessThanOrEqual(a.maxFrames, b.minFrames) }
    var readBack: [String] = []
    for shard in shards {
      XCTAssertLessThanOrEqual(shard.bytes, 1 << 20, "\(shard.file) exceeds the cap")
      let (size, digest) = try SplitWriter.sizeAndDigest(path: directory.path + "/" + shard.file)
      XCTAssertEqual(size, shard.bytes)
      XCTAssertEqual(digest, shard.sha256)
      XCTAssertFalse(FileManager.default.fileExists(atPath: directory.path + "/" + shard.file + ".partial"))
      let environment = try LMDBEnvironment(path: directory.path + "/" + shard.file, readOnly: true)
      // Records are packed into groups of about 1 MiB (fewer LMDB entries than records).
      XCTAssertLessThan(try environment.entryCount(), shard.records)
      var previous: [UInt8]?
      var count = 0
      try environment.forEachRecord(grouped: true) { key, value in
        count += 1
        let keyBytes = Array(key)
        if let previous { XCTAssertTrue(previous.lexicographicallyPrecedes(keyBytes)) }
        previous = keyBytes
        let record = try ShardRecord.decode(value)
        XCTAssertEqual(keyBytes, RecordLayout.key(frames: record.frames, id: record.id))
        readBack.append(record.id)
        return true
      }
      XCTAssertEqual(count, shard.records)
    }
    XCTAssertEqual(readBack, records.map(\.id))
  }

  func testShardFilesAreByteIdenticalAcrossRuns() throws {
    var digests: [[String]] = []
    for _ in 0..<2 {
      let directory = TemporaryDirectory("shards")
      let finisher = ShardFinisher()
      let records = (0..<40).map { i in
        EncodedRecord(makeRecord(id: String(format: "%03d", i), frames: 50 + i, bins: 161, seed: UInt64(i)), dtype: .float16)
      }
      try writeSplit(records, directory: directory.path, split: "s", finisher: finisher)
      finisher.waitUntilIdle()
      digests.append(finisher.takeCompletions().completions.map(\.shard.sha256))
    }
    XCTAssertEqual(digests[0], digests[1])
  }

  /// A shard whose file vanished before it was finished fails the finisher; the shards
  /// completed before it are still reported (so a journal keeps them), later ones are not
  /// completed.
  func testAFailedShardKeepsTheCompletionsBeforeIt() throws {
    let directory = TemporaryDirectory("shards-failure")
    try FileManager.default.createDirectory(atPath: directory.path + "/shards", withIntermediateDirectories: true)
    for name in ["a", "c"] {
      try Data("shard \(name)".utf8).write(to: URL(fileURLWithPath: directory.path + "/shards/\(name).mdb.partial"))
    }
    let finisher = ShardFinisher()
    func info(_ name: String) -> ShardInfo {
      ShardInfo(
        file: "shards/\(name).mdb", records: 1, minFrames: 1, maxFrames: 1, frames: 1, samples: 160, bytes: 0, sha256: "",
        statistics: FeatureStatistics(bins: 1))
    }
    finisher.finish(split: "s", position: 1, directory: directory.path, shard: info("a"))
    finisher.finish(split: "s", position: 2, directory: directory.path, shard: info("b"))  // no such file
    finisher.finish(split: "s", position: 3, directory: directory.path, shard: info("c"))
    finisher.waitUntilIdle()
    let (completions, failure) = finisher.takeCompletions()
    XCTAssertEqual(completions.map(\.shard.file), ["shards/a.mdb"])
    XCTAssertEqual(completions.first?.shard.bytes, 7)
    XCTAssertTrue("\(failure.map { "\($0)" } ?? "")".contains("b.mdb.partial"), "the error names the file: \(String(describing: failure))")
    XCTAssertTrue(FileManager.default.fileExists(atPath: directory.path + "/shards/a.mdb"))
    XCTAssertTrue(FileManager.default.fileExists(atPath: directory.path + "/shards/c.mdb.partial"), "not completed after the failure")
  }
}

final class DigestTests: XCTestCase {
  /// SHA-256 of files around and across the 256 KiB read block, against coreutils'
  /// `sha256sum` (an independent implementation) and the FIPS 180-2 "abc" vector.
  func testDigestsMatchSha256sum() throws {
    let directory = TemporaryDirectory("digest")
    let abc = directory.path + "/abc"
    try Data("abc".utf8).write(to: URL(fileURLWithPath: abc))
    XCTAssertEqual(
      try SplitWriter.sizeAndDigest(path: abc).1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    // Pseudo-random bytes (xorshift64), 8 at a time.
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    var bytes = [UInt8](repeating: 0, count: (3 << 20) + 8)
    bytes.withUnsafeMutableBytes { raw in
      for i in stride(from: 0, to: raw.count - 7, by: 8) {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        raw.storeBytes(of: state, toByteOffset: i, as: UInt64.self)
      }
    }
    for size in [0, 1, 4095, (256 << 10) - 1, 256 << 10, (256 << 10) + 4097, (3 << 20) + 3] {
      let path = directory.path + "/file-\(size)"
      try Data(bytes[0..<size]).write(to: URL(fileURLWithPath: path))
      let (bytes, digest) = try SplitWriter.sizeAndDigest(path: path)
      XCTAssertEqual(bytes, size)
      let output = try runProcess("/usr/bin/sha256sum", [path]).stdout
      XCTAssertEqual(digest, String(output.prefix(64)), "size \(size)")
    }
    XCTAssertThrowsError(try SplitWriter.sizeAndDigest(path: directory.path + "/missing")) { error in
      XCTAssertTrue("\(error)".contains("missing"), "the error names the file: \(error)")
    }
  }
}

/// Writes `records` (in key order) as one split with shards planned from their sizes.
func writeSplit(_ records: [EncodedRecord], directory: String, split: String, maxShardBytes: Int = 1 << 20, finisher: ShardFinisher) throws {
  let planned = SplitWriter.planShards(
    valueSizes: records.map(\.value.count), keySizes: records.map(\.key.count), maxShardBytes: maxShardBytes)
  let writer = try SplitWriter(
    directory: directory, split: split, bins: 161, maxShardBytes: maxShardBytes, plannedShards: planned, finisher: finisher)
  for (position, record) in records.enumerated() {
    writer.position = position
    try writer.append(record)
  }
  try writer.finish()
}

extension Float16 {
  /// The next float16 below when this (rounded-to-nearest) value lies above `value`.
  func nextDownIfAbove(_ value: Float) -> Float16 { Float(self) > value ? nextDown : self }
  /// The next float16 above when this value lies below `value`.
  func nextUpIfBelow(_ value: Float) -> Float16 { Float(self) < value ? nextUp : self }
}
