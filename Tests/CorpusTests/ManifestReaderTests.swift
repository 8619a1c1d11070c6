import DS2Core
import Foundation
import TestSupport
import XCTest

@testable import Corpus

final class JSONLinesManifestReaderTests: XCTestCase {
  func testEntriesPathsIdsSegmentsAndProblems() throws {
    let directory = TemporaryDirectory("manifest")
    let root = directory.path + "/manifests"
    let lines = [
      #"{"audio_filepath": "wav/b.wav", "duration": 1.5, "text": "HELLO  World"}"#,
      #"{"audio_filepath": "/data/long.flac", "offset": 12.5, "duration": 4.0, "text": "a segment", "lang": "en"}"#,
      #"{"audio_filepath": "./wav/a.flac", "text": "no duration"}"#,
      "",
      #"not json"#,
      #"{"audio_filepath": "wav/c.wav", "duration": 1.0}"#,
      #"{"audio_filepath": "wav/d.wav", "duration": -1, "text": "negative"}"#,
      #"{"audio_filepath": "wav/e.wav", "offset": 1, "text": "offset alone"}"#,
      #"{"audio_filepath": "other/b.flac", "duration": 1.5, "text": "same file name"}"#,
      #"{"audio_filepath": "wav/f.wav", "duration": 2, "text": " "}"#,
    ]
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    try (lines.joined(separator: "\n") + "\n").write(toFile: root + "/train.jsonl", atomically: true, encoding: .utf8)
    try #"{"audio_filepath": "x.wav", "duration": 1, "text": "dev"}"#.write(
      toFile: root + "/dev.json", atomically: true, encoding: .utf8)

    let listing = try JSONLinesManifestReader(root: root, language: .english).list(splits: ["train", "dev", "test"])
    XCTAssertEqual(listing.missingSplits, ["test"])
    let train = listing.sources.filter { $0.split == "train" }
    XCTAssertEqual(train.map(\.id), ["a", "b", "long-001250-001650"])
    XCTAssertEqual(train.map(\.audioPath), [root + "/./wav/a.flac", root + "/wav/b.wav", "/data/long.flac"])
    XCTAssertEqual(train.map(\.startSeconds), [0, 0, 12.5])
    XCTAssertEqual(train.map(\.durationSeconds), [nil, 1.5, 4.0])
    XCTAssertEqual(train.map(\.transcript), ["no duration", "hello world", "a segment"])
    XCTAssertEqual(train.map(\.transcriptLine), [3, 1, 2])
    XCTAssertEqual(listing.sources.filter { $0.split == "dev" }.map(\.id), ["x"])

    let summary = listing.rejections.map { "\($0.reason.rawValue)@\($0.line ?? 0)" }
    XCTAssertEqual(
      summary,
      ["malformed_transcript@5", "malformed_transcript@6", "malformed_transcript@7", "malformed_transcript@8",
       "duplicate_id@9", "empty_transcript@10"])
    XCTAssertTrue(listing.rejections[1].message.contains("\"text\""), listing.rejections[1].message)
    XCTAssertTrue(listing.rejections[2].message.contains("\"duration\""), listing.rejections[2].message)
    XCTAssertTrue(listing.rejections[3].message.contains("needs \"duration\""), listing.rejections[3].message)
    XCTAssertTrue(listing.rejections.allSatisfy { $0.file == root + "/train.jsonl" })
  }

  func testMandarinManifestsKeepCharactersAndDropSpaces() throws {
    let directory = TemporaryDirectory("manifest-cmn")
    try #"{"audio_filepath": "a.wav", "duration": 1, "text": "你好 世界"}"#.write(
      toFile: directory.path + "/train.jsonl", atomically: true, encoding: .utf8)
    let listing = try JSONLinesManifestReader(root: directory.path, language: .mandarin).list(splits: ["train"])
    XCTAssertEqual(listing.sources.map(\.transcript), ["你好世界"])
    XCTAssertThrowsError(try JSONLinesManifestReader(root: directory.path, language: .english).list(splits: ["dev"])) {
      XCTAssertTrue("\($0)".contains("holds none of the splits dev"), "\($0)")
    }
  }
}

