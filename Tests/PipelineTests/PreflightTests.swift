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
    for (predicted, split) in zip(dry.splits, manifest.splits) {
      XCTAssertEqual(predicted.outputBytes, split.shards.reduce(0) { $0 + $1.bytes }, "\(split.name): LMDB's layout predicted")
      XCTAssertGreaterThan(predicted.etaSeconds, 0, split.name)
    }
    XCTAssertEqual(Double(dry.outputBytes), Double(try filesBytes(recipe.output)), accuracy: 0.005 * Double(dry.outputBytes))
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

  /// Small shards of short utterances (Fisher's turns, AISHELL's sentences), in every dtype:
  /// each split's predicted size is its shard files' size, and the total is that of every
  /// file the run writes within 0.5 %.
  func testDryRunSizeIsExactForEveryCorpusAndDtype() throws {
    let directory = TemporaryDirectory("preflight-sizes")
    for name in ["mini-fisher", "mini-aishell"] {
      for dtype in [FeatureDType.float16, .float32, .uint8] {
        let copy = directory.path + "/\(name)-corpus"
        if !FileManager.default.fileExists(atPath: copy) {
          try FileManager.default.copyItem(atPath: repositoryRoot + "/corpora/" + name, toPath: copy)
          // As cloned: AISHELL-1's speakers packed (earlier runs unpack them in the repository).
          for split in ["train", "dev", "test"] { try? FileManager.default.removeItem(atPath: copy + "/data_aishell/wav/" + split) }
        }
        var recipe = try Recipe.load(path: repositoryRoot + "/recipes/\(name).yaml")
        recipe.corpus.root = copy
        recipe.shards.dtype = dtype
        recipe.output = directory.path + "/\(name)-\(dtype)"
        recipe.threads = 1
        let corpusBefore = (FileManager.default.enumerator(atPath: copy)?.allObjects as? [String] ?? []).sorted()
        let dry = try XCTUnwrap(try prepare(recipe: recipe, options: options()).preflight)
        XCTAssertEqual(
          (FileManager.default.enumerator(atPath: copy)?.allObjects as? [String] ?? []).sorted(), corpusBefore,
          "a dry run writes nothing into the corpus (AISHELL-1's archives are read, not unpacked)")
        _ = try prepare(recipe: recipe, options: options(dryRun: false))
        let manifest = try Dataset(directory: recipe.output).manifest
        for (predicted, split) in zip(dry.splits, manifest.splits) {
          XCTAssertEqual(predicted.outputBytes, split.shards.reduce(0) { $0 + $1.bytes }, "\(name) \(dtype) \(split.name)")
        }
        let written = try filesBytes(recipe.output)
        XCTAssertEqual(Double(dry.outputBytes), Double(written), accuracy: 0.005 * Double(written), "\(name) \(dtype)")
      }
    }
  }

  /// Shards that take one, two, three and many transactions (the pages their commits
  /// leave differ): float32 mini-LibriSpeech at shard caps of 1, 3, 5 MiB and the default.
  func testDryRunSizeIsExactAcrossCommitCounts() throws {
    let directory = TemporaryDirectory("preflight-commits")
    for cap in [1 << 20, 3 << 20, 5 << 20, 1 << 30] {
      var recipe = try Recipe.load(path: repositoryRoot + "/recipes/mini-librispeech.yaml")
      recipe.corpus.root = repositoryRoot + "/corpora/mini-librispeech"
      recipe.shards.dtype = .float32
      recipe.shards.maxShardBytes = cap
      recipe.output = directory.path + "/cap-\(cap)"
      let dry = try XCTUnwrap(try prepare(recipe: recipe, options: options()).preflight)
      _ = try prepare(recipe: recipe, options: options(dryRun: false))
      let manifest = try Dataset(directory: recipe.output).manifest
      for (predicted, split) in zip(dry.splits, manifest.splits) {
        XCTAssertEqual(predicted.outputBytes, split.shards.reduce(0) { $0 + $1.bytes }, "cap \(cap) \(split.name)")
      }
    }
  }

  /// Bytes of every file under `path`.
  func filesBytes(_ path: String) throws -> Int {
    var total = 0
    let enumerator = FileManager.default.enumerator(atPath: path)
    while let entry = enumerator?.nextObject() as? String {
      let attributes = try FileManager.default.attributesOfItem(atPath: path + "/" + entry)
      if attributes[.type] as? FileAttributeType == .typeRegular { total += (attributes[.size] as? NSNumber)?.intValue ?? 0 }
    }
    return total
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
      XCTAssertTrue("\(error)".contains("the shards need") && "\(error)".contains("976.6 KiB free"), "\(error)")
    }
    let shards = (try? FileManager.default.contentsOfDirectory(atPath: recipe.output + "/shards")) ?? []
    XCTAssertTrue(shards.isEmpty, "no shard written: \(shards)")
    small.ignoreFreeSpace = true
    XCTAssertGreaterThan(try prepare(recipe: recipe, options: small).records, 0)
  }
}
