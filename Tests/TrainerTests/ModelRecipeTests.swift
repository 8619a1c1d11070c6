import DS2Core
import Foundation
import TestSupport
import Training
import XCTest

@testable import Trainer

final class ModelRecipeTests: XCTestCase {
  func testBundledModelFilesLoad() throws {
    let folder = repositoryRoot + "/recipes/models"
    let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".yaml") }.sorted()
    XCTAssertTrue(files.contains("ds2-small.yaml") && files.contains("ds2-mini.yaml"), "\(files)")
    for file in files { XCTAssertNoThrow(try ModelRecipe.load(path: folder + "/" + file), file) }
    let small = try ModelRecipe.load(path: folder + "/ds2-small.yaml")
    var config = small.model.config(bins: 161, vocabularySize: 29)
    config.seed = ModelConfig.ds2Small.seed
    XCTAssertEqual(config, .ds2Small, "ds2-small.yaml is the PyTorch peer's model")
    XCTAssertEqual(small.training.momentum, 0.99)
    XCTAssertEqual(small.training.annealing, 1.2)
    XCTAssertEqual(try ModelRecipe.load(path: folder + "/ds2-mini.yaml"), .small, "ds2-mini.yaml mirrors the built-in default")
  }

  func testDefaultsUnknownKeysAndBadValues() throws {
    let directory = TemporaryDirectory("model-yaml")
    let path = directory.file("m.yaml")
    try "model: {hidden: 64}\n".write(toFile: path, atomically: true, encoding: .utf8)
    let recipe = try ModelRecipe.load(path: path)
    XCTAssertEqual(recipe.model.hidden, 64)
    XCTAssertEqual(recipe.model.recurrentLayers, 3)
    XCTAssertEqual(recipe.training, TrainingSection())
    try "model: {hiden: 64}\n".write(toFile: path, atomically: true, encoding: .utf8)
    XCTAssertThrowsError(try ModelRecipe.load(path: path)) { error in
      XCTAssertTrue("\(error)".contains("unknown key hiden"), "\(error)")
      XCTAssertTrue("\(error)".contains(path), "\(error)")
    }
    try "model: {recurrentLayers: 9}\n".write(toFile: path, atomically: true, encoding: .utf8)
    XCTAssertThrowsError(try ModelRecipe.load(path: path)) { XCTAssertTrue("\($0)".contains("model.recurrentLayers: 9 is out of range (1 … 7)"), "\($0)") }
    try "model: {cell: lstm}\n".write(toFile: path, atomically: true, encoding: .utf8)
    XCTAssertThrowsError(try ModelRecipe.load(path: path)) { XCTAssertTrue("\($0)".contains("model.cell"), "\($0)") }
  }

  /// Every number of a model YAML is finite and within its documented range; the
  /// message names the file and the field.
  func testNonFiniteAndOutOfRangeValuesAreNamed() throws {
    let directory = TemporaryDirectory("model-yaml-range")
    let path = directory.file("m.yaml")
    let cases: [(String, String)] = [
      ("training: {learningRate: .nan}", "training.learningRate: nan is not a finite number (> 0 … 10)"),
      ("training: {learningRate: .inf}", "training.learningRate: inf is not a finite number"),
      ("training: {learningRate: 0}", "training.learningRate: 0 is out of range (> 0 … 10)"),
      ("training: {momentum: .nan}", "training.momentum: nan is not a finite number (0 … < 1)"),
      ("training: {momentum: 1}", "training.momentum: 1 is out of range (0 … < 1)"),
      ("training: {annealing: .inf}", "training.annealing: inf is not a finite number"),
      ("training: {maxGradientNorm: -.inf}", "training.maxGradientNorm: -inf is not a finite number"),
      ("training: {epochs: 9223372036854775807}", "training.epochs: 9223372036854775807 is out of range (1 … 1000000)"),
      ("training: {epochs: 0}", "training.epochs: 0 is out of range"),
      ("training: {batchSize: 100000}", "training.batchSize: 100000 is out of range (1 … 65536 utterances)"),
      ("training: {maxBatchFrames: 0}", "training.maxBatchFrames: 0 is out of range"),
      ("training: {checkpointEverySteps: -1}", "training.checkpointEverySteps: -1 is out of range"),
      ("training: {maxFrames: -5}", "training.maxFrames: -5 is out of range"),
      ("training: {threads: 100000}", "training.threads: 100000 is out of range (0 … 1024"),
      ("decoding: {alpha: .nan}", "decoding.alpha: nan is not a finite number (0 … 100)"),
      ("decoding: {beta: -.inf}", "decoding.beta: -inf is not a finite number"),
      ("decoding: {beamWidth: 0}", "decoding.beamWidth: 0 is out of range (1 … 4096)"),
      ("model: {hidden: 1000000}", "model.hidden: 1000000 is out of range (1 … 4096)"),
      ("model: {recurrentLayers: 0}", "model.recurrentLayers: 0 is out of range (1 … 7)"),
      ("model: {convolutions: [{channels: 5000}]}", "model.convolutions[0].channels: 5000 is out of range (1 … 1024)"),
      ("model: {convolutions: [{}, {kernelTime: 1000}]}", "model.convolutions[1].kernelTime: 1000 is out of range (1 … 128 frames)"),
      ("model: {convolutions: [{strideFrequency: 0}]}", "model.convolutions[0].strideFrequency: 0 is out of range"),
      ("model: {convolutions: [{paddingTime: 99}]}", "model.convolutions[0].paddingTime: 99 is out of range (0 … kernelTime 11)"),
      ("model: {convolutions: [{}, {}, {}, {}]}", "model.convolutions: 4 is out of range (0 … 3 layers)"),
    ]
    for (yaml, expected) in cases {
      try yaml.write(toFile: path, atomically: true, encoding: .utf8)
      XCTAssertThrowsError(try ModelRecipe.load(path: path), yaml) { error in
        XCTAssertTrue(error is ConfigurationError, "\(error)")
        XCTAssertTrue("\(error)".contains("model \(path): " + expected), "\(yaml) → \(error)")
      }
    }
  }

  /// 5,000 nested `[` in a model YAML: an error naming the file, not a stack overflow.
  func testDeeplyNestedModelYAMLIsRefusedBeforeParsing() throws {
    let directory = TemporaryDirectory("model-yaml-deep")
    let path = directory.file("m.yaml")
    try ("model:\n  convolutions: " + String(repeating: "[", count: 5_000) + String(repeating: "]", count: 5_000) + "\n")
      .write(toFile: path, atomically: true, encoding: .utf8)
    XCTAssertThrowsError(try ModelRecipe.load(path: path)) { error in
      XCTAssertTrue(error is ConfigurationError, "\(error)")
      XCTAssertTrue("\(error)".contains("model \(path): line 2 nests deeper than 64 levels"), "\(error)")
    }
  }

  /// A shape within every field's range may still be too large as a whole: the weight count
  /// is bounded when the model is built for a dataset.
  func testWeightCountIsBounded() {
    XCTAssertLessThan(ModelConfig.ds2Small.weightCount, 1e7)
    let huge = ModelConfig(inputBins: 32_769, convLayers: [], rnnCell: .gru, rnnLayers: 7, rnnHidden: 4_096, vocabularySize: 5_000)
    XCTAssertThrowsError(try huge.validate()) { XCTAssertTrue("\($0)".contains("weights"), "\($0)") }
    var config = ModelConfig.ds2Small
    config.convLayers[0].channels = 100_000
    XCTAssertThrowsError(try config.validate()) { XCTAssertTrue("\($0)".contains("convLayers[0].channels: 100000"), "\($0)") }
  }
}
