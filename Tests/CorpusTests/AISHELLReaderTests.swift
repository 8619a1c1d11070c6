import DS2Core
import Foundation
import TestSupport
import XCTest

@testable import Corpus

final class AISHELLReaderTests: XCTestCase {
  /// Transcript lines of the fixture, in file order (not id order).
  static let lines = [
    "BAC009S0724W0122 谢谢 你",
    "BAC009S0002W0121 而 对 楼市 成交 抑制 作用 最 大 的 限 购",
    "BAC009S0003W0121 我们 一起 去 学校",
    "BAC009S0002W0123 今天 天气 很 好 ",
    "BAC009S0002W0122 也 成为 地方 政府 的 眼中 钉",
    "BAC009S0724W0121 你好\u{3000}世界",
    "BAC009S0764W0121 再见",
    "BAC009S0002W0126 这 一 句 没有 录音",  // speaker S0002 is in train, the WAV is absent
    "BAC009S0900W0121 别的 说话人",  // a speaker with no folder: not reported
    "BAC009S0002W0121 重复 的 行",  // a second line for an id
  ]

  /// Train S0002 (3 WAVs) and S0003 (2 WAVs, one untranscribed), dev S0724 (2), test S0764 (1).
  func makeCorpus(_ directory: TemporaryDirectory) throws -> AISHELLFixture {
    let fixture = AISHELLFixture(root: directory.path)
    for (split, speaker, count) in [("train", 2, 3), ("train", 3, 2), ("dev", 724, 2), ("test", 764, 1)] {
      for index in 0..<count { try fixture.writeAudio(split: split, speaker: speaker, index: index, seconds: 0.4) }
    }
    try fixture.writeTranscript(Self.lines)
    return fixture
  }

  func testMandarinNormalizationRemovesWhitespaceOnly() {
    XCTAssertEqual(MandarinText.normalize("而 对 楼市 成交"), "而对楼市成交")
    XCTAssertEqual(MandarinText.normalize(" 你好\u{3000}世界\t！ "), "你好世界！")
    XCTAssertEqual(MandarinText.normalize("   "), "")
  }

  func testListsSplitsSpeakersAndCharacterTranscriptsInIdOrder() throws {
    let directory = TemporaryDirectory("aishell-list")
    let fixture = try makeCorpus(directory)
    let listing = try AISHELLReader(root: directory.path).list(splits: ["train", "dev", "test"])
    XCTAssertEqual(
      listing.sources.map(\.id),
      ["BAC009S0002W0121", "BAC009S0002W0122", "BAC009S0002W0123", "BAC009S0003W0121", "BAC009S0724W0121",
       "BAC009S0724W0122", "BAC009S0764W0121"])
    XCTAssertEqual(listing.sources.map(\.split), ["train", "train", "train", "train", "dev", "dev", "test"])
    XCTAssertEqual(listing.sources.map(\.speaker), ["S0002", "S0002", "S0002", "S0003", "S0724", "S0724", "S0764"])
    XCTAssertEqual(
      listing.sources.map(\.transcript),
      ["而对楼市成交抑制作用最大的限购", "也成为地方政府的眼中钉", "今天天气很好", "我们一起去学校", "你好世界", "谢谢你", "再见"])
    XCTAssertEqual(listing.sources.map(\.transcriptLine), [2, 5, 4, 3, 6, 1, 7])
    XCTAssertEqual(listing.sources[0].audioPath, fixture.audioPath(split: "train", speaker: 2, index: 0))
    XCTAssertTrue(listing.sources.allSatisfy { $0.channel == nil && $0.durationSeconds == nil })
  }

