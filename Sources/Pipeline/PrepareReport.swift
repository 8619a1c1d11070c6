import DS2Core
import Foundation
import Shards

/// What a `prepare` run did.
public struct PrepareReport: Sendable {
  public struct SplitSummary: Sendable {
    public var name: String
    public var records: Int
    public var audioSeconds: Double
    public var shards: Int
    public var bytes: Int
  }

  public var outputDirectory: String
  /// `prepared` or `augmented`, for the summary.
  public var verb = "prepared"
  /// True when the output already held this exact dataset and nothing was done.
  public var alreadyComplete = false
  public var splits: [SplitSummary] = []
  /// Splits named in the recipe but absent under the corpus root.
  public var missingSplits: [String] = []
  public var rejectionsByReason: [RejectionReason: Int] = [:]
  public var wallSeconds = 0.0
  public var threads = 1
  /// Peak resident memory of the process, bytes.
  public var peakMemoryBytes = 0
  /// User + system CPU time of the process during the run, seconds.
  public var cpuSeconds = 0.0
  /// Audio featurized by this run (less than `audioSeconds` when it resumed).
  public var processedAudioSeconds = 0.0
  /// Records a previous, interrupted run had already written.
  public var resumedRecords = 0
  /// Usable files in the noise bank (augment).
  public var noiseFiles: Int?
  /// Set for one part of a partitioned run: which part, its planned audio seconds and the
  /// whole run's.
  public var partition: Partition?
  /// Set by `merge`: how many parts it joined.
  public var mergedParts: Int?
  public var partitionShareSeconds = 0.0
  public var plannedSeconds = 0.0
  /// Set by the plan step: the plan file written (or found current), and what it holds.
  public var planFile: String?
  public var plannedUtterances = 0
  public var planBytes = 0
  public var planWasCurrent = false
  /// Set for a part that read the plan step's plan instead of listing and probing.
  public var planRead: String?
  /// Set by a dry run: what the run would make.
  public var preflight: PreflightReport?

  public var records: Int { splits.reduce(0) { $0 + $1.records } }
  public var audioSeconds: Double { splits.reduce(0) { $0 + $1.audioSeconds } }
  public var outputBytes: Int { splits.reduce(0) { $0 + $1.bytes } }
  public var rejectedCount: Int { rejectionsByReason.values.reduce(0, +) }
  /// A part's summary: the items listing and planning rejected (the same for every part,
  /// not in `rejectionsByReason`).
  public var planningRejections = 0
  /// Audio seconds featurized per wall second.
  public var realTimeFactor: Double { wallSeconds > 0 ? processedAudioSeconds / wallSeconds : 0 }

  /// Adds one summary line per split: records, audio, shards, bytes.
  mutating func addSplits(_ infos: [SplitInfo]) {
    for info in infos {
      splits.append(
        .init(
          name: info.name, records: info.records, audioSeconds: info.audioSeconds, shards: info.shards.count,
          bytes: info.shards.reduce(0) { $0 + $1.bytes }))
    }
  }

  /// Counts the rejections the finished dataset in `output` lists (its manifest's
  /// `rejected`), for a run that found it complete: its exit status says what the
  /// dataset holds, as the run that made it did.
  mutating func countExistingRejections(in output: String) {
    // Only the manifest's `rejected` member is decoded: the whole manifest's statistics
    // took most of a no-op merge's time.
    struct Rejected: Decodable { let rejected: RejectionSummary }
    guard let bytes = try? RegularFile.read(output + "/manifest.json", maxBytes: DatasetManifest.maxBytes),
      let manifest = try? JSONDecoder().decode(Rejected.self, from: Data(bytes))
    else { return }
    for (name, count) in manifest.rejected.byReason {
      if let reason = RejectionReason(rawValue: name), count > 0 { rejectionsByReason[reason, default: 0] += count }
    }
  }

  /// Counts `rejections` by reason.
  mutating func countRejections(_ rejections: [ItemError]) {
    for rejection in rejections { rejectionsByReason[rejection.reason, default: 0] += 1 }
  }

