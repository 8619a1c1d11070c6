import DS2Core
import Dispatch
import Foundation
import Shards
import Training

/// The version written into checkpoints.
public let trainerVersion = "0.1.0"

/// One optimizer step, as logged to the terminal and to `metrics.jsonl`.
public struct StepMetrics: Sendable, Codable {
  public var type = "step"
  public var step: Int
  /// 1-based epoch.
  public var epoch: Int
  /// 1-based position of the batch in the epoch, and the epoch's batch count.
  public var batch: Int
  public var batches: Int
  /// Mean CTC loss per utterance of the batch (finite losses only).
  public var loss: Double
  public var lr: Double
  /// Global gradient norm before clipping.
  public var gradNorm: Double
  public var utterances: Int
  /// Frames of the longest utterance.
  public var frames: Int
  /// Utterances whose labels cannot be aligned (infinite loss, no gradient).
  public var infiniteLosses: Int
  public var audioSeconds: Double
  /// Wall seconds of the step, and how much of it was spent waiting for data.
  public var seconds: Double
  public var dataWaitSeconds: Double
  /// Data-parallel training: seconds this rank (0) spent in collectives during the step
  /// (gradient and batch-normalization sums, including waiting for the other ranks), and
  /// the number of ranks. Absent in a single process.
  public var communicationSeconds: Double?
  public var ranks: Int?
  /// Audio seconds per wall second of this step.
  public var audioSecondsPerSecond: Double
  /// Estimated seconds to the end of training, from this session's mean step time.
  public var etaSeconds: Double
}

/// Receives a run's progress (the CLI draws it on a terminal).
public protocol TrainingObserver: AnyObject {
  func stepFinished(_ metrics: StepMetrics)
  func evaluationFinished(_ result: EvaluationResult)
  /// A notice worth showing (records skipped, a checkpoint written on request).
  func notice(_ message: String)
}

/// What `train` was asked to do beyond the model YAML.
public struct TrainOptions {
  /// Dataset directories to train on together (ignored when resuming: the checkpoint names them).
  public var datasets: [String]
  public var recipe: ModelRecipe
  /// The run folder.
  public var output: String
  /// Continue the run in `output` from its latest checkpoint.
  public var resume = false
  /// Overrides `recipe.training.epochs` (on resume, extends or shortens the run).
  public var epochs: Int?
  /// Stop (with a checkpoint) after this many steps of this session.
  public var maxSteps: Int?
  /// Overrides `recipe.training.threads` (also when resuming).
  public var threads: Int?
  public var observer: TrainingObserver?
  /// Checked between steps; when it returns true the run writes a checkpoint and stops.
  public var shouldStop: () -> Bool = { false }
  /// Data-parallel training (`mpirun -np R ds2-data train …`): the ranks. Each takes its
  /// share of every batch; rank 0 alone writes the run folder. Nil: one process.
  public var collective: (any Collective)?

  public init(datasets: [String], recipe: ModelRecipe, output: String) {
    self.datasets = datasets
    self.recipe = recipe
    self.output = output
  }
}

/// What a `train` session did.
public struct TrainingReport: Sendable {
  public var output: String
  public var progress: TrainingProgress
  public var epochs: Int
  /// Steps taken in this session.
  public var sessionSteps: Int
  /// Audio seconds trained on in this session, and the wall seconds of its steps.
  public var audioSeconds: Double
  public var stepSeconds: Double
  /// Seconds the steps waited for data, and the mean time a batch took to load.
  public var dataWaitSeconds: Double
  public var loadSeconds: Double
  /// True when the run stopped before its last epoch (max steps or a stop request).
  public var stoppedEarly: Bool
  public var peakMemoryBytes: Int
  public var parameterCount: Int
  /// Processes that trained together (1 without MPI), and the seconds rank 0 spent in
  /// their collectives.
  public var ranks = 1
  public var communicationSeconds = 0.0

  /// Share of step time spent waiting for data.
  public var dataWaitShare: Double { stepSeconds > 0 ? dataWaitSeconds / stepSeconds : 0 }

