import DS2Core
import Foundation
import Shards
import TestSupport
import XCTest

@testable import Pipeline

/// `prepare --dry-run`: sizes, histogram and ETA without writing; the free-space check of a
/// real run.
final class PreflightTests: XCTestCase {
  func options(dryRun: Bool = true) -> PrepareOptions {
    var options = PrepareOptions()
    options.logger.logLevel = .critical
    options.dryRun = dryRun
    return options
  }

  /// On the bundled corpus: nothing is written; per split the utterances and hours equal a
  /// real run's records, the histogram counts them all, and the estimated size is within
  /// 2 % of the real shards' bytes; the ETA is positive. An augment dry run plans the speed
  /// copies. A corpus root holding nothing fails as a real run does.
  func testDryRunPredictsTheRealRun() throws {
    let directory = TemporaryDirectory("preflight")
    var recipe = try Recipe.load(path: repositoryRoot + "/recipes/mini-librispeech.yaml")
    recipe.corpus.root = repositoryRoot + "/corpora/mini-librispeech"
    recipe.output = directory.path + "/out"
    recipe.threads = 1
    let dry = try XCTUnwrap(try prepare(recipe: recipe, options: options()).preflight)
    XCTAssertFalse(FileManager.default.fileExists(atPath: recipe.output), "a dry run writes nothing")
    let real = try prepare(recipe: recipe, options: options(dryRun: false))
    let manifest = try Dataset(directory: recipe.output).manifest
    XCTAssertEqual(dry.splits.map(\.name), manifest.splits.map(\.name))
    for (predicted, split) in zip(dry.splits, manifest.splits) {
      XCTAssertEqual(predicted.utterances, split.records, split.name)
      XCTAssertEqual(predicted.audioSeconds, split.audioSeconds, accuracy: 1e-6, split.name)
      XCTAssertEqual(predicted.histogram.reduce(0) { $0 + $1.count }, split.records, split.name)
      XCTAssertEqual(predicted.shards, split.shards.count, split.name)
    }
    let bytes = manifest.splits.flatMap(\.shards).reduce(0) { $0 + $1.bytes }
    XCTAssertEqual(Double(dry.outputBytes), Double(bytes), accuracy: 0.02 * Double(bytes), "size within 2 %")
    XCTAssertGreaterThan(dry.etaSeconds, 0)
    XCTAssertGreaterThan(dry.calibration.realTimeFactor, 0)
    XCTAssertEqual(dry.utterances, real.records)

    var augmented = recipe
    augmented.output = directory.path + "/augmented"
    let copies = try XCTUnwrap(try augment(recipe: augmented, options: options()).preflight)
    let training = try XCTUnwrap(copies.splits.first { $0.name == "train-clean-100" })
    XCTAssertEqual(training.utterances, 3 * manifest.splits[0].records, "three speed copies")
    XCTAssertFalse(FileManager.default.fileExists(atPath: augmented.output))

    var empty = recipe
    empty.corpus.root = directory.path + "/nothing"
    try FileManager.default.createDirectory(atPath: empty.corpus.root, withIntermediateDirectories: true)
    empty.output = directory.path + "/empty"
    var messages: [String] = []
    for dryRun in [true, false] {
      XCTAssertThrowsError(try prepare(recipe: empty, options: options(dryRun: dryRun))) { messages.append("\($0)") }
    }
    XCTAssertEqual(messages.count, 2)
    XCTAssertEqual(messages.first, messages.last, "the same error as a real run")
  }

  /// A real run whose shards need more than the filesystem has free refuses to write them,
  /// naming both sizes; `ignoreFreeSpace` goes on.
  func testARunRefusesWhenTheDiskIsTooSmall() throws {
    let directory = TemporaryDirectory("free-space")
    var recipe = try Recipe.load(path: repositoryRoot + "/recipes/mini-librispeech.yaml")
    recipe.corpus.root = repositoryRoot + "/corpora/mini-librispeech"
    recipe.output = directory.path + "/out"
    recipe.threads = 1
    var small = options(dryRun: false)
    small.freeSpace = { _ in 1_000_000 }
    XCTAssertThrowsError(try prepare(recipe: recipe, options: small)) { error in
      XCTAssertTrue("\(error)".contains("the shards need about") && "\(error)".contains("976.6 KiB free"), "\(error)")
    }
    let shards = (try? FileManager.default.contentsOfDirectory(atPath: recipe.output + "/shards")) ?? []
    XCTAssertTrue(shards.isEmpty, "no shard written: \(shards)")
    small.ignoreFreeSpace = true
    XCTAssertGreaterThan(try prepare(recipe: recipe, options: small).records, 0)
  }
}