final class KaldiDataDirectoryReaderTests: XCTestCase {
  func write(_ lines: [String], to path: String) throws {
    try FileManager.default.createDirectory(
      atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
  }

  func testWholeFileUtterancesWithSpeakersAndProblems() throws {
    let directory = TemporaryDirectory("kaldi")
    let data = directory.path + "/data/train"
    try write(
      [
        "utt2 /corpus/b.flac",
        "utt1 /corpus/a.wav",
        "utt3 sph2pipe -f wav -p -c 1 /corpus/c.sph |",
        "utt4 /corpus/d.ark:1234",
        "utt5 /corpus/e.wav",
        "utt1 /corpus/again.wav",
      ], to: data + "/wav.scp")
    try write(["utt1 HELLO there", "utt2 good  bye", "utt3 piped", "utt4 archived", "utt6 no audio"], to: data + "/text")
    try write(["utt1 spk1", "utt2 spk2"], to: data + "/utt2spk")

    let listing = try KaldiDataDirectoryReader(root: directory.path + "/data", language: .english).list(splits: ["train", "dev"])
    XCTAssertEqual(listing.missingSplits, ["dev"])
    XCTAssertEqual(listing.sources.map(\.id), ["utt1", "utt2"])
    XCTAssertEqual(listing.sources.map(\.audioPath), ["/corpus/a.wav", "/corpus/b.flac"])
    XCTAssertEqual(listing.sources.map(\.transcript), ["hello there", "good bye"])
    XCTAssertEqual(listing.sources.map(\.speaker), ["spk1", "spk2"])
    XCTAssertEqual(listing.sources.map(\.transcriptLine), [1, 2])
    XCTAssertTrue(listing.sources.allSatisfy { $0.startSeconds == 0 && $0.durationSeconds == nil && $0.channel == nil })

    let summary = listing.rejections.map { "\($0.reason.rawValue):\($0.utteranceId ?? "-"):\(($0.file as NSString).lastPathComponent)@\($0.line ?? 0)" }
    XCTAssertEqual(
      summary,
      ["duplicate_id:utt1:wav.scp@6", "unreadable_audio:utt3:wav.scp@3", "unreadable_audio:utt4:wav.scp@4",
       "missing_transcript:utt5:wav.scp@5", "missing_audio:utt6:text@5"])
    XCTAssertTrue(listing.rejections[1].message.contains("command pipe"), listing.rejections[1].message)
    XCTAssertTrue(listing.rejections[2].message.contains("Kaldi archive"), listing.rejections[2].message)
  }

  func testSegmentsCutRecordings() throws {
    let directory = TemporaryDirectory("kaldi-segments")
    let data = directory.path + "/dev"
    try write(["rec1 /corpus/rec1.wav", "rec2 /corpus/rec2.wav", "rec3 /corpus/rec3.wav"], to: data + "/wav.scp")
    try write(
      [
        "rec1-0001 rec1 0.50 2.25",
        "rec1-0002 rec1 3.00 -1",
        "rec2-0001 rec2 1.00 0.50",
        "rec9-0001 rec9 0 1",
        "rec2-0002 rec2 0 1",
      ], to: data + "/segments")
    try write(["rec1-0001 first part", "rec1-0002 to the end", "rec2-0001 backwards", "rec9-0001 nowhere", "rec2-0003 lost"], to: data + "/text")

    let listing = try KaldiDataDirectoryReader(root: directory.path, language: .english).list(splits: ["dev"])
    XCTAssertEqual(listing.sources.map(\.id), ["rec1-0001", "rec1-0002"])
    XCTAssertEqual(listing.sources.map(\.audioPath), ["/corpus/rec1.wav", "/corpus/rec1.wav"])
    XCTAssertEqual(listing.sources.map(\.startSeconds), [0.5, 3.0])
    XCTAssertEqual(listing.sources.map(\.durationSeconds), [1.75, nil])
    let summary = listing.rejections.map { "\($0.reason.rawValue):\($0.utteranceId ?? "-"):\(($0.file as NSString).lastPathComponent)@\($0.line ?? 0)" }
    XCTAssertEqual(
      summary,
      ["malformed_transcript:rec2-0001:segments@3", "missing_audio:rec9-0001:segments@4",
       "missing_transcript:rec3:wav.scp@3", "missing_transcript:rec2-0002:segments@5", "missing_audio:rec2-0003:text@5"])
  }

  /// A list file that is there but cannot be read (a folder, a symlink loop, a dangling
  /// symlink) makes its split present and names the file, rather than calling the split
  /// absent; an unreadable segments file lists no utterance of its split, silently
  /// reading the recordings as utterances instead.
  func testUnreadableListFilesAreNamedNotTakenForAbsentSplits() throws {
    let directory = TemporaryDirectory("kaldi-unreadable")
    let train = directory.path + "/train"
    try FileManager.default.createDirectory(atPath: train + "/wav.scp", withIntermediateDirectories: true)
    try write(["utt1 hello"], to: train + "/text")
    let dev = directory.path + "/dev"
    try write(["rec1 /corpus/rec1.wav"], to: dev + "/wav.scp")
    try write(["rec1-0001 hello"], to: dev + "/text")
    try FileManager.default.createSymbolicLink(atPath: dev + "/segments", withDestinationPath: "segments")
    let listing = try KaldiDataDirectoryReader(root: directory.path, language: .english).list(splits: ["train", "dev"])
    XCTAssertEqual(listing.missingSplits, [])
    XCTAssertEqual(listing.sources.map(\.id), [])
    let summary = listing.rejections.map { "\($0.reason.rawValue):\($0.split ?? "-"):\(($0.file as NSString).lastPathComponent)" }
    XCTAssertTrue(summary.contains("unreadable_file:train:wav.scp"), "\(summary)")
    XCTAssertTrue(summary.contains("unreadable_file:dev:segments"), "\(summary)")

    let manifests = TemporaryDirectory("manifest-unreadable")
    try FileManager.default.createSymbolicLink(atPath: manifests.path + "/train.jsonl", withDestinationPath: "train.jsonl")
    try write(["{\"audio_filepath\": \"/corpus/a.wav\", \"text\": \"hello\"}"], to: manifests.path + "/dev.jsonl")
    let manifestListing = try JSONLinesManifestReader(root: manifests.path, language: .english).list(splits: ["train", "dev"])
    XCTAssertEqual(manifestListing.missingSplits, [])
    XCTAssertEqual(manifestListing.rejections.map(\.reason), [.unreadableFile])
    XCTAssertTrue(manifestListing.rejections[0].message.contains("symbolic links"), manifestListing.rejections[0].message)
  }
}