  public var summary: String {
    var text = "trained \(output): epoch \(min(progress.epoch, epochs))/\(epochs), step \(progress.step)"
    if stoppedEarly { text += " (stopped; resume with --resume)" }
    text += String(format: ", %.0f audio-s in %.1f s (%.1f audio-s/s)", audioSeconds, stepSeconds, stepSeconds > 0 ? audioSeconds / stepSeconds : 0)
    text += String(format: ", data wait %.2f%%", 100 * dataWaitShare)
    if ranks > 1 {
      text += String(format: "; %d ranks, communication %.1f%% of step time", ranks, stepSeconds > 0 ? 100 * communicationSeconds / stepSeconds : 0)
    }
    if let last = progress.evaluations.last {
      text += String(format: "; dev %@ loss %.3f CER %.2f%% WER %.2f%%", last.split, last.loss, 100 * last.cer, 100 * last.wer)
    }
    if let best = progress.bestCER, let epoch = progress.bestEpoch {
      text += String(format: "; best CER %.2f%% (epoch %d)", 100 * best, epoch)
    }
    text += ", \(parameterCount) parameters, peak memory \(peakMemoryBytes >> 20) MiB"
    return text
  }
}

/// Paths inside a run folder.
public struct RunLayout: Sendable {
  public let directory: String
  public init(_ directory: String) { self.directory = directory }
  public var recipe: String { directory + "/model.yaml" }
  public var metrics: String { directory + "/metrics.jsonl" }
  public var checkpoints: String { directory + "/checkpoints" }
  public var latest: String { checkpoints + "/latest.ckpt" }
  public var best: String { checkpoints + "/best.ckpt" }
  public func epoch(_ number: Int) -> String { checkpoints + String(format: "/epoch-%03d.ckpt", number) }
}

/// Trains (or continues training) a DS2 model from LMDB shards (the `ds2-data train` command).
///
/// Batches come from neighbouring records of the length-sorted shards (SortaGrad: the first
/// epoch in ascending length, then seeded shuffles) and are read and converted on a
/// background queue ahead of the computation. After every epoch the evaluation split is
/// scored (loss, greedy CER and WER); `latest.ckpt`, `epoch-NNN.ckpt` and, when the CER
/// improved, `best.ckpt` are written atomically. `metrics.jsonl` gets one object per step and
/// one per evaluation.
///
/// - Throws: `ConfigurationError` (bad datasets, mismatched datasets, an existing run without
///   `resume`, no run to resume), `DatasetError` / `LMDBError` while reading,
///   `TrainingError` for an invalid model.
public func train(_ options: TrainOptions) throws -> TrainingReport {
  guard let collective = options.collective else {
    let session = try TrainingSession(options)
    try session.setUpOutput()
    return try session.run()
  }
  // Every rank reaches each agreement, even one whose set-up failed, so that all of them
  // stop together with the same error instead of waiting for each other.
  var session: TrainingSession?
  var failure: String?
  do { session = try TrainingSession(options) } catch { failure = "\(error)" }
  try agree(collective, failure: failure, fingerprint: session?.fingerprint ?? .null)
  do { if collective.rank == 0 { try session!.setUpOutput() } } catch { failure = "\(error)" }
  try agree(collective, failure: failure, fingerprint: .null)
  return try session!.run()
}

/// The error every rank of a data-parallel run throws when the ranks' start-up check
/// fails: rank 0 reports it, the others exit quietly (so that one message is printed).
public struct StartUpDisagreement: Error, CustomStringConvertible {
  public let message: String
  public var description: String { message }
}

