import Foundation
import Shards
import TestSupport
import XCTest

/// The documented commands for the bundled Fisher and AISHELL corpora (docs/CORPORA.md),
/// run with the real binary.
final class CorporaCLITests: XCTestCase {
  func testMiniFisherCommand() throws {
    let directory = TemporaryDirectory("cli-fisher")
    let output = directory.path + "/mini-fisher"
    let result = try runBinary(["prepare", "recipes/mini-fisher.yaml", "--output", output])
    XCTAssertEqual(result.status, 3, result.stderr)
    XCTAssertTrue(result.stdout.contains("rejected 2: empty_transcript 1, uncertain_transcript 1"), result.stdout)
    XCTAssertTrue(result.stderr.contains("fe_03_00001.txt:14: uncertain_transcript"), result.stderr)
    XCTAssertEqual(try Dataset(directory: output).manifest.splits.map(\.records), [11, 4, 4])
  }

  /// Run on a copy of the committed archives, so the test does not unpack into the
  /// repository.
  func testMiniAISHELLCommand() throws {
    let directory = TemporaryDirectory("cli-aishell")
    let bundled = repositoryRoot + "/corpora/mini-aishell/data_aishell"
    let corpus = directory.path + "/aishell/data_aishell"
    try copyTree(bundled + "/transcript", to: corpus + "/transcript")
    for archive in try FileManager.default.contentsOfDirectory(atPath: bundled + "/wav") where archive.hasSuffix(".tar.gz") {
      try copyTree(bundled + "/wav/" + archive, to: corpus + "/wav/" + archive)
    }
    let output = directory.path + "/mini-aishell"
    let result = try runBinary(
      ["prepare", "recipes/mini-aishell.yaml", "--corpus-root", directory.path + "/aishell", "--output", output])
    XCTAssertEqual(result.status, 3, result.stderr)
    XCTAssertTrue(result.stdout.contains("rejected 3: missing_transcript 2, out_of_vocabulary 1"), result.stdout)
    let dataset = try Dataset(directory: output)
    XCTAssertEqual(dataset.manifest.splits.map(\.records), [12, 2, 3])
    XCTAssertEqual(dataset.manifest.vocabulary.count, 37)
    XCTAssertTrue(FileManager.default.fileExists(atPath: corpus + "/wav/train/S0002/BAC009S0002W0121.wav"))
  }
}
