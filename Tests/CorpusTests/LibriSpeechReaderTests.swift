import DS2Core
import Foundation
import TestSupport
import XCTest

@testable import Corpus

final class LibriSpeechReaderTests: XCTestCase {
  /// A LibriSpeech layout (listing reads names and transcripts only, so the FLAC files are
  /// empty): two splits, speakers with one or two chapters, and in them a transcript line
  /// without audio, audio without a line, a second line for an id, a line without a
  /// transcript and a line that is not UTF-8.
  func makeCorpus(_ directory: TemporaryDirectory) throws -> String {
    let root = directory.path + "/LibriSpeech"
    func chapter(_ split: String, _ speaker: Int, _ chapter: Int, audio: [Int], lines: [String]) throws {
      let folder = "\(root)/\(split)/\(speaker)/\(chapter)"
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
      for index in audio {
        _ = FileManager.default.createFile(atPath: "\(folder)/\(speaker)-\(chapter)-\(String(format: "%04d", index)).flac", contents: Data())
      }
      var text = Data(lines.joined(separator: "\n").utf8)
      if lines.contains("<bad>") {
        text = Data(lines.filter { $0 != "<bad>" }.joined(separator: "\n").utf8) + Data([0x0A]) + Data("\(speaker)-\(chapter)-0009 caf".utf8)
          + Data([0xE9, 0x0A])
      }
      try text.write(to: URL(fileURLWithPath: "\(folder)/\(speaker)-\(chapter).trans.txt"))
    }
    for speaker in [19, 26, 103, 1034] {
      try chapter("train-clean-100", speaker, 198, audio: [0, 1, 2], lines: (0..<3).map { "\(speaker)-198-000\($0) WORDS OF \($0)" })
    }
    try chapter("train-clean-100", 26, 495, audio: [0, 1, 3], lines: ["26-495-0000 ONE", "26-495-0001 TWO", "26-495-0002 NO AUDIO"])
    try chapter("train-clean-100", 103, 1240, audio: [0, 9], lines: ["103-1240-0000 A", "103-1240-0000 AGAIN", "103-1240-0001", "<bad>"])
    try chapter("dev-clean", 84, 121123, audio: [0, 1], lines: ["84-121123-0000 GO", "84-121123-0001 DO"])
    // Many small speaker folders, so that folders finish out of order on several threads.
    for speaker in 2000..<2120 {
      try chapter("dev-clean", speaker, 7, audio: [0, 2], lines: ["\(speaker)-7-0000 HI", "\(speaker)-7-0001 NO AUDIO"])
    }
    return directory.path
  }

  func testListingIsTheSameOnAnyNumberOfThreads() throws {
    let directory = TemporaryDirectory("librispeech-list")
    let root = try makeCorpus(directory)
    let splits = ["train-clean-100", "dev-clean", "test-clean"]
    let one = try LibriSpeechReader(root: root, pool: WorkerPool(threads: 1)).list(splits: splits)
    XCTAssertEqual(one.missingSplits, ["test-clean"])
    XCTAssertEqual(one.sources.count, 12 + 2 + 1 + 2 + 120)
    XCTAssertEqual(one.sources.map(\.split), Array(repeating: "train-clean-100", count: 15) + Array(repeating: "dev-clean", count: 122))
    let trainIds = one.sources.prefix(15).map(\.id)
    XCTAssertEqual(trainIds, trainIds.sorted(by: utf8Precedes), "each split is in id order")
    XCTAssertEqual(one.sources.first { $0.id == "26-495-0001" }?.transcript, "two")
    XCTAssertEqual(one.sources.first { $0.id == "26-495-0001" }?.speaker, "26")
    // Folders in byte order: speaker 103 (chapter 1240 before 198) comes before 26.
    XCTAssertEqual(
      one.rejections.prefix(5).map(\.reason), [.duplicateId, .malformedTranscript, .nonUTF8Transcript, .missingAudio, .missingTranscript])
    XCTAssertEqual(one.rejections.prefix(5).map(\.utteranceId), ["103-1240-0000", nil, "103-1240-0009", "26-495-0002", "26-495-0003"])
    // Then dev-clean's folders in byte order: 2000 … 2119 before 84.
    XCTAssertEqual(
      one.rejections.dropFirst(5).map(\.utteranceId), (2000..<2120).flatMap { ["\($0)-7-0001", "\($0)-7-0002"] })
    for threads in [2, 3, 8] {
      let many = try LibriSpeechReader(root: root, pool: WorkerPool(threads: threads)).list(splits: splits)
      XCTAssertEqual(many.sources, one.sources, "\(threads) threads")
      XCTAssertEqual(many.rejections, one.rejections, "\(threads) threads")
      XCTAssertEqual(many.missingSplits, one.missingSplits)
    }
  }

  func testARootWithNoneOfTheSplitsNamesWhatItHolds() throws {
    let directory = TemporaryDirectory("librispeech-none")
    let root = try makeCorpus(directory)
    XCTAssertThrowsError(try LibriSpeechReader(root: root, pool: WorkerPool(threads: 2)).list(splits: ["test-other"])) { error in
      XCTAssertTrue("\(error)".contains("dev-clean, train-clean-100"), "\(error)")
    }
    XCTAssertThrowsError(try LibriSpeechReader(root: root + "/missing").list(splits: ["dev-clean"])) { error in
      XCTAssertTrue("\(error)".contains("does not exist"), "\(error)")
    }
  }
}
