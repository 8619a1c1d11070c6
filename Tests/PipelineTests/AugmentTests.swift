import Audio
import Augmentation
import DS2Core
import Foundation
import Shards
import TestSupport
import XCTest

@testable import Pipeline

final class AugmentPipelineTests: XCTestCase {
  func makeSetup(_ directory: TemporaryDirectory) throws -> Recipe {
    let root = directory.path + "/corpus"
    try LibriSpeechFixture(root: root).write(LibriSpeechFixture.standard(perSplit: 6))
    for i in 0..<2 {
      try AudioEncoder.write(
        interleaved: Signals.noise(count: 24_000, amplitude: 0.2, seed: UInt64(i)), sampleRateHertz: 16_000,
        format: .wavPCM16, to: directory.file("bank/noise/n\(i).wav"))
    }
    try AudioEncoder.write(
      interleaved: [1, 0.4, 0.2, 0.1], sampleRateHertz: 16_000, format: .wavFloat, to: directory.file("rirs/r.wav"))
    var recipe = Recipe(
      name: "aug", corpus: CorpusConfig(kind: .librispeech, root: root, splits: ["train-clean-100", "dev-clean"]),
      output: directory.path + "/aug")
    recipe.threads = 1
    var config = AugmentConfig()
    config.noise.bank = directory.path + "/bank"
    config.volume.probability = 0.3
    config.reverb.impulseResponses = directory.path + "/rirs"
    config.reverb.probability = 0.3
    recipe.augment = config
    return recipe
  }

  func quiet() -> PrepareOptions {
    var options = PrepareOptions()
    options.logger.logLevel = .critical
    return options
  }

  func testAugmentedDatasetIsLengthSortedWithProvenanceAndCleanEvaluationSplits() throws {
    let directory = TemporaryDirectory("augment")
    let recipe = try makeSetup(directory)
    let report = try augment(recipe: recipe, options: quiet())
    XCTAssertEqual(report.rejectedCount, 0)
    let dataset = try Dataset(directory: recipe.output)
    XCTAssertEqual(dataset.manifest.split(named: "train-clean-100")?.records, 18)  // 6 × 3 speeds
    XCTAssertEqual(dataset.manifest.split(named: "dev-clean")?.records, 6)  // clean
    let augmenter = try Augmenter(config: recipe.augment!, sampleRateHertz: 16_000, seed: recipe.seed)
    var previous = (0, [UInt8]())
    var speeds: [String: Int] = [:]
    var noisy = 0
    try dataset.forEachRecord(split: "train-clean-100", normalized: false) { record in
      XCTAssertTrue(previous.0 < record.frames || (previous.0 == record.frames && previous.1.lexicographicallyPrecedes(Array(record.id.utf8))))
      previous = (record.frames, Array(record.id.utf8))
      struct Info: Decodable { var speaker: String?; var augmentation: AugmentationPlan }
      let info = try JSONDecoder().decode(Info.self, from: Data(record.infoJSON.utf8))
      var plan = info.augmentation
      XCTAssertEqual(AugmentConfig.copyId(plan.source, factor: plan.speed), record.id)
      speeds[AugmentConfig.label(plan.speed), default: 0] += 1
      if plan.noise != nil { noisy += 1 }
      // Provenance round trip: the stored plan is the plan drawn for (seed, source, copy).
      plan.clippingScale = nil
      XCTAssertEqual(plan, augmenter.plan(source: plan.source, copy: plan.copy, factor: plan.speed, samples: record.sampleCount))
      return true
    }
    XCTAssertEqual(speeds, ["0.9": 6, "1.0": 6, "1.1": 6])
    XCTAssertGreaterThan(noisy, 0)
    try dataset.forEachRecord(split: "dev-clean") { record in
      XCTAssertFalse(record.infoJSON.contains("augmentation"))
      return true
    }
    XCTAssertTrue(verifyDataset(directory: recipe.output).isIntact)
  }

  func testAugmentIsByteIdenticalForOneAndTwoThreads() throws {
    let directory = TemporaryDirectory("augment-threads")
    var recipe = try makeSetup(directory)
    var outputs: [String] = []
    for threads in [1, 2] {
      recipe.threads = threads
      recipe.output = directory.path + "/out\(threads)"
      _ = try augment(recipe: recipe, options: quiet())
      outputs.append(recipe.output)
    }
    let manifest = try Dataset(directory: outputs[0]).manifest
    XCTAssertEqual(
      try Data(contentsOf: URL(fileURLWithPath: outputs[0] + "/manifest.json")),
      try Data(contentsOf: URL(fileURLWithPath: outputs[1] + "/manifest.json")))
    for split in manifest.splits {
      for shard in split.shards {
        XCTAssertEqual(
          try Data(contentsOf: URL(fileURLWithPath: outputs[0] + "/" + shard.file)),
          try Data(contentsOf: URL(fileURLWithPath: outputs[1] + "/" + shard.file)), shard.file)
      }
    }
  }

  func testStatisticsCanComeFromTheCleanDataset() throws {
    let directory = TemporaryDirectory("augment-stats")
    var recipe = try makeSetup(directory)
    var clean = recipe
    clean.output = directory.path + "/clean"
    _ = try prepare(recipe: clean, options: quiet())
    recipe.augment!.statisticsFrom = clean.output
    _ = try augment(recipe: recipe, options: quiet())
    let augmented = try Dataset(directory: recipe.output).manifest.normalization
    let cleanStats = try Dataset(directory: clean.output).manifest.normalization
    XCTAssertEqual(augmented.statistics, cleanStats.statistics)
    XCTAssertEqual(augmented.statisticsSplits, ["\(clean.output):train-clean-100"])
    XCTAssertTrue(verifyDataset(directory: recipe.output).isIntact)
    // Statistics of other features are refused before any work, naming the settings.
    var other = recipe
    other.output = directory.path + "/other"
    other.features.windowSeconds = 0.025
    XCTAssertThrowsError(try augment(recipe: other, options: quiet())) {
      XCTAssertTrue("\($0)".contains("different feature settings") && "\($0)".contains("features.windowSeconds 0.02 → 0.025"), "\($0)")
    }
    XCTAssertFalse(FileManager.default.fileExists(atPath: other.output), "nothing written")
  }
}
