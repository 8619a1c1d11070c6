import Audio
import DS2Core
import Foundation
import TestSupport
import XCTest

@testable import Corpus

final class FisherTextTests: XCTestCase {
  /// Each LDC markup case against the documented rule (FisherText.normalize).
  func testMarkupNormalization() {
    let cases: [(String, String)] = [
      ("[laughter] yeah i- i think so", "yeah i i think so"),
      ("[noise]", ""),
      ("[laugh] [mn] [sigh] [cough] [breath] [lipsmack]", ""),
      ("[[skip]] okay", "okay"),
      ("yeah[laughter]right", "yeah right"),
      ("the t._v. is on", "the t v is on"),
      ("u._s._a. and the u._s.", "u s a and the u s"),
      ("a. b. c.", "a b c"),
      ("mr. smith", "mr smith"),
      ("th- that's -tion", "th that's tion"),
      ("an x-ray of a well-known t-shirt", "an x ray of a well known t shirt"),
      ("-- - ---", ""),
      ("Okay, SO \"what?\" she said; fine! and: that_is", "okay so what she said fine and that is"),
      ("we'll 'cause goin'", "we'll 'cause goin'"),
      ("  spaced \t  out  ", "spaced out"),
      ("room 101 #", "room 101 #"),  // left for the vocabulary to reject by name
    ]
    for (input, expected) in cases {
      XCTAssertEqual(FisherText.normalize(input), expected, "normalizing \"\(input)\"")
    }
  }

  func testUnintelligibleAndUncertainSpansAreDetected() {
    XCTAssertTrue(FisherText.isUncertain("(( ))"))
    XCTAssertTrue(FisherText.isUncertain("i said (( maybe )) yes"))
    XCTAssertTrue(FisherText.isUncertain("((hm))"))
    XCTAssertFalse(FisherText.isUncertain("i said (maybe) yes"))
    XCTAssertFalse(FisherText.isUncertain("[laughter] yes"))
  }
}

final class FisherReaderTests: XCTestCase {
  /// Conversation 1 (dev): turns on both sides, overlapping in time, plus each kind of
  /// line the reader must reject. Tones: A 300/900 Hz, B 1100 Hz; rejected turns have
  /// their own tones so that a wrong cut would show.
  func writeDevConversation(_ fixture: FisherFixture) throws {
    try fixture.write(
      number: 1, seconds: 6,
      turns: [
        .init(0.50, 1.50, "A", "[laughter] hello th- there", frequencyHertz: 300),
        .init(1.20, 2.40, "B", "hi the t._v. x-ray", frequencyHertz: 1100),
        .init(2.60, 3.30, "A", "(( )) yes", frequencyHertz: 500),
        .init(3.50, 4.00, "B", "[noise]", frequencyHertz: 700),
        .init(4.10, 5.20, "A", "okay bye", frequencyHertz: 900),
        .init(4.10, 5.20, "A", "again"),
      ],
      extraLines: ["garbage line", "5.00 4.00 B: backwards in time", "1.00 2.00 C: no such side"])
  }

  func testListsOneUtterancePerTurnWithKaldiIdsChannelsAndTimes() throws {
    let directory = TemporaryDirectory("fisher-list")
    let fixture = FisherFixture(root: directory.path)
    try writeDevConversation(fixture)
    let listing = try FisherReader(root: directory.path).list(splits: ["dev"])
    XCTAssertEqual(listing.missingSplits, [])
    XCTAssertEqual(
      listing.sources.map(\.id),
      ["fe_03_00001-A-000050-000150", "fe_03_00001-A-000410-000520", "fe_03_00001-B-000120-000240"])
    XCTAssertEqual(listing.sources.map(\.transcript), ["hello th there", "okay bye", "hi the t v x ray"])
    XCTAssertEqual(listing.sources.map(\.channel), [0, 0, 1])
    XCTAssertEqual(listing.sources.map(\.startSeconds), [0.5, 4.1, 1.2])
    for (source, expected) in zip(listing.sources, [1.0, 1.1, 1.2]) {
      XCTAssertEqual(source.durationSeconds!, expected, accuracy: 1e-9)
      XCTAssertEqual(source.audioPath, fixture.audioPath(1))
      XCTAssertEqual(source.transcriptPath, fixture.transcriptPath(1))
      XCTAssertEqual(source.split, "dev")
    }
    XCTAssertEqual(listing.sources.map(\.speaker), ["fe_03_00001-A", "fe_03_00001-A", "fe_03_00001-B"])
    // Lines 1–3 are the header and a blank line; 4–6 the extra lines; turns from 7.
    XCTAssertEqual(listing.sources.map(\.transcriptLine), [7, 11, 8])
  }

