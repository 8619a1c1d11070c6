import ArgumentParser
import DS2Core
import Foundation
import Logging
import Pipeline
import ProcessSettings
import Training

@main
struct DS2Data: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "ds2-data",
    abstract: "Deep Speech 2 data pipeline: speech corpora → log spectrograms → length-sorted LMDB shards.",
    discussion: """
      Typical use:
        ds2-data prepare recipes/mini-librispeech.yaml
        ds2-data inspect out/mini-librispeech
      Exit status: 0 success; 3 the dataset was written but some items were rejected \
      (listed in rejected.jsonl); 1 failure; 130 / 143 stopped by Ctrl-C / SIGTERM \
      (completed work kept; rerun to resume); 64 bad command line.
      """,
    version: toolVersion,
    subcommands: [Prepare.self, Augment.self, Merge.self, Inspect.self, Verify.self, Plot.self, Train.self, Evaluate.self, Transcribe.self])

  /// Before anything else: the commands that multiply matrices run with the best OpenBLAS
  /// kernels for this CPU (`BLASKernels.ensureBestKernels` may re-execute the process).
  static func main() {
    let command = CommandLine.arguments.dropFirst().first
    if ["train", "evaluate", "transcribe"].contains(command) { BLASKernels.ensureBestKernels() }
    main(nil)
  }
}

/// Exit status of a run that completed with rejected items.
let exitCodeWithRejections: Int32 = 3

/// Options shared by commands that log.
struct LoggingOptions: ParsableArguments {
  @Flag(name: .shortAndLong, help: "Log every rejected item and more detail.")
  var verbose = false

  @Flag(name: .shortAndLong, help: "Only errors on stderr (no progress line, no warnings).")
  var quiet = false

  func bootstrap() {
    BLASThreads.releaseIdleThreads()
    // Per-utterance buffers of a few hundred KB stay on the heap.
    HeapTuning.keepBuffersOnHeap()
    let level: Logger.Level = quiet ? .error : (verbose ? .info : .warning)
    LoggingSystem.bootstrap { label in
      var handler = StreamLogHandler.standardError(label: label)
      handler.logLevel = level
      return handler
    }
    if verbose, let blas = BLASKernels.summaryIfOpen { Logger(label: "ds2-data").info("\(blas)") }
  }

  /// Process settings of the commands that run the model (train, evaluate, transcribe):
  /// OpenBLAS single-threaded (the trainer splits products over its own worker pool, and
  /// OpenBLAS's idle threads would spin on the same cores) and freed step buffers kept in
  /// the heap for the next step (`HeapTuning.keepStepBuffers`).
  static func configureForTraining() {
    BLASThreads.count = 1
    HeapTuning.keepStepBuffers()
  }

  /// Whether a live progress line should be drawn.
  var showsProgress: Bool { !quiet && isatty(STDERR_FILENO) == 1 }
}
