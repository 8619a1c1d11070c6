import ArgumentParser
import DS2Core
import Foundation
import Pipeline

/// Options shared by the commands that write a dataset (`prepare`, `augment`).
struct RunOptions: ParsableArguments {
  @Option(help: "Override the recipe's corpus.root.")
  var corpusRoot: String?

  @Option(help: "Output directory (overrides the recipe's).")
  var output: String?

  @Option(help: "Threads, i.e. cores, for everything the run computes, 0–1024 (default: the recipe's, 0 = one per core). Never changes the output.")
  var threads: Int?

  @Flag(help: "Replace an existing dataset (or unfinished run) in the output directory made from a different recipe.")
  var force = false

  @OptionGroup var logging: LoggingOptions

  func validate() throws {
    if let threads { try checkFlags { try ConfigurationCheck.value(threads, in: threadCountRange, "--threads", allowed: threadCountAllowed) } }
  }

  /// Applies the overrides other than `output` to `recipe`.
  func apply(to recipe: inout Recipe) {
    if let corpusRoot { recipe.corpus.root = corpusRoot }
    if let threads { recipe.threads = threads }
  }

  /// Runs `body` with progress and Ctrl-C handling, prints the summary, and exits with
  /// 3 when items were rejected, 128 + signal when interrupted.
  func run(_ body: (PrepareOptions) throws -> PrepareReport) throws {
    logging.bootstrap()
    var options = PrepareOptions(force: force)
    if logging.showsProgress { options.progress = TerminalProgress() }
    let signals = SignalHandling(cancellation: options.cancellation)
    defer { withExtendedLifetime(signals) {} }
    let report: PrepareReport
    do {
      report = try body(options)
    } catch let interrupted as RunInterrupted {
      FileHandle.standardError.write(Data("\nds2-data: \(interrupted)\n".utf8))
      throw ExitCode(128 + interrupted.signal)
    }
    print(report.summary)
    if report.rejectedCount > 0 { throw ExitCode(exitCodeWithRejections) }
  }
}