  func testEveryRejectedTurnIsNamedWithFileLineAndReason() throws {
    let directory = TemporaryDirectory("fisher-reject")
    let fixture = FisherFixture(root: directory.path)
    try writeDevConversation(fixture)
    let listing = try FisherReader(root: directory.path).list(splits: ["dev"])
    XCTAssertEqual(try FisherReader(root: directory.path, pool: WorkerPool(threads: 4)).list(splits: ["dev"]).rejections, listing.rejections)
    let summary = listing.rejections.map { "\($0.reason.rawValue)@\($0.line ?? 0):\($0.utteranceId ?? "-")" }
    XCTAssertEqual(
      summary,
      [
        "malformed_transcript@4:-", "malformed_transcript@5:-", "malformed_transcript@6:-",
        "uncertain_transcript@9:fe_03_00001-A-000260-000330", "empty_transcript@10:fe_03_00001-B-000350-000400",
        "duplicate_id@12:fe_03_00001-A-000410-000520",
      ])
    XCTAssertTrue(listing.rejections.allSatisfy { $0.file == fixture.transcriptPath(1) && $0.split == "dev" })
  }

  /// The decoded audio of each turn is its own channel's tone over exactly its span: a
  /// B turn that overlaps an A turn in time holds B's tone, not A's.
  func testEachTurnDecodesToItsOwnChannelAndSpan() throws {
    let directory = TemporaryDirectory("fisher-audio")
    let fixture = FisherFixture(root: directory.path)
    try writeDevConversation(fixture)
    let listing = try FisherReader(root: directory.path).list(splits: ["dev"])
    let toneOf = ["fe_03_00001-A-000050-000150": 300.0, "fe_03_00001-A-000410-000520": 900, "fe_03_00001-B-000120-000240": 1100]
    let allTones = [300.0, 500, 700, 900, 1100]
    for source in listing.sources {
      let waveform = try AudioDecoder.decode(
        path: source.audioPath, channel: source.channel, startSeconds: source.startSeconds,
        durationSeconds: source.durationSeconds)
      XCTAssertEqual(waveform.sampleRateHertz, 8_000)
      XCTAssertEqual(waveform.samples.count, Int((source.durationSeconds! * 8_000).rounded()), source.id)
      let own = tonePower(waveform.samples, frequencyHertz: toneOf[source.id]!, sampleRateHertz: 8_000)
      for other in allTones where other != toneOf[source.id] {
        XCTAssertGreaterThan(own, 1_000 * tonePower(waveform.samples, frequencyHertz: other, sampleRateHertz: 8_000), "\(source.id) at \(other) Hz")
      }
      // The tone fills the segment to both ends (5 ms windows): the cut is on the turn.
      for window in [waveform.samples.prefix(40), waveform.samples.suffix(40)] {
        let rms = (window.reduce(0) { $0 + Double($1 * $1) } / Double(window.count)).squareRoot()
        XCTAssertGreaterThan(rms, 0.2, "\(source.id) has silence at a boundary")
      }
    }
  }

  func testSplitsComeFromConversationNumbersAcrossBothParts() throws {
    let directory = TemporaryDirectory("fisher-splits")
    let fixture = FisherFixture(root: directory.path)
    for number in [3, 60, 200, 6000] {
      try fixture.write(number: number, seconds: 2, turns: [.init(0.1, 1.0, "B", "word", frequencyHertz: 400)])
    }
    XCTAssertTrue(fixture.audioPath(6000).contains("/LDC2005S13/fe_03_p2_sph1/audio/060/"))
    let listing = try FisherReader(root: directory.path).list(splits: ["train", "dev", "test"])
    XCTAssertEqual(listing.sources.map(\.id), [
      "fe_03_00200-B-000010-000100", "fe_03_06000-B-000010-000100",  // train, both parts
      "fe_03_00003-B-000010-000100",  // dev
      "fe_03_00060-B-000010-000100",  // test
    ])
    XCTAssertEqual(listing.sources.map(\.split), ["train", "train", "dev", "test"])
    XCTAssertEqual(listing.rejections, [])
    let onThreads = try FisherReader(root: directory.path, pool: WorkerPool(threads: 3)).list(splits: ["train", "dev", "test"])
    XCTAssertEqual(onThreads.sources, listing.sources, "the listing does not depend on the thread count")

    let onlyDev = TemporaryDirectory("fisher-dev-only")
    try FisherFixture(root: onlyDev.path).write(number: 7, seconds: 2, turns: [.init(0.1, 1.0, "A", "hello", frequencyHertz: 400)])
    let partial = try FisherReader(root: onlyDev.path).list(splits: ["train", "dev"])
    XCTAssertEqual(partial.missingSplits, ["train"])
    XCTAssertEqual(partial.sources.count, 1)
    XCTAssertThrowsError(try FisherReader(root: onlyDev.path).list(splits: ["test"])) { error in
      XCTAssertTrue("\(error)".contains("holds none of the splits test"), "\(error)")
    }
  }

