import ArgumentParser
import DS2Core
import Foundation
import Pipeline

struct Prepare: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Prepare a corpus into length-sorted LMDB shards of DS2 log spectrograms.",
    discussion: """
      Reads the recipe (YAML), lists the corpus, probes audio headers, then decodes, \
      resamples and featurizes every utterance on all cores and writes each split in \
      ascending length into LMDB shards, with manifest.json, recipe.yaml (resolved) and \
      rejected.jsonl in the output directory. Rerunning a finished command is a no-op.
      Exit status: 0 clean; 3 written with rejected items; 1 failure.
      """)

  @Argument(help: "Recipe file (YAML), e.g. recipes/mini-librispeech.yaml.")
  var recipe: String

  @Option(help: "Override the recipe's corpus.root.")
  var corpusRoot: String?

  @Option(help: "Override the recipe's output directory.")
  var output: String?

  @Option(help: "Worker threads (default: the recipe's, 0 = one per core). Never changes the output.")
  var threads: Int?

  @Flag(help: "Replace an existing dataset in the output directory made from a different recipe.")
  var force = false

  @OptionGroup var logging: LoggingOptions

  func validate() throws {
    if let threads, threads < 0 { throw ValidationError("--threads must be ≥ 0") }
  }

  func run() throws {
    logging.bootstrap()
    var recipe = try Recipe.load(path: self.recipe)
    if let corpusRoot { recipe.corpus.root = corpusRoot }
    if let output { recipe.output = output }
    if let threads { recipe.threads = threads }
    var options = PrepareOptions(force: force)
    if logging.showsProgress { options.progress = TerminalProgress() }
    let signals = SignalHandling(cancellation: options.cancellation)
    let report: PrepareReport
    do {
      report = try prepare(recipe: recipe, options: options)
    } catch let interrupted as RunInterrupted {
      FileHandle.standardError.write(Data("\nds2-data: \(interrupted)\n".utf8))
      throw ExitCode(128 + interrupted.signal)
    }
    withExtendedLifetime(signals) {}
    print(report.summary)
    if report.rejectedCount > 0 { throw ExitCode(exitCodeWithRejections) }
  }
}
