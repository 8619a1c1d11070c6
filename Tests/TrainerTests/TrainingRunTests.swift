import DS2Core
import Foundation
import Pipeline
import Shards
import TestSupport
import Training
import XCTest

@testable import Trainer

final class TrainingRunTests: XCTestCase {
  /// A two-epoch run writes one metrics object per step and per evaluation, the epoch,
  /// latest and best checkpoints, and anneals the learning rate.
  func testRunWritesMetricsCheckpointsAndEvaluations() throws {
    let data = try FixtureDataset()
    let run = data.directory.path + "/run"
    let observer = RecordingObserver()
    var options = TrainOptions(datasets: [data.path], recipe: tinyRecipe(), output: run)
    options.observer = observer
    let report = try train(options)
    let layout = RunLayout(run)
    XCTAssertEqual(report.progress.epoch, 2)
    XCTAssertEqual(report.progress.step, 6, "8 training utterances in batches of 3 → 3 steps per epoch")
    XCTAssertEqual(report.progress.learningRate, 3e-3 / 1.44, accuracy: 1e-12)
    for path in [layout.latest, layout.best, layout.epoch(1), layout.epoch(2), layout.recipe] {
      XCTAssertTrue(FileManager.default.fileExists(atPath: path), path)
    }
    let lines = try metricsLines(layout.metrics)
    let steps = lines.filter { $0["type"] as? String == "step" }
    let evaluations = lines.filter { $0["type"] as? String == "eval" }
    XCTAssertEqual(steps.map { $0["step"] as? Int }, (1...6).map { $0 })
    XCTAssertEqual(steps.map { $0["epoch"] as? Int }, [1, 1, 1, 2, 2, 2])
    for step in steps {
      for key in ["loss", "lr", "gradNorm", "audioSecondsPerSecond", "dataWaitSeconds"] { XCTAssertNotNil(step[key] as? Double, key) }
    }
    XCTAssertEqual(evaluations.count, 2)
    XCTAssertEqual(evaluations.map { $0["split"] as? String }, ["dev-clean", "dev-clean"])
    XCTAssertNotNil(evaluations.first?["cer"] as? Double)
    XCTAssertNotNil(evaluations.first?["wer"] as? Double)
    XCTAssertEqual(observer.steps.count, 6)
    XCTAssertEqual(observer.evaluations.count, 2)
    XCTAssertEqual(report.progress.bestCER, report.progress.evaluations.map(\.cer).min())

    // The run folder is not overwritten by accident.
    XCTAssertThrowsError(try train(TrainOptions(datasets: [data.path], recipe: tinyRecipe(), output: run))) { error in
      XCTAssertTrue("\(error)".contains("--resume"), "\(error)")
    }

    // `evaluate` scores the test split with greedy and beam decoding.
    var evaluateOptions = EvaluateOptions(run: run)
    evaluateOptions.split = "test-clean"
    let scored = try evaluate(evaluateOptions)
    XCTAssertEqual(scored.utterances, 8)
    XCTAssertEqual(scored.split, "test-clean")
    XCTAssertNotNil(scored.beamCER)
    XCTAssertTrue(scored.loss.isFinite)

    // `transcribe` featurizes raw audio exactly as `prepare` did (up to float16 storage).
    let transcriber = try Transcriber(run: run, beamWidth: 4)
    let dataset = try Dataset(directory: data.path)
    var compared = 0
    try dataset.forEachRecord(split: "dev-clean") { record in
      let parts = record.id.split(separator: "-")
      let audio = data.directory.path + "/corpus/LibriSpeech/dev-clean/\(parts[0])/\(parts[1])/\(record.id).flac"
      let features = try transcriber.features(of: audio)
      XCTAssertEqual(features.frames, record.frames)
      let worst = zip(features.values, record.features.values).map { abs($0 - $1) }.max()!
      XCTAssertLessThan(worst, 0.02, record.id)
      XCTAssertNoThrow(try transcriber.transcribe(audio))
      compared += 1
      return compared < 3
    }
    XCTAssertEqual(compared, 3)
  }