  /// One-paragraph human summary.
  public var summary: String {
    if let preflight { return preflight.summary }
    if alreadyComplete {
      if let partition, mergedParts == nil {
        return "part \(partition) of \(outputDirectory) is already complete for this recipe; nothing to do "
          + "(when every part is done: ds2-data merge \(outputDirectory))"
      }
      let rejected = rejectedCount > 0 ? " (it lists \(rejectedCount) rejected item(s) in rejected.jsonl)" : ""
      return "\(outputDirectory): already complete for this recipe; nothing to do\(rejected)"
    }
    var lines: [String] = []
    for split in splits {
      lines.append(
        String(
          format: "  %@: %d records, %.2f h, %d shard(s), %@", split.name, split.records, split.audioSeconds / 3600,
          split.shards, formatBytes(split.bytes)))
    }
    if let noiseFiles {
      lines.append("  noise bank: \(noiseFiles) usable file(s)")
    }
    if let partition {
      if partitionShareSeconds == 0 {
        lines.append("  part \(partition): nothing to do (no shard falls to it); merge with: ds2-data merge \(outputDirectory)")
      } else {
        lines.append(
          String(
            format: "  part %@: %.2f h of the %.2f h planned (%.1f %%); when every part is done: ds2-data merge %@",
            partition.description, partitionShareSeconds / 3600, plannedSeconds / 3600,
            100 * partitionShareSeconds / max(plannedSeconds, 1e-9), outputDirectory))
      }
    }
    if let planRead {
      lines.append("  read the plan \(planRead) (listing and header probing skipped)")
    }
    if resumedRecords > 0 {
      lines.append("  resumed: \(resumedRecords) records were already written by an interrupted run")
    }
    if !missingSplits.isEmpty {
      lines.append("  skipped (absent under the corpus root): " + missingSplits.joined(separator: ", "))
    }
    if let partition, mergedParts == nil {
      let reasons = rejectionsByReason.sorted { $0.key < $1.key }.map { "\($0.key.rawValue) \($0.value)" }
      lines.append(
        "  rejected while featurizing this part: \(rejectedCount)" + (reasons.isEmpty ? "" : " (" + reasons.joined(separator: ", ") + ")")
          + "; at listing and planning: \(planningRejections) (the same for every part); "
          + "listed in partitions/\(partition.index)/part.json until merge writes rejected.jsonl")
    } else if rejectedCount > 0 {
      let reasons = rejectionsByReason.sorted { $0.key < $1.key }.map { "\($0.key.rawValue) \($0.value)" }
      lines.append("  rejected \(rejectedCount): " + reasons.joined(separator: ", ") + " (see rejected.jsonl)")
    } else {
      lines.append("  rejected 0")
    }
    if let planFile {
      let head =
        planWasCurrent
        ? "\(planFile): already the plan of this recipe and corpus; nothing to do"
        : String(
          format: "planned %d utterances, %.3f h audio, into %@ (%@) in %.2f s, peak memory %@", plannedUtterances,
          plannedSeconds / 3600, planFile, formatBytes(planBytes), wallSeconds, formatBytes(peakMemoryBytes))
      return ([head] + lines.filter { !$0.hasPrefix("  rejected 0") }
        + ["  next: every task runs the same command with --partition K/N (or auto/N) instead of --plan-only, then ds2-data merge \(outputDirectory)"])
        .joined(separator: "\n")
    }
    if let mergedParts {
      let head = String(
        format: "merged %@ from %d part(s): %d records, %.3f h audio, %@ in %.2f s", outputDirectory, mergedParts, records,
        audioSeconds / 3600, formatBytes(outputBytes), wallSeconds)
      return ([head] + lines).joined(separator: "\n")
    }
    let head = String(
      format: "%@ %@: %d records, %.3f h audio, %@ in %.2f s — %.0f× real time (%.0f× per thread, %d threads; %.0f audio-s per CPU-s), peak memory %@",
      verb, outputDirectory, records, audioSeconds / 3600, formatBytes(outputBytes), wallSeconds, realTimeFactor,
      realTimeFactor / Double(max(threads, 1)), threads, cpuSeconds > 0 ? processedAudioSeconds / cpuSeconds : 0,
      formatBytes(peakMemoryBytes))
    return ([head] + lines).joined(separator: "\n")
  }
}

/// `1.5 MiB`-style sizes for summaries.
public func formatBytes(_ bytes: Int) -> String {
  let value = Double(bytes)
  if value >= 1_073_741_824 { return String(format: "%.2f GiB", value / 1_073_741_824) }
  if value >= 1_048_576 { return String(format: "%.1f MiB", value / 1_048_576) }
  if value >= 1024 { return String(format: "%.1f KiB", value / 1024) }
  return "\(bytes) B"
}

/// User + system CPU seconds this process has used (`getrusage`).
public func processCPUSeconds() -> Double {
  var usage = rusage()
  getrusage(RUSAGE_SELF_WHO, &usage)
  func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
  return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Peak resident set size of this process in bytes (`getrusage`).
#if os(Linux)
  private let RUSAGE_SELF_WHO = Int32(RUSAGE_SELF.rawValue)
#else
  private let RUSAGE_SELF_WHO = RUSAGE_SELF
#endif

public func peakResidentBytes() -> Int {
  var usage = rusage()
  getrusage(RUSAGE_SELF_WHO, &usage)
  #if os(Linux)
    return Int(usage.ru_maxrss) * 1024
  #else
    return Int(usage.ru_maxrss)
  #endif
}
