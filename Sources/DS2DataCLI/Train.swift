import ArgumentParser
import DataParallel
import DS2Core
import Foundation
import Pipeline
import Trainer
import Training

struct Train: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "train",
    abstract: "Train the bundled Deep Speech 2 model on one or more datasets.",
    discussion: """
      Reads batches of neighbouring records straight from the length-sorted LMDB shards \
      (SortaGrad: epoch 1 in ascending length, then seeded shuffles), evaluates the dev \
      split after every epoch (loss, CER, WER) and writes to the run folder: model.yaml, \
      metrics.jsonl (one JSON object per step and per evaluation) and checkpoints/ \
      (latest.ckpt, epoch-NNN.ckpt, best.ckpt by dev CER). Ctrl-C writes a checkpoint and \
      stops; --resume continues exactly where it stopped.
        ds2-data train out/mini-librispeech --output runs/mini
        ds2-data train out/librispeech --model recipes/models/ds2-small.yaml --epochs 20 --output runs/ls
        ds2-data train --resume runs/ls
        ds2-data train --benchmark --cell rnn --threads 2
      Data-parallel on MPI: the same command under an MPI launcher, each rank (process) \
      taking its share of every batch (batchSize stays the global batch); rank 0 writes \
      the run folder. SIGTERM or Ctrl-C stops every rank with one checkpoint.
        mpirun -np 4 ds2-data train out/librispeech --output runs/ls --threads 1
        srun --mpi=pmix -n 4 ds2-data train out/librispeech --output runs/ls
      """)

  @Argument(help: "Dataset directories to train on together (e.g. clean + augmented).")
  var datasets: [String] = []

  @Option(help: "Model YAML (default: a small model that trains on the bundled corpus in minutes).")
  var model: String?

  @Option(help: "Run folder (default: runs/<dataset name>).")
  var output: String?

  @Option(help: "Continue the run in this folder from its latest checkpoint.")
  var resume: String?

  @Option(help: "Number of epochs, 1–1000000 (overrides the model YAML; with --resume, extends the run).")
  var epochs: Int?

  @Option(help: "Stop with a checkpoint after this many steps (1 or more).")
  var maxSteps: Int?

  @Option(help: "Threads for BLAS, CTC and the recurrent directions, 0–1024 (overrides the model YAML; 0 = one per core).")
  var threads: Int?

  @Option(help: "Under an MPI launcher: seconds a rank waits for the others in one collective before it ends the job (a rank died or hangs), 1–86400.")
  var collectiveTimeout: Double = 600

  @Flag(help: "Time training steps on synthetic batches shaped like the PyTorch peer's; no dataset needed.")
  var benchmark = false

  @Option(help: "With --benchmark: recurrent cell, gru or rnn.")
  var cell: String = "gru"

  @Option(help: "With --benchmark: timed steps (after 3 warm-up steps), 1–10000.")
  var steps: Int = 12

  @Option(help: "With --benchmark: hidden units per direction, 1–4096.")
  var hidden: Int = 256

  @Option(help: "With --benchmark: bidirectional recurrent layers, 1–7.")
  var layers: Int = 3

  @Option(help: "With --benchmark: channels of the conv layer, 1–1024.")
  var convChannels: Int = 32

  @Option(help: "With --benchmark: utterances per batch, 1–512.")
  var batchSize: Int = 16

  @Flag(help: "With --benchmark: print the result as one JSON object.")
  var json = false

  @OptionGroup var logging: LoggingOptions

  /// Timed benchmark steps accepted.
  static let benchmarkStepsRange = 1...10_000
  /// Benchmark batch sizes accepted (its batches of up to 10 s utterances are made in memory).
  static let benchmarkBatchSizeRange = 1...512

  func validate() throws {
    try checkFlags {
      if let epochs { try ConfigurationCheck.value(epochs, in: TrainingSection.epochsRange, "--epochs") }
      if let maxSteps { try ConfigurationCheck.value(maxSteps, in: 1...Int.max, "--max-steps", allowed: "1 or more") }
      if let threads { try ConfigurationCheck.value(threads, in: threadCountRange, "--threads", allowed: threadCountAllowed) }
      try ConfigurationCheck.value(collectiveTimeout, in: 1...86_400, "--collective-timeout")
    }
    if benchmark {
      guard RecurrentCell(rawValue: cell) != nil else { throw ValidationError("--cell must be gru or rnn") }
      try checkFlags {
        try ConfigurationCheck.value(steps, in: Self.benchmarkStepsRange, "--steps")
        try ConfigurationCheck.value(hidden, in: ModelConfig.hiddenRange, "--hidden")
        try ConfigurationCheck.value(layers, in: ModelConfig.recurrentLayerRange, "--layers")
        try ConfigurationCheck.value(convChannels, in: ModelConfig.ConvolutionLayer.channelsRange, "--conv-channels")
        try ConfigurationCheck.value(batchSize, in: Self.benchmarkBatchSizeRange, "--batch-size")
      }
      return
    }
    if resume != nil {
      guard datasets.isEmpty, model == nil, output == nil else {
        throw ValidationError("--resume takes the datasets, model and folder from the run; give none of them")
      }
    } else if datasets.isEmpty {
      throw ValidationError("name a dataset directory (or --resume RUN, or --benchmark)")
    }
  }

  func run() throws {
    logging.bootstrap()
    LoggingOptions.configureForTraining()
    // Started by mpirun or srun: one rank of a data-parallel run.
    var collective: MPICollective?
    if MPICollective.isLaunchedByMPI() {
      do { collective = try MPICollective(timeoutSeconds: collectiveTimeout) } catch {
        throw ConfigurationError("started by an MPI launcher, but \(error)")
      }
    }
    defer { collective?.finalize() }
    if benchmark {
      var options = BenchmarkOptions()
      options.cell = RecurrentCell(rawValue: cell)!
      options.threads = threads.map { $0 == 0 ? ProcessInfo.processInfo.activeProcessorCount : $0 } ?? 1
      options.steps = steps
      options.hidden = hidden
      options.layers = layers
      options.convolutionChannels = convChannels
      options.batchSize = batchSize
      options.collective = collective
      let result = try benchmarkTraining(options)
      guard (collective?.rank ?? 0) == 0 else { return }
      if json {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(result), as: UTF8.self))
      } else {
        print(result.summary)
      }
      return
    }
    let recipe = try model.map { try ModelRecipe.load(path: $0) } ?? .small
    let folder = resume ?? output ?? "runs/" + URL(fileURLWithPath: datasets[0]).lastPathComponent
    var options = TrainOptions(datasets: datasets, recipe: recipe, output: folder)
    options.resume = resume != nil
    options.epochs = epochs
    options.maxSteps = maxSteps
    options.threads = threads
    let writer = (collective?.rank ?? 0) == 0
    let display = TrainingDisplay(live: logging.showsProgress && writer, quiet: logging.quiet || !writer)
    options.observer = display
    let cancellation = Cancellation()
    options.shouldStop = { cancellation.signal != nil }
    collective?.stopRequested = { cancellation.signal != nil }
    options.collective = collective
    let signals = SignalHandling(cancellation: cancellation, quiet: !writer)
    let report: TrainingReport
    do {
      report = try train(options)
    } catch let disagreement as StartUpDisagreement {
      // Every rank has it; rank 0 says it, and the others wait until it has (the launcher
      // ends the job at the first rank that exits, which could cut rank 0 off unheard).
      if writer { FileHandle.standardError.write(Data("Error: \(disagreement.message)\n".utf8)) }
      _ = collective?.gather([])
      throw ExitCode.failure
    } catch {
      // This rank alone failed: the others would wait for it in their next collective.
      if let collective, collective.size > 1 { collective.abortJob(after: error) }
      throw error
    }
    withExtendedLifetime(signals) {}
    display.clearLine()
    if writer { print(report.summary) }
    if let signal = cancellation.signal { throw ExitCode(128 + signal) }
  }
}