  /// Stopping mid-epoch and resuming gives exactly the parameters, optimizer state and
  /// metrics of an uninterrupted run (single thread).
  func testResumeMatchesUninterruptedRun() throws {
    let data = try FixtureDataset()
    for optimizer in [OptimizerKind.adam, .sgd] {
      var recipe = tinyRecipe(cell: .rnn)
      recipe.training.optimizer = optimizer
      recipe.training.learningRate = optimizer == .sgd ? 1e-4 : 3e-3
      let whole = data.directory.path + "/whole-\(optimizer)"
      _ = try train(TrainOptions(datasets: [data.path], recipe: recipe, output: whole))

      let parts = data.directory.path + "/parts-\(optimizer)"
      var first = TrainOptions(datasets: [data.path], recipe: recipe, output: parts)
      first.maxSteps = 4
      let stopped = try train(first)
      XCTAssertTrue(stopped.stoppedEarly)
      XCTAssertEqual(stopped.progress.step, 4)
      XCTAssertEqual(stopped.progress.batchesDone, 1, "stopped inside the second epoch")
      // A FIFO in place of metrics.jsonl is refused by name (opening it to write would wait).
      let metrics = RunLayout(parts).metrics
      let saved = try Data(contentsOf: URL(fileURLWithPath: metrics))
      try FileManager.default.removeItem(atPath: metrics)
      XCTAssertEqual(mkfifo(metrics, 0o644), 0)
      var blocked = TrainOptions(datasets: [], recipe: ModelRecipe(), output: parts)
      blocked.resume = true
      XCTAssertThrowsError(try train(blocked)) { XCTAssertTrue("\($0)".contains("not a regular file (a FIFO)"), "\($0)") }
      try FileManager.default.removeItem(atPath: metrics)
      try saved.write(to: URL(fileURLWithPath: metrics))
      // Lines a crashed session wrote after its last checkpoint are dropped on resume.
      try appendLine(#"{"type":"step","step":99,"epoch":2,"loss":1,"lr":1}"#, to: RunLayout(parts).metrics)
      var second = TrainOptions(datasets: [], recipe: ModelRecipe(), output: parts)
      second.resume = true
      let resumed = try train(second)
      XCTAssertEqual(resumed.progress.step, 6)

      let a = try Checkpoint.read(path: RunLayout(whole).latest)
      let b = try Checkpoint.read(path: RunLayout(parts).latest)
      XCTAssertEqual(a.tensors.keys.sorted(), b.tensors.keys.sorted())
      for (name, tensor) in a.tensors { XCTAssertEqual(tensor, b.tensors[name], "\(optimizer) \(name)") }
      var progressA = a.header.progress
      var progressB = b.header.progress
      progressA.trainingSeconds = 0
      progressB.trainingSeconds = 0
      for index in progressA.evaluations.indices { progressA.evaluations[index].seconds = 0 }
      for index in progressB.evaluations.indices { progressB.evaluations[index].seconds = 0 }
      XCTAssertEqual(progressA, progressB)
      let lossesA = try metricsLines(RunLayout(whole).metrics).compactMap { $0["loss"] as? Double }
      let lossesB = try metricsLines(RunLayout(parts).metrics).compactMap { $0["loss"] as? Double }
      XCTAssertEqual(lossesA, lossesB)
    }
  }

  /// Batches read from the shards hold each record's normalized features, padded with zeros,
  /// longest first; two datasets train together.
  func testLoaderAndSeveralDatasets() throws {
    let data = try FixtureDataset()
    let dataset = try Dataset(directory: data.path)
    let locations = try dataset.index(split: "train-clean-100")
    XCTAssertEqual(locations.count, 8)
    XCTAssertEqual(locations.map(\.frames), locations.map(\.frames).sorted())
    let batcher = Batcher(records: locations.map { RecordReference(dataset: 0, split: "train-clean-100", location: $0) }, batchSize: 3, seed: 1)
    let plan = batcher.batches[1]
    let batch = try BatchLoader(datasets: [dataset]).load(plan)
    let (steps, size, bins) = (batch.features.features.shape[0], batch.features.features.shape[1], batch.features.features.shape[2])
    XCTAssertEqual(size, 3)
    XCTAssertEqual(steps, plan.maxFrames)
    for (b, reference) in plan.records.enumerated() {
      let record = try dataset.record(split: "train-clean-100", at: reference.location)
      XCTAssertEqual(batch.ids[b], record.id)
      XCTAssertEqual(batch.labels[b], record.labels)
      XCTAssertEqual(batch.features.lengths[b], record.frames)
      for t in 0..<steps {
        let row = Array(batch.features.features.scalars[((t * size + b) * bins)..<((t * size + b + 1) * bins)])
        XCTAssertEqual(row, t < record.frames ? Array(record.features.values[(t * bins)..<((t + 1) * bins)]) : [Float](repeating: 0, count: bins))
      }
    }

    var recipe = tinyRecipe()
    recipe.training.epochs = 1
    let run = data.directory.path + "/two"
    let report = try train(TrainOptions(datasets: [data.path, data.path], recipe: recipe, output: run))
    XCTAssertEqual(report.progress.step, 6, "16 utterances in batches of 3")
  }

  /// The short learning test: a tiny model on the bundled corpus at least halves its mean
  /// per-utterance CTC loss, from the first step to the sixth epoch.
  func testLossHalvesOnTheBundledCorpus() throws {
    let directory = TemporaryDirectory("bundled")
    var recipe = try Recipe.load(path: repositoryRoot + "/recipes/mini-librispeech.yaml")
    recipe.corpus.root = repositoryRoot + "/" + recipe.corpus.root
    recipe.output = directory.path + "/mini"
    var prepareOptions = PrepareOptions()
    prepareOptions.logger.logLevel = .critical
    _ = try prepare(recipe: recipe, options: prepareOptions)
    // A tiny model memorizing the shortest utterances (≤ 2.3 s) keeps this cheap in a debug build.
    var model = tinyRecipe()
    model.model.convolutions = [ModelSection.Convolution(channels: 4, kernelTime: 7, kernelFrequency: 21, strideTime: 2, strideFrequency: 4)]
    model.model.hidden = 48
    model.training.batchSize = 4
    model.training.maxFrames = 230
    model.training.epochs = 6
    model.training.learningRate = 1e-2
    model.training.annealing = 1
    model.training.checkpointEverySteps = 0
    model.training.threads = 0
    let observer = RecordingObserver()
    var options = TrainOptions(datasets: [recipe.output], recipe: model, output: directory.path + "/run")
    options.observer = observer
    _ = try train(options)
    func meanLoss(_ epoch: Int) -> Double {
      let losses = observer.steps.filter { $0.epoch == epoch }.map(\.loss)
      return losses.reduce(0, +) / Double(losses.count)
    }
    let first = observer.steps[0].loss
    XCTAssertGreaterThan(observer.steps.count, 12)
    XCTAssertLessThan(meanLoss(6), 0.5 * first, "first step \(first), epoch means \((1...6).map(meanLoss))")
  }
}