  /// WAVs without a transcript line are skipped and counted; lines whose WAV is absent
  /// are named only when their speaker is in a requested split.
  func testUntranscribedWavsAndLinesWithoutAudio() throws {
    let directory = TemporaryDirectory("aishell-missing")
    let fixture = try makeCorpus(directory)
    let listing = try AISHELLReader(root: directory.path).list(splits: ["train", "dev", "test"])
    let summary = listing.rejections.map { "\($0.reason.rawValue):\($0.utteranceId ?? "-"):\($0.line ?? 0)" }
    XCTAssertEqual(
      summary,
      ["missing_audio:BAC009S0002W0126:8", "duplicate_id:BAC009S0002W0121:10", "missing_transcript:BAC009S0003W0122:0"])
    XCTAssertEqual(listing.rejections.last?.file, fixture.audioPath(split: "train", speaker: 3, index: 1))
    XCTAssertEqual(listing.rejections.last?.split, "train")

    // Asking for dev only: train's problems are not dev's business.
    let dev = try AISHELLReader(root: directory.path).list(splits: ["dev"])
    XCTAssertEqual(dev.sources.map(\.id), ["BAC009S0724W0121", "BAC009S0724W0122"])
    XCTAssertEqual(dev.rejections, [])
  }

  /// The shipped layout: one archive per speaker. They are unpacked beside themselves
  /// once, giving the same listing as the unpacked corpus.
  func testPerSpeakerArchivesAreUnpackedOnceBesideThem() throws {
    let unpackedDirectory = TemporaryDirectory("aishell-unpacked")
    _ = try makeCorpus(unpackedDirectory)
    let expected = try AISHELLReader(root: unpackedDirectory.path).list(splits: ["train", "dev", "test"])

    let directory = TemporaryDirectory("aishell-packed")
    let fixture = try makeCorpus(directory)
    for (split, speaker) in [("train", 2), ("train", 3), ("dev", 724), ("test", 764)] {
      try fixture.pack(split: split, speaker: speaker)
    }
    XCTAssertFalse(FileManager.default.fileExists(atPath: fixture.wavDirectory + "/train/S0002"))
    var announced: [Int] = []
    let reader = AISHELLReader(root: directory.path + "/data_aishell", pool: WorkerPool(threads: 2)) { count, _ in announced.append(count) }
    let listing = try reader.list(splits: ["train", "dev", "test"])
    XCTAssertEqual(announced, [4])
    func relative(_ l: CorpusListing, _ root: String) -> [String] {
      l.sources.map { "\($0.id) \($0.split) \($0.transcript) " + $0.audioPath.replacingOccurrences(of: root, with: "") }
    }
    XCTAssertEqual(relative(listing, directory.path), relative(expected, unpackedDirectory.path))
    XCTAssertEqual(listing.rejections.map(\.reason), expected.rejections.map(\.reason))
    let entries = try FileManager.default.contentsOfDirectory(atPath: fixture.wavDirectory).sorted()
    XCTAssertEqual(entries, ["S0002.tar.gz", "S0003.tar.gz", "S0724.tar.gz", "S0764.tar.gz", "dev", "test", "train"])

    // Unpacked archives are not opened again: replacing one with garbage changes nothing.
    try Data("not gzip".utf8).write(to: URL(fileURLWithPath: fixture.wavDirectory + "/S0002.tar.gz"))
    let again = try AISHELLReader(root: directory.path) { count, _ in announced.append(count) }.list(splits: ["train", "dev", "test"])
    XCTAssertEqual(announced, [4], "nothing is unpacked, or announced, a second time")
    XCTAssertEqual(relative(again, directory.path), relative(expected, unpackedDirectory.path))
    XCTAssertEqual(again.rejections.map(\.reason), expected.rejections.map(\.reason))
  }

