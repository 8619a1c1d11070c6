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

  @Option(
    help: ArgumentHelp(
      "Write only part K of N (K/N, K from 0), or auto/N with K from SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX; join the parts with ds2-data merge.",
      valueName: "K/N"))
  var partition: String?

  @Flag(
    help: "List and probe only, and write the plan that --partition tasks read (partitions/plan.bin in the output): run it once before the tasks of a large corpus.")
  var planOnly = false

  @Flag(help: "List and probe only, featurize a small sample to time it, and print per split the utterances, hours, a length histogram, the rejections known so far, the output size and an ETA; write nothing.")
  var dryRun = false

  @Flag(help: "With --dry-run: print the report as one JSON object.")
  var json = false

  @Flag(help: "Start even when the output's filesystem has less free space than the shards need.")
  var ignoreFreeSpace = false

  @OptionGroup var logging: LoggingOptions

  func validate() throws {
    if let threads { try checkFlags { try ConfigurationCheck.value(threads, in: threadCountRange, "--threads", allowed: threadCountAllowed) } }
    _ = try parsedPartition()
    if json && !dryRun { throw ValidationError("--json goes with --dry-run") }
    if dryRun && (partition != nil || planOnly || force) {
      throw ValidationError("--dry-run writes nothing: it does not combine with --partition, --plan-only or --force")
    }
    if planOnly && partition != nil {
      throw ValidationError("--plan-only writes the plan for all parts: run it once, without --partition, before the tasks")
    }
    if force && (partition != nil || planOnly) {
      throw ValidationError("--force cannot be combined with --partition or --plan-only: parts never remove what other parts wrote")
    }
  }

  /// `--partition` parsed, K taken from the scheduler's variables for `auto/N`.
  func parsedPartition() throws -> Partition? {
    guard let partition else { return nil }
    var parsed: Partition?
    try checkFlags { parsed = try Partition.parse(partition, environment: ProcessInfo.processInfo.environment) }
    return parsed
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
    options.partition = try parsedPartition()
    options.planOnly = planOnly
    options.dryRun = dryRun
    options.ignoreFreeSpace = ignoreFreeSpace
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
    if let preflight = report.preflight, json {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys]
      encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
      print(String(decoding: try encoder.encode(preflight), as: UTF8.self))
      return
    }
    print(report.summary)
    if report.preflight != nil { return }
    // A part's (and the plan's) rejections are reported by merge: a task that did its part
    // exits 0, so that a scheduler's dependency (Slurm afterok) starts the next job.
    if report.rejectedCount > 0 && report.partition == nil && report.planFile == nil { throw ExitCode(exitCodeWithRejections) }
  }
}