/// Gathers every rank's set-up outcome and fingerprint (datasets, model and training
/// settings) and throws the same error on every rank when one failed or when they differ.
/// - Throws: `StartUpDisagreement` naming the first failing rank and its error, or the rank
///   whose settings differ from rank 0's and in what.
func agree(_ collective: any Collective, failure: String?, fingerprint: JSONValue) throws {
  let encoder = JSONEncoder()
  encoder.outputFormatting = [.sortedKeys]
  let mine = JSONValue.object(["failure": failure.map(JSONValue.string) ?? .null, "fingerprint": fingerprint])
  let all = collective.gather(Array((try? encoder.encode(mine)) ?? Data()))
  let decoded = all.map { try? JSONDecoder().decode(JSONValue.self, from: Data($0)) }
  for (rank, value) in decoded.enumerated() {
    if case .object(let fields)? = value, case .string(let message)? = fields["failure"] {
      throw StartUpDisagreement(message: "rank \(rank) of \(collective.size): \(message)")
    }
  }
  guard case .object(let first)? = decoded[0], let reference = first["fingerprint"] else {
    throw StartUpDisagreement(message: "rank 0 of \(collective.size): unreadable start-up check")
  }
  for (rank, value) in decoded.enumerated().dropFirst() {
    guard case .object(let fields)? = value, let theirs = fields["fingerprint"], theirs == reference else {
      var differences: [String] = []
      if case .object(let fields)? = value, case .object(let a) = reference, case .object(let b)? = fields["fingerprint"] {
        differences = Set(a.keys).union(b.keys).sorted().filter { a[$0] != b[$0] }
      }
      throw StartUpDisagreement(message:
        "rank \(rank) of \(collective.size) was started with other settings than rank 0 (differ: "
          + "\(differences.isEmpty ? "its start-up check" : differences.joined(separator: ", "))); start every rank with the same command")
    }
  }
}

final class TrainingSession {
  let options: TrainOptions
  let layout: RunLayout
  var recipe: ModelRecipe
  let datasetPaths: [String]
  let datasets: [Dataset]
  let model: DS2Model<Float>
  let optimizer: any Optimizer<Float>
  var progress: TrainingProgress
  let epochs: Int
  let trainSplits: [String]
  let evaluationSplit: String?
  var metrics: MetricsLog?
  /// The run folder, owned and locked while the session lives (by rank 0 alone in
  /// data-parallel training).
  var folder: OutputFolder?
  /// The checkpoint this session continues from.
  let resumed: Checkpoint?
  /// Rank 0 (or the only process) writes checkpoints and metrics.
  var writesOutput: Bool { (options.collective?.rank ?? 0) == 0 }

  init(_ options: TrainOptions) throws {
    self.options = options
    layout = RunLayout(options.output)
    var resumed: Checkpoint?
    if options.resume {
      guard FileManager.default.fileExists(atPath: layout.latest) else {
        throw ConfigurationError("\(options.output): no checkpoint to resume from (\(layout.latest) is missing)")
      }
      resumed = try Checkpoint.read(path: layout.latest)
      recipe = resumed!.header.recipe
      datasetPaths = resumed!.header.datasets
    } else {
      if FileManager.default.fileExists(atPath: layout.latest) {
        throw ConfigurationError("\(options.output) already holds a run; continue it with --resume or choose another --output")
      }
      guard !options.datasets.isEmpty else { throw ConfigurationError("no dataset to train on") }
      resumed = nil
      recipe = options.recipe
      datasetPaths = options.datasets
    }
    if let epochs = options.epochs { recipe.training.epochs = epochs }
    if let threads = options.threads { recipe.training.threads = threads }
    try recipe.validate()
    epochs = recipe.training.epochs
    datasets = try datasetPaths.map { path in
      do { return try Dataset(directory: path) } catch let error as DatasetError { throw ConfigurationError(error.message) }
    }
    self.resumed = resumed
    let first = datasets[0].manifest
    for (path, dataset) in zip(datasetPaths, datasets).dropFirst() {
      guard dataset.manifest.features.bins == first.features.bins, dataset.manifest.vocabulary == first.vocabulary else {
        throw ConfigurationError(
          "\(path): its features (\(dataset.manifest.features.bins) bins) or vocabulary differ from \(datasetPaths[0])'s; "
            + "datasets trained together must match")
      }
    }
    trainSplits = try Self.trainingSplits(recipe.training.trainSplits, datasets: datasets, paths: datasetPaths)
    evaluationSplit = try Self.evaluationSplit(recipe.training.evaluationSplit, dataset: datasets[0], path: datasetPaths[0])
    let config = recipe.model.config(bins: first.features.bins, vocabularySize: first.vocabulary.count)
    model = try DS2Model<Float>(config: config)
    switch recipe.training.optimizer {
    case .sgd:
      optimizer = SGD<Float>(learningRate: Float(recipe.training.learningRate), momentum: Float(recipe.training.momentum), nesterov: recipe.training.nesterov)
    case .adam:
      optimizer = Adam<Float>(learningRate: Float(recipe.training.learningRate))
    }
    if let resumed {
      guard resumed.header.model == config else {
        throw ConfigurationError("\(layout.latest): the checkpoint's model does not match its recipe")
      }
      progress = try Self.restore(model: model, optimizer: optimizer, from: resumed, path: layout.latest)
    } else {
      progress = TrainingProgress(learningRate: recipe.training.learningRate)
    }
    if let collective = options.collective {
      model.collective = collective
      let batches = Batcher(
        records: try trainingRecords(), batchSize: recipe.training.batchSize, maxBatchFrames: recipe.training.maxBatchFrames,
        sortaGrad: recipe.training.sortaGrad, seed: recipe.training.seed
      ).batches.count
      guard batches >= collective.size else {
        throw ConfigurationError(
          "\(datasetPaths[0]): an epoch has \(batches) batch(es), fewer than the \(collective.size) ranks; "
            + "run fewer ranks or lower training.batchSize")
      }
    }
  }

