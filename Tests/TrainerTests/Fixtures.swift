import DS2Core
import Foundation
import Pipeline
import Shards
import TestSupport
import Training
import XCTest

@testable import Trainer

/// A small prepared dataset (three splits of generated "voiced" audio) in a temp directory.
final class FixtureDataset {
  let directory = TemporaryDirectory("trainer")
  let path: String

  init(perSplit: Int = 8, name: String = "data") throws {
    let root = directory.path + "/corpus"
    try LibriSpeechFixture(root: root).write(LibriSpeechFixture.standard(perSplit: perSplit))
    path = directory.path + "/" + name
    var recipe = Recipe(
      name: "fixture",
      corpus: CorpusConfig(kind: .librispeech, root: root, splits: ["train-clean-100", "dev-clean", "test-clean"]),
      output: path)
    recipe.threads = 1
    recipe.shards.maxShardBytes = 1 << 20
    var options = PrepareOptions()
    options.logger.logLevel = .critical
    _ = try prepare(recipe: recipe, options: options)
  }
}

/// A model small enough that a debug build trains it in seconds.
func tinyRecipe(cell: RecurrentCell = .gru) -> ModelRecipe {
  var recipe = ModelRecipe()
  recipe.name = "tiny"
  recipe.model.convolutions = [ModelSection.Convolution(channels: 2, kernelTime: 5, kernelFrequency: 21, strideTime: 2, strideFrequency: 4)]
  recipe.model.cell = cell
  recipe.model.recurrentLayers = 1
  recipe.model.hidden = 24
  recipe.training.epochs = 2
  recipe.training.batchSize = 3
  recipe.training.optimizer = .adam
  recipe.training.learningRate = 3e-3
  recipe.training.checkpointEverySteps = 2
  recipe.training.threads = 1
  return recipe
}

/// Collects what a run reports.
final class RecordingObserver: TrainingObserver {
  var steps: [StepMetrics] = []
  var evaluations: [EvaluationResult] = []
  var notices: [String] = []
  func stepFinished(_ metrics: StepMetrics) { steps.append(metrics) }
  func evaluationFinished(_ result: EvaluationResult) { evaluations.append(result) }
  func notice(_ message: String) { notices.append(message) }
}

/// The JSON objects of a metrics file.
func metricsLines(_ path: String) throws -> [[String: Any]] {
  let text = try String(contentsOfFile: path, encoding: .utf8)
  return try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
}