  /// A corrupt or truncated archive is one named error for its speaker; the others land,
  /// and nothing half-unpacked is left behind.
  func testCorruptArchivesFailTheirSpeakerOnly() throws {
    let directory = TemporaryDirectory("aishell-corrupt")
    let fixture = try makeCorpus(directory)
    for (split, speaker) in [("train", 2), ("train", 3), ("dev", 724)] { try fixture.pack(split: split, speaker: speaker) }
    let truncatedPath = fixture.wavDirectory + "/S0003.tar.gz"
    let packed = try Data(contentsOf: URL(fileURLWithPath: truncatedPath))
    try packed.prefix(packed.count / 2).write(to: URL(fileURLWithPath: truncatedPath))
    try Data(repeating: 0x42, count: 300).write(to: URL(fileURLWithPath: fixture.wavDirectory + "/S0724.tar.gz"))

    let listing = try AISHELLReader(root: directory.path).list(splits: ["train", "dev", "test"])
    XCTAssertEqual(listing.sources.map(\.id), ["BAC009S0002W0121", "BAC009S0002W0122", "BAC009S0002W0123", "BAC009S0764W0121"])
    let failures = listing.rejections.filter { $0.file.hasSuffix(".tar.gz") }
    XCTAssertEqual(failures.map(\.file), [truncatedPath, fixture.wavDirectory + "/S0724.tar.gz"])
    XCTAssertEqual(failures.map(\.reason), [.unreadableAudio, .unreadableAudio])
    XCTAssertTrue(failures.allSatisfy { $0.message.contains("tar -xzf failed") }, "\(failures)")
    XCTAssertTrue(failures[0].message.contains("speaker S0003"), failures[0].message)
    // Their transcript lines are not reported again as missing audio.
    XCTAssertFalse(listing.rejections.contains { $0.reason == .missingAudio && $0.utteranceId != "BAC009S0002W0126" })
    let entries = try FileManager.default.contentsOfDirectory(atPath: fixture.wavDirectory)
    XCTAssertFalse(entries.contains { $0.hasPrefix(".unpacking") }, "\(entries)")
    XCTAssertFalse(FileManager.default.fileExists(atPath: fixture.wavDirectory + "/train/S0003"))
    // The dev split's only speaker failed, so dev is missing.
    XCTAssertEqual(listing.missingSplits, ["dev"])
  }