/// Shows training progress: a live line on a terminal's stderr, evaluation lines on stdout.
final class TrainingDisplay: TrainingObserver {
  let live: Bool
  let quiet: Bool
  private var lastDraw: UInt64 = 0
  private var drawn = false

  init(live: Bool, quiet: Bool) {
    self.live = live
    self.quiet = quiet
  }

  func stepFinished(_ m: StepMetrics) {
    guard live else { return }
    let now = DispatchTime.now().uptimeNanoseconds
    guard now - lastDraw > 200_000_000 || m.batch == m.batches else { return }
    lastDraw = now
    let line = String(
      format: "epoch %d batch %d/%d step %d: loss %.3f, lr %.2e, |g| %.1f, %.1f audio-s/s, ETA %@", m.epoch, m.batch,
      m.batches, m.step, m.loss, m.lr, m.gradNorm, m.audioSecondsPerSecond, TerminalProgress.clock(m.etaSeconds))
    FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
    drawn = true
  }

  func evaluationFinished(_ r: EvaluationResult) {
    clearLine()
    print(String(format: "epoch %d: %@ loss %.3f, CER %.2f%%, WER %.2f%% (%d utterances, %.1f s)", r.epoch, r.split, r.loss, 100 * r.cer, 100 * r.wer, r.utterances, r.seconds))
    fflush(nil)  // all C streams: stdout is a global var Swift 6 will not touch
  }

  func notice(_ message: String) {
    guard !quiet else { return }
    clearLine()
    FileHandle.standardError.write(Data("ds2-data: \(message)\n".utf8))
  }

  func clearLine() {
    if drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    drawn = false
  }
}