  /// Real Fisher audio is shorten-compressed SPHERE: the conversation is rejected once,
  /// at listing, naming the file and what to do; a converted WAV anywhere under the root
  /// is preferred.
  func testShortenSphereIsRejectedOncePerConversationAndAConvertedFileIsPreferred() throws {
    let directory = TemporaryDirectory("fisher-shorten")
    let fixture = FisherFixture(root: directory.path)
    try fixture.write(
      number: 120, seconds: 3,
      turns: [.init(0.1, 1.0, "A", "one", frequencyHertz: 400), .init(1.1, 2.0, "B", "two", frequencyHertz: 800)],
      writeAudio: false)
    // A header as LDC ships it (1024 bytes), followed by bytes that are not µ-law.
    var header = "NIST_1A\n   1024\nchannel_count -i 2\nsample_rate -i 8000\nsample_n_bytes -i 1\n"
      + "sample_coding -s26 ulaw,embedded-shorten-v2.00\nend_head\n"
    header += String(repeating: " ", count: 1024 - header.utf8.count)
    let sphere = fixture.audioPath(120)
    try FileManager.default.createDirectory(
      atPath: (sphere as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try (Data(header.utf8) + Data(repeating: 0x5A, count: 4000)).write(to: URL(fileURLWithPath: sphere))

    let listing = try FisherReader(root: directory.path).list(splits: ["train"])
    XCTAssertEqual(listing.sources, [])
    XCTAssertEqual(listing.rejections.count, 1)
    let rejection = try XCTUnwrap(listing.rejections.first)
    XCTAssertEqual(rejection.reason, .unsupportedEncoding)
    XCTAssertEqual(rejection.file, sphere)
    XCTAssertTrue(rejection.message.contains("shorten"), rejection.message)
    XCTAssertTrue(rejection.message.contains("sph2pipe"), rejection.message)
    XCTAssertTrue(rejection.message.contains("docs/CORPORA.md"), rejection.message)
    XCTAssertTrue(rejection.message.contains("all 2 turns of fe_03_00120"), rejection.message)

    // The user converts it into any folder under the root: decompressed SPHERE (which
    // sorts after the original, so the original must be skipped by its header) …
    let convertedSphere = directory.path + "/converted/fe_03_00120.sph"
    try FileManager.default.createDirectory(atPath: directory.path + "/converted", withIntermediateDirectories: true)
    let twoChannels = [Float](repeating: 0.1, count: 2 * 3 * 8_000)
    try AudioEncoder.write(interleaved: twoChannels, channels: 2, sampleRateHertz: 8_000, format: .sphereULaw, to: convertedSphere)
    let afterSphere = try FisherReader(root: directory.path).list(splits: ["train"])
    XCTAssertEqual(afterSphere.rejections, [])
    XCTAssertEqual(afterSphere.sources.map(\.audioPath), [convertedSphere, convertedSphere])
    // … and WAV, which is preferred over SPHERE.
    let convertedWave = directory.path + "/wav/fe_03_00120.wav"
    try FileManager.default.createDirectory(atPath: directory.path + "/wav", withIntermediateDirectories: true)
    try AudioEncoder.write(interleaved: twoChannels, channels: 2, sampleRateHertz: 8_000, format: .wavPCM16, to: convertedWave)
    let afterWave = try FisherReader(root: directory.path).list(splits: ["train"])
    XCTAssertEqual(afterWave.rejections, [])
    XCTAssertEqual(afterWave.sources.map(\.audioPath), [convertedWave, convertedWave])
  }

  func testConversationsWithoutAudioOrTranscriptAreNamed() throws {
    let directory = TemporaryDirectory("fisher-missing")
    let fixture = FisherFixture(root: directory.path)
    try fixture.write(number: 300, seconds: 2, turns: [.init(0.1, 1.0, "A", "a b", frequencyHertz: 400)], writeAudio: false)
    try fixture.write(number: 301, seconds: 2, turns: [.init(0.1, 1.0, "A", "c d", frequencyHertz: 400)])
    try FileManager.default.removeItem(atPath: fixture.transcriptPath(301))
    try fixture.write(number: 302, seconds: 2, turns: [.init(0.1, 1.0, "A", "e f", frequencyHertz: 400)])
    let listing = try FisherReader(root: directory.path).list(splits: ["train"])
    XCTAssertEqual(listing.sources.map(\.id), ["fe_03_00302-A-000010-000100"])
    XCTAssertEqual(listing.rejections.map(\.reason), [.missingAudio, .missingTranscript])
    XCTAssertEqual(listing.rejections.map(\.file), [fixture.transcriptPath(300), fixture.audioPath(301)])
  }

  func testFileNamesOutsideTheFisherPatternAreIgnored() {
    XCTAssertEqual(FisherReader.parseFileName("fe_03_00001.sph")?.0, 1)
    XCTAssertEqual(FisherReader.parseFileName("fe_03_11699.txt")?.0, 11699)
    XCTAssertNil(FisherReader.parseFileName("fe_03_p1_calldata.tbl"))
    XCTAssertNil(FisherReader.parseFileName("fe_03_0001.sph"))
    XCTAssertNil(FisherReader.parseFileName("fe_03_00001.sph.bak"))
    XCTAssertNil(FisherReader.parseFileName("filetable.txt"))
    XCTAssertEqual(FisherReader.split(ofConversation: 50), "dev")
    XCTAssertEqual(FisherReader.split(ofConversation: 51), "test")
    XCTAssertEqual(FisherReader.split(ofConversation: 101), "train")
  }
}