  /// A dry run's listing (`unpacksArchives = false`) reads packed archives as streams and
  /// writes nothing: the same utterances, paths and rejections as unpacking gives, each
  /// packed source with its member's size and first bytes (and all bytes for the first
  /// members); a truncated or garbage archive is its speaker's one error, as when unpacking.
  func testADryRunReadsArchivesWithoutUnpacking() throws {
    func relative(_ l: CorpusListing, _ root: String) -> [String] {
      l.sources.map { "\($0.id) \($0.split) \($0.transcript) " + $0.audioPath.replacingOccurrences(of: root, with: "") }
    }
    func tree(_ path: String) throws -> [String] {
      (FileManager.default.enumerator(atPath: path)?.allObjects as? [String] ?? []).sorted()
    }
    for damaged in [false, true] {
      let unpackedDirectory = TemporaryDirectory("aishell-dry-unpacked")
      let directory = TemporaryDirectory("aishell-dry-packed")
      var fixtures: [AISHELLFixture] = []
      for folder in [unpackedDirectory, directory] {
        let fixture = try makeCorpus(folder)
        for (split, speaker) in [("train", 2), ("train", 3), ("dev", 724)] { try fixture.pack(split: split, speaker: speaker) }
        if damaged {
          let truncatedPath = fixture.wavDirectory + "/S0003.tar.gz"
          let bytes = try Data(contentsOf: URL(fileURLWithPath: truncatedPath))
          try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: truncatedPath))
          try Data(repeating: 0x42, count: 300).write(to: URL(fileURLWithPath: fixture.wavDirectory + "/S0724.tar.gz"))
        }
        fixtures.append(fixture)
      }
      let expected = try AISHELLReader(root: unpackedDirectory.path).list(splits: ["train", "dev", "test"])
      let before = try tree(directory.path)
      var reader = AISHELLReader(root: directory.path, pool: WorkerPool(threads: 2))
      reader.unpacksArchives = false
      let listing = try reader.list(splits: ["train", "dev", "test"])
      XCTAssertEqual(try tree(directory.path), before, "nothing written")
      XCTAssertEqual(relative(listing, directory.path), relative(expected, unpackedDirectory.path))
      XCTAssertEqual(listing.rejections.map(\.reason), expected.rejections.map(\.reason))
      XCTAssertEqual(
        listing.rejections.map { $0.file.replacingOccurrences(of: directory.path, with: "") },
        expected.rejections.map { $0.file.replacingOccurrences(of: unpackedDirectory.path, with: "") })
      XCTAssertEqual(listing.missingSplits, expected.missingSplits)
      for (source, unpacked) in zip(listing.sources, expected.sources) {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: unpacked.audioPath))
        if let packed = source.packed {
          XCTAssertEqual(packed.fileBytes, bytes.count, source.id)
          XCTAssertEqual(packed.header, Array(bytes.prefix(PackedAudio.headerLimit)), source.id)
          XCTAssertTrue(packed.contents == nil || packed.contents! == Array(bytes), source.id)
        } else {
          XCTAssertEqual(source.audioPath.replacingOccurrences(of: directory.path, with: ""), unpacked.audioPath.replacingOccurrences(of: unpackedDirectory.path, with: ""))
        }
      }
      XCTAssertTrue(listing.sources.contains { $0.packed?.contents != nil }, "bytes kept for calibration")
      if damaged {
        let failures = listing.rejections.filter { $0.file.hasSuffix(".tar.gz") }
        XCTAssertTrue(failures[0].message.contains("speaker S0003"), failures[0].message)
      }
    }
  }

  func testAnInterruptedUnpackIsRedoneAndAMislabelledArchiveIsRejected() throws {
    let directory = TemporaryDirectory("aishell-interrupted")
    let fixture = try makeCorpus(directory)
    try fixture.pack(split: "train", speaker: 2)
    // What an interrupted run leaves: a staging folder with part of the speaker.
    let staging = fixture.wavDirectory + "/.unpacking-S0002/train/S0002"
    try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
    XCTAssertTrue(FileManager.default.createFile(atPath: staging + "/partial.wav", contents: Data([1, 2, 3])))
    // An archive whose name does not match its speaker folder.
    try FileManager.default.moveItem(
      atPath: fixture.wavDirectory + "/test/S0764", toPath: fixture.wavDirectory + "/test/S0765")
    try runTool("/usr/bin/env", ["tar", "-czf", "S0764.tar.gz", "test/S0765"], in: fixture.wavDirectory)
    try FileManager.default.removeItem(atPath: fixture.wavDirectory + "/test/S0765")

    // What a run stopped between the move and the clean-up leaves: an empty staging
    // folder of a speaker that is in place.
    try FileManager.default.createDirectory(
      atPath: fixture.wavDirectory + "/.unpacking-S0003/train", withIntermediateDirectories: true)

    let listing = try AISHELLReader(root: directory.path).list(splits: ["train", "test"])
    XCTAssertEqual(listing.sources.filter { $0.speaker == "S0002" }.count, 3)
    XCTAssertFalse(FileManager.default.fileExists(atPath: fixture.wavDirectory + "/.unpacking-S0003"))
    XCTAssertFalse(FileManager.default.fileExists(atPath: fixture.wavDirectory + "/.unpacking-S0002"))
    XCTAssertFalse(FileManager.default.fileExists(atPath: fixture.wavDirectory + "/train/S0002/partial.wav"))
    let mislabelled = try XCTUnwrap(listing.rejections.first { $0.file.hasSuffix("S0764.tar.gz") })
    XCTAssertTrue(mislabelled.message.contains("expected the archive to hold <split>/S0764/"), mislabelled.message)
    XCTAssertFalse(FileManager.default.fileExists(atPath: fixture.wavDirectory + "/.unpacking-S0764"))
  }

  func testARootWithoutTheLayoutIsAConfigurationError() throws {
    let directory = TemporaryDirectory("aishell-empty")
    XCTAssertThrowsError(try AISHELLReader(root: directory.path).list(splits: ["train"])) { error in
      XCTAssertTrue("\(error)".contains("no data_aishell/wav folder"), "\(error)")
    }
    let fixture = try makeCorpus(directory)
    try FileManager.default.removeItem(atPath: fixture.transcriptPath)
    XCTAssertThrowsError(try AISHELLReader(root: directory.path).list(splits: ["train"])) { error in
      XCTAssertTrue("\(error)".contains("aishell_transcript_v0.8.txt"), "\(error)")
    }
  }
}