  /// Claims the run folder and writes what a new run starts with (model.yaml, checkpoints/),
  /// or opens the metrics of the run it resumes. Rank 0 alone does this.
  /// - Throws: `ConfigurationError` for a folder that is not ours or is locked, or write errors.
  func setUpOutput() throws {
    do {
      folder = try OutputFolder(
        path: options.output, kind: .trainingRun, protectedPaths: datasetPaths, legacyEvidence: ["checkpoints"])
    } catch let error as OutputFolderError {
      throw ConfigurationError(error.message)
    }
    if resumed == nil {
      try FileManager.default.createDirectory(atPath: layout.checkpoints, withIntermediateDirectories: true)
      try writeAtomically(Array(try recipe.yaml().utf8), to: layout.recipe)
    }
    metrics = try MetricsLog(path: layout.metrics, keepingThroughStep: resumed == nil ? nil : progress.step)
  }

  /// What every rank of a data-parallel run must agree on: the datasets (a digest of each
  /// manifest), the resolved model recipe, the run folder and the step it starts from.
  var fingerprint: JSONValue {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let recipeText = (try? encoder.encode(recipe)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    let manifests = datasetPaths.map { path -> JSONValue in
      let bytes = (try? RegularFile.read(path + "/manifest.json", maxBytes: DatasetManifest.maxBytes)) ?? []
      // FNV-1a, 64 bits: tells two manifests apart, which is all this check needs.
      var hash: UInt64 = 0xcbf2_9ce4_8422_2325
      for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
      return .string(String(hash, radix: 16))
    }
    return .object([
      "datasets": .array(datasetPaths.map(JSONValue.string)), "manifests": .array(manifests),
      "model": .string(recipeText), "startStep": .number(Double(progress.step)), "output": .string(options.output),
    ])
  }

  static func trainingSplits(_ requested: [String]?, datasets: [Dataset], paths: [String]) throws -> [String] {
    if let requested {
      for (path, dataset) in zip(paths, datasets) {
        for split in requested where dataset.manifest.split(named: split) == nil {
          throw ConfigurationError("\(path): no split \(split) (training.trainSplits)")
        }
      }
      return requested
    }
    let splits = datasets[0].manifest.splits.filter(\.isTraining).map(\.name)
    guard !splits.isEmpty else { throw ConfigurationError("\(paths[0]): no training split; set training.trainSplits") }
    return splits
  }

  static func evaluationSplit(_ requested: String?, dataset: Dataset, path: String) throws -> String? {
    if let requested {
      guard dataset.manifest.split(named: requested) != nil else {
        throw ConfigurationError("\(path): no split \(requested) (training.evaluationSplit)")
      }
      return requested
    }
    let candidates = dataset.manifest.splits.filter { !$0.isTraining && $0.records > 0 }
    return (candidates.first { $0.name.hasPrefix("dev") } ?? candidates.first)?.name
  }

  /// Loads weights, running statistics and optimizer state; returns the stored progress.
  /// - Throws: `ConfigurationError` naming `path` when a tensor is missing or mis-shaped.
  static func restore(
    model: DS2Model<Float>, optimizer: any Optimizer<Float>, from checkpoint: Checkpoint, path: String
  ) throws -> TrainingProgress {
    var state: [String: Tensor<Float>] = [:]
    var slots: [String: Tensor<Float>] = [:]
    for (name, tensor) in checkpoint.tensors {
      if name.hasPrefix("optimizer.") { slots[name] = tensor } else { state[name] = tensor }
    }
    do {
      try model.importState(state)
    } catch let error as TrainingError {
      throw ConfigurationError("\(path): \(error)")
    }
    func arrays(_ slot: String) throws -> [[Float]] {
      guard slots["optimizer.\(slot).0"] != nil else { return [] }
      return try model.parameters.indices.map { index in
        guard let tensor = slots["optimizer.\(slot).\(index)"], tensor.count == model.parameters[index].count else {
          throw ConfigurationError("\(path): optimizer slot \(slot).\(index) is missing or mis-sized")
        }
        return tensor.scalars
      }
    }
    if let sgd = optimizer as? SGD<Float> {
      sgd.state = SGD<Float>.State(velocity: try arrays("velocity"))
    } else if let adam = optimizer as? Adam<Float> {
      adam.state = Adam<Float>.State(
        step: checkpoint.header.optimizerStep, firstMoment: try arrays("firstMoment"), secondMoment: try arrays("secondMoment"))
    }
    return checkpoint.header.progress
  }

  func checkpoint() -> Checkpoint {
    var tensors = model.exportState()
    var optimizerStep = 0
    func store(_ slot: String, _ arrays: [[Float]]) {
      for (index, values) in arrays.enumerated() { tensors["optimizer.\(slot).\(index)"] = Tensor(shape: [values.count], scalars: values) }
    }
    if let sgd = optimizer as? SGD<Float> {
      store("velocity", sgd.state.velocity)
    } else if let adam = optimizer as? Adam<Float> {
      store("firstMoment", adam.state.firstMoment)
      store("secondMoment", adam.state.secondMoment)
      optimizerStep = adam.state.step
    }
    let manifest = datasets[0].manifest
    let header = Checkpoint.Header(
      toolVersion: trainerVersion, recipe: recipe, model: model.config, datasets: datasetPaths, trainSplits: trainSplits,
      evaluationSplit: evaluationSplit, features: manifest.features, normalization: manifest.normalization,
      vocabulary: manifest.vocabulary, progress: progress, optimizerStep: optimizerStep, tensors: [])
    return Checkpoint(header: header, tensors: tensors)
  }

  /// Every training record that CTC can align, with a notice about the others.
  func trainingRecords() throws -> [RecordReference] {
    var records: [RecordReference] = []
    var skippedLong = 0
    var skippedLabels = 0
    for (index, dataset) in datasets.enumerated() {
      for split in trainSplits {
        for location in try dataset.index(split: split) {
          if recipe.training.maxFrames > 0 && location.frames > recipe.training.maxFrames {
            skippedLong += 1
          } else if location.labelCount > model.config.outputLength(inputFrames: location.frames) {
            skippedLabels += 1
          } else {
            records.append(RecordReference(dataset: index, split: split, location: location))
          }
        }
      }
    }
    if skippedLong > 0 { options.observer?.notice("skipped \(skippedLong) utterance(s) longer than training.maxFrames") }
    if skippedLabels > 0 {
      options.observer?.notice("skipped \(skippedLabels) utterance(s) with more labels than output frames (CTC cannot align them)")
    }
    guard !records.isEmpty else { throw ConfigurationError("\(datasetPaths[0]): no trainable utterance in \(trainSplits.joined(separator: ", "))") }
    return records
  }

  /// The part of `plan` this process computes: all of it, or in data-parallel training the
  /// rank's share of its utterances: every R-th from the rank-th, so that the ranks' shares
  /// are about equally long (and each stays longest first, like the batch). Empty when the
  /// batch has fewer utterances than there are ranks.
  func share(of plan: BatchPlan) -> BatchPlan {
    guard let collective = options.collective else { return plan }
    return BatchPlan(records: stride(from: collective.rank, to: plan.records.count, by: collective.size).map { plan.records[$0] })
  }

  func run() throws -> TrainingReport {
    let threads = recipe.training.effectiveThreads
    model.pool = WorkerPool(threads: threads)
    let collective = options.collective
    let batcher = Batcher(
      records: try trainingRecords(), batchSize: recipe.training.batchSize, maxBatchFrames: recipe.training.maxBatchFrames,
      sortaGrad: recipe.training.sortaGrad, seed: recipe.training.seed)
    let loader = BatchLoader(datasets: datasets)
    let evaluationPlans = try evaluationSplit.map { split in
      Batcher(
        records: try datasets[0].index(split: split).map { RecordReference(dataset: 0, split: split, location: $0) },
        batchSize: recipe.training.batchSize, sortaGrad: true, seed: 0
      ).batches
    } ?? []
    var report = TrainingReport(
      output: options.output, progress: progress, epochs: epochs, sessionSteps: 0, audioSeconds: 0, stepSeconds: 0,
      dataWaitSeconds: 0, loadSeconds: 0, stoppedEarly: false, peakMemoryBytes: 0,
      parameterCount: model.parameters.reduce(0) { $0 + $1.count })
    report.ranks = collective?.size ?? 1
    let batchesPerEpoch = batcher.batches.count
    guard progress.batchesDone <= batchesPerEpoch else {
      throw ConfigurationError(
        "\(layout.latest): the checkpoint says \(progress.batchesDone) batches of epoch \(progress.epoch + 1) are done, but an "
          + "epoch has \(batchesPerEpoch) (damaged checkpoint, or the datasets changed since)")
    }
    let everySteps = recipe.training.checkpointEverySteps
    training: while progress.epoch < epochs {
      optimizer.learningRate = Float(progress.learningRate)
      let order = batcher.order(epoch: progress.epoch)
      let shares = order[progress.batchesDone...].map { share(of: batcher.batches[$0]) }
      let prefetcher = Prefetcher(
        loader: loader, plans: shares.filter { !$0.records.isEmpty }, inBackground: model.pool.threadCount > 1)
      var shareIndex = 0
      while progress.batchesDone < batchesPerEpoch {
        var stop = options.shouldStop() || options.maxSteps.map({ report.sessionSteps >= $0 }) ?? false
        // Every rank stops at the same step when any rank is asked to.
        if let collective { stop = collective.sum([stop ? 1 : 0])[0] > 0 }
        if stop {
          prefetcher.cancel()
          if writesOutput { try checkpoint().write(to: layout.latest) }
          report.stoppedEarly = true
          break training
        }
        let started = DispatchTime.now().uptimeNanoseconds
        let communicationBefore = collective?.communicationSeconds ?? 0
        let globalPlan = batcher.batches[order[progress.batchesDone]]
        let mine = shares[shareIndex]
        shareIndex += 1
        let waitBefore = prefetcher.waitSeconds
        var totals = [0.0, 0, 0, 0, 0]  // Σ finite losses, finite, infinite, audio seconds, load seconds
        if mine.records.isEmpty {
          model.participateWithoutData()
        } else {
          guard let batch = try prefetcher.next() else { break }
          model.zeroGradients()
          let result = model.computeGradients(
            batch: batch.features, labels: batch.labels, meanOver: collective == nil ? nil : globalPlan.records.count)
          let finite = result.losses.filter(\.isFinite)
          totals = [Double(finite.reduce(0, +)), Double(finite.count), Double(result.infiniteCount), batch.audioSeconds, batch.loadSeconds]
        }
        if let collective {
          sumGradients(model.parameters, over: collective)
          totals = collective.sum(totals)
        }
        let waited = prefetcher.waitSeconds - waitBefore
        let norm = clipGradientNorm(model.parameters, maxNorm: Float(recipe.training.maxGradientNorm))
        if norm.isFinite { optimizer.step(model.parameters) }
        progress.batchesDone += 1
        progress.step += 1
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        progress.trainingSeconds += seconds
        report.sessionSteps += 1
        report.audioSeconds += totals[3]
        report.stepSeconds += seconds
        report.dataWaitSeconds += waited
        report.loadSeconds += totals[4]
        let communication = collective.map { $0.communicationSeconds - communicationBefore }
        report.communicationSeconds += communication ?? 0
        let remainingSteps = (epochs - progress.epoch - 1) * batchesPerEpoch + (batchesPerEpoch - progress.batchesDone)
        var step = StepMetrics(
          step: progress.step, epoch: progress.epoch + 1, batch: progress.batchesDone, batches: batchesPerEpoch,
          loss: totals[1] == 0 ? .nan : totals[0] / totals[1],
          lr: progress.learningRate, gradNorm: Double(norm), utterances: globalPlan.records.count,
          frames: globalPlan.maxFrames, infiniteLosses: Int(totals[2]), audioSeconds: totals[3],
          seconds: seconds, dataWaitSeconds: waited, audioSecondsPerSecond: totals[3] / seconds,
          etaSeconds: Double(remainingSteps) * report.stepSeconds / Double(report.sessionSteps))
        step.communicationSeconds = communication
        step.ranks = collective?.size
        if writesOutput {
          try metrics?.append(step)
          options.observer?.stepFinished(step)
        }
        if everySteps > 0 && progress.step % everySteps == 0 && progress.batchesDone < batchesPerEpoch && writesOutput {
          try checkpoint().write(to: layout.latest)
        }
      }
      try finishEpoch(loader: loader, evaluationPlans: evaluationPlans)
    }
    report.progress = progress
    report.peakMemoryBytes = peakResidentBytes()
    return report
  }

  /// Evaluates, advances the epoch and the learning rate, and writes the checkpoints (rank
  /// 0 alone evaluates and writes; the other ranks advance the same schedule).
  func finishEpoch(loader: BatchLoader, evaluationPlans: [BatchPlan]) throws {
    let finished = progress.epoch + 1
    var improved = false
    if let evaluationSplit, writesOutput {
      var result = try evaluate(model: model, loader: loader, plans: evaluationPlans, vocabulary: datasets[0].manifest.vocabulary, beam: nil)
      result.epoch = finished
      result.step = progress.step
      result.split = evaluationSplit
      progress.evaluations.append(result)
      try metrics?.append(EvaluationLine(result))
      options.observer?.evaluationFinished(result)
      if progress.bestCER.map({ result.cer < $0 }) ?? true {
        progress.bestCER = result.cer
        progress.bestEpoch = finished
        improved = true
      }
    }
    progress.epoch = finished
    progress.batchesDone = 0
    progress.learningRate /= recipe.training.annealing
    guard writesOutput else { return }
    let state = checkpoint()
    try state.write(to: layout.epoch(finished))
    try state.write(to: layout.latest)
    if improved || (evaluationSplit == nil) { try state.write(to: layout.best) }
  }
}

/// Peak resident set size of the process, bytes.
func peakResidentBytes() -> Int {
  var usage = rusage()
  getrusage(RUSAGE_SELF.rawValue, &usage)
  return Int(usage.ru_maxrss) * 1024
}
