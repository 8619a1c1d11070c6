import Augmentation
import DS2Core
import Features
import Foundation
import Shards

/// What `prepare --dry-run` (or `augment --dry-run`) expects a run to make, from listing and
/// header probes alone plus a short calibration; nothing is written.
public struct PreflightReport: Sendable, Codable {
  /// Utterances of one length bucket, `fromSeconds ..< toSeconds`.
  public struct Bucket: Sendable, Codable {
    public var fromSeconds: Double
    /// nil: no upper bound (the last bucket).
    public var toSeconds: Double?
    public var count: Int
  }

  public struct Split: Sendable, Codable {
    public var name: String
    public var utterances: Int
    public var audioSeconds: Double
    /// Size of its shard files (records, keys, LMDB pages and commits).
    public var outputBytes: Int
    /// Its audio at the calibrated speed.
    public var etaSeconds: Double
    public var shards: Int
    public var histogram: [Bucket]
    /// Items of this split already known to be rejected, by reason.
    public var rejectedByReason: [String: Int]
  }

  /// The featurizing of a sample of the planned utterances on the run's threads.
  public struct Calibration: Sendable, Codable {
    public var utterances: Int
    public var audioSeconds: Double
    public var wallSeconds: Double
    /// Audio seconds featurized per wall second.
    public var realTimeFactor: Double
  }

  public var output: String
  public var threads: Int
  public var utterances: Int
  public var audioSeconds: Double
  /// The splits' shard files plus `manifest.json`, `recipe.yaml`, `rejected.jsonl` and the
  /// output's marker and lock files.
  public var outputBytes: Int
  /// Listing and probing (as just measured) plus the planned audio at the calibrated speed.
  public var etaSeconds: Double
  public var splits: [Split]
  public var missingSplits: [String]
  /// Items already known to be rejected (listing, transcripts, headers, speed copies).
  public var rejected: Int
  public var rejectedByReason: [String: Int]
  public var calibration: Calibration
  /// Free bytes on the output's filesystem (its nearest existing folder), when known.
  public var freeBytes: Int?
  /// What a real run would do with the output folder as it is now, when not simply
  /// writing a new dataset into it (it would refuse, resume, or find it complete).
  public var outputState: String?
  public var planningSeconds: Double

  /// The human summary.
  public var summary: String {
    var lines = [
      String(
        format: "dry run for %@: %d utterances, %.3f h audio → %@ (shards, manifest and side files); ETA %@ on %d thread(s) "
          + "(listing and probing took %.2f s; a sample of %d utterances featurized at %.0f× real time)",
        output, utterances, audioSeconds / 3600, formatBytes(outputBytes), clock(etaSeconds), threads, planningSeconds,
        calibration.utterances, calibration.realTimeFactor)
    ]
    for split in splits {
      let known = split.rejectedByReason.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
      lines.append(
        String(
          format: "  %@: %d utterances, %.2f h, %d shard(s), %@, about %@ to featurize%@", split.name, split.utterances,
          split.audioSeconds / 3600, split.shards, formatBytes(split.outputBytes), clock(split.etaSeconds),
          known.isEmpty ? "" : "; rejected already: " + known.joined(separator: ", ")))
      let largest = max(1, split.histogram.map(\.count).max() ?? 1)
      for bucket in split.histogram where bucket.count > 0 {
        let bar = String(repeating: "█", count: max(1, bucket.count * 40 / largest))
        let range =
          bucket.toSeconds.map { String(format: "%5.1f–%5.1f s", bucket.fromSeconds, $0) }
          ?? String(format: "%5.1f s and more", bucket.fromSeconds)
        lines.append(String(format: "    %@ %7d %@", range, bucket.count, bar))
      }
    }
    if !missingSplits.isEmpty {
      lines.append("  skipped (absent under the corpus root): " + missingSplits.joined(separator: ", "))
    }
    let reasons = rejectedByReason.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
    lines.append("  rejected already: \(rejected)" + (reasons.isEmpty ? "" : " (" + reasons.joined(separator: ", ") + ")"))
    if let freeBytes {
      lines.append(
        "  free on the output's filesystem: \(formatBytes(freeBytes))"
          + (freeBytes < splits.reduce(0, { $0 + $1.outputBytes }) ? " — NOT ENOUGH: a run would refuse to start" : ""))
    }
    if let outputState { lines.append("  the output: \(outputState)") }
    lines.append("  nothing was written")
    return lines.joined(separator: "\n")
  }

  func clock(_ seconds: Double) -> String {
    let total = Int(seconds.rounded())
    return total >= 3600
      ? String(format: "%d h %02d min", total / 3600, total % 3600 / 60)
      : total >= 60 ? String(format: "%d min %02d s", total / 60, total % 60) : String(format: "%.1f s", seconds)
  }

  /// Length buckets' upper edges, seconds.
  static let bucketEdges: [Double] = [1, 2, 3, 4, 6, 8, 10, 12, 15, 20, 30, 60, .infinity]
}

/// Free bytes for an unprivileged writer on the filesystem holding `path` (or its nearest
/// existing ancestor), or nil.
func freeBytes(near path: String) -> Int? {
  var candidate = OutputFolder.resolve(path)
  while !FileManager.default.fileExists(atPath: candidate) && candidate != "/" && !candidate.isEmpty {
    candidate = (candidate as NSString).deletingLastPathComponent
  }
  var info = statvfs()
  guard statvfs(candidate.isEmpty ? "/" : candidate, &info) == 0 else { return nil }
  let (bytes, overflow) = Int(info.f_bavail).multipliedReportingOverflow(by: Int(info.f_frsize))
  return overflow ? Int.max : bytes
}

extension Preparer {
  /// The dry run's report for the planned `splits`: sizes from the shard plan, a length
  /// histogram per split, and an ETA from featurizing a sample of up to 256 utterances
  /// (spread over the plan) on the run's threads.
  /// - Throws: `RunInterrupted` when cancelled.
  func preflight(
    _ splits: [(String, [PlannedUtterance])], featureParameters: FeatureParameters, vocabulary: Vocabulary,
    missingSplits: [String], started: DispatchTime
  ) throws -> PreflightReport {
    let planningSeconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
    let rate = Double(recipe.audio.sampleRateHertz)
    let plannedShards = ShardStream.plannedShards(for: splits, bins: featureParameters.bins, recipe: recipe)
    var splitReports: [PreflightReport.Split] = []
    for (name, utterances) in splits {
      let seconds = utterances.map { Double($0.samples) / rate }
      var histogram: [PreflightReport.Bucket] = []
      var lower = 0.0
      for upper in PreflightReport.bucketEdges {
        histogram.append(
          .init(
            fromSeconds: lower, toSeconds: upper.isFinite ? upper : nil,
            count: seconds.filter { $0 >= lower && $0 < upper }.count))
        lower = upper
      }
      let shards = utterances.isEmpty ? [] : plannedShards[name] ?? []
      let shardBytes = shards.reduce(0) { $0 + $1.expectedBytes }
      var rejectedHere: [String: Int] = [:]
      for rejection in rejections where rejection.split == name { rejectedHere[rejection.reason.rawValue, default: 0] += 1 }
      splitReports.append(
        .init(
          name: name, utterances: utterances.count, audioSeconds: seconds.reduce(0, +),
          outputBytes: shardBytes, etaSeconds: 0, shards: shards.count,
          histogram: histogram, rejectedByReason: rejectedHere))
    }
    let calibration = try calibrate(splits.flatMap(\.1))
    if calibration.realTimeFactor > 0 {
      for index in splitReports.indices {
        splitReports[index].etaSeconds = splitReports[index].audioSeconds / calibration.realTimeFactor
      }
    }
    let audioSeconds = splitReports.reduce(0) { $0 + $1.audioSeconds }
    var byReason: [String: Int] = [:]
    for rejection in rejections { byReason[rejection.reason.rawValue, default: 0] += 1 }
    return PreflightReport(
      output: output, threads: threads, utterances: splitReports.reduce(0) { $0 + $1.utterances }, audioSeconds: audioSeconds,
      outputBytes: splitReports.reduce(0) { $0 + $1.outputBytes }
        + (try sideFileBytes(splits, shardCounts: splitReports.map(\.shards), featureParameters: featureParameters, vocabulary: vocabulary, missingSplits: missingSplits)),
      etaSeconds: planningSeconds + (calibration.realTimeFactor > 0 ? audioSeconds / calibration.realTimeFactor : 0),
      splits: splitReports, missingSplits: missingSplits, rejected: rejections.count, rejectedByReason: byReason,
      calibration: calibration, freeBytes: options.freeSpace(output), outputState: outputStateForDryRun(),
      planningSeconds: planningSeconds)
  }

  /// What a real run would do with the output as it is, read without writing anything; nil
  /// when it would simply write a new dataset there.
  func outputStateForDryRun() -> String? {
    switch OutputFolder.look(at: output) {
    case .absent, .empty: return nil
    case .notAFolder: return "\(output) exists and is not a folder: a real run would refuse"
    case .foreign(let names):
      return "\(output) holds files ds2-data did not write (\(names.joined(separator: ", "))): a real run would refuse"
    case .output(let kind) where kind != .dataset:
      return "\(output) holds a ds2-data \(kind), not a dataset: a real run would refuse"
    case .output:
      if let bytes = try? RegularFile.read(output + "/manifest.json", maxBytes: DatasetManifest.maxBytes) {
        guard let existing = try? JSONDecoder().decode(DatasetManifest.self, from: Data(bytes)) else {
          return "\(output) holds an unreadable manifest.json: a real run needs --force to replace it"
        }
        if existing.recipe == identity { return "already holds this dataset: a real run would do nothing" }
        return "holds a dataset of another recipe (differs in: \(differingKeys(existing.recipe, identity).joined(separator: ", "))): "
          + "a real run needs --force to replace it"
      }
      let parts = PartFolder.parts(in: output + "/" + PartFolder.folderName)
      if !parts.isEmpty {
        return "holds the parts of an unfinished partitioned run: a real run without --partition would refuse (--force discards them)"
      }
      if let journal = RunJournal.load(directory: output) {
        if journal.recipe == identity { return "holds an unfinished run of this recipe: a real run would resume it" }
        return "holds an unfinished run of another recipe: a real run needs --force to discard it"
      }
      return nil
    }
  }

  /// The size of the files a run writes beside the shards: `manifest.json` (encoded for the
  /// planned shards, with statistics of typical length: 17 significant digits), the
  /// `recipe.yaml`, `rejected.jsonl` of the rejections known now, and the marker and lock.
  func sideFileBytes(
    _ splits: [(String, [PlannedUtterance])], shardCounts: [Int], featureParameters: FeatureParameters,
    vocabulary: Vocabulary, missingSplits: [String]
  ) throws -> Int {
    let bins = featureParameters.bins
    let typical = FeatureStatistics(
      count: 123_456, mean: [Double](repeating: -7.123456789012345, count: bins),
      m2: [Double](repeating: 12345.678901234567, count: bins))
    var shardsBySplit: [String: [ShardInfo]] = [:]
    for ((name, utterances), count) in zip(splits, shardCounts) {
      shardsBySplit[name] = (0..<count).map { index in
        ShardInfo(
          file: SplitWriter.shardFileName(split: name, index: index), records: max(1, utterances.count / max(1, count)),
          minFrames: 100, maxFrames: 1000, frames: 123_456, samples: 12_345_678, bytes: 12_345_678,
          sha256: String(repeating: "0", count: 64), statistics: typical)
      }
    }
    let (manifest, _) = try assembleManifest(
      features: featureParameters, vocabulary: vocabulary, splits: splits.map(\.0), shardsBySplit: shardsBySplit,
      missingSplits: missingSplits, inputs: inputRoots())
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let rejectedBytes = try rejections.reduce(0) { $0 + (try encoder.encode($1)).count + 1 }
    let markerAndLock = 256
    return try encodeManifest(manifest).utf8.count + (try recipe.yaml()).utf8.count + rejectedBytes + markerAndLock
  }

  /// Featurizes (decode, resample, augment as planned, spectrogram, encoding) up to 256
  /// utterances spread evenly over `planned`, on the run's threads, and times the second of
  /// two passes.
  func calibrate(_ all: [PlannedUtterance]) throws -> PreflightReport.Calibration {
    // Audio still packed in an archive is decodable only when the listing kept its bytes.
    let planned = all.contains { $0.source.packed != nil } ? all.filter { $0.source.packed?.contents != nil || $0.source.packed == nil } : all
    let sampleSize = min(planned.count, 256)
    guard sampleSize > 0 else { return .init(utterances: 0, audioSeconds: 0, wallSeconds: 0, realTimeFactor: 0) }
    let sample = (0..<sampleSize).map { planned[$0 * planned.count / sampleSize] }
    let featurizers = try featurizersInFlight.value()
    let scratch = PerWorker(count: pool.threadCount) { _ in Augmenter.Scratch() }
    let (augmenter, dtype) = (self.augmenter, recipe.shards.dtype)
    let rate = Double(recipe.audio.sampleRateHertz)
    var audioSeconds = 0.0
    var wall = 0.0
    // Twice: the first pass warms the code, the caches and the allocator as a long run has
    // them; the second is timed.
    for timed in [false, true] {
      audioSeconds = 0
      let begun = DispatchTime.now().uptimeNanoseconds
      try pool.orderedMap(
        count: sample.count, window: 2 * pool.threadCount,
        produce: { index, worker -> Bool in
          (try? makeRecord(sample[index], featurizer: featurizers[worker], augmenter: augmenter, scratch: scratch[worker], dtype: dtype))
            != nil
        },
        consume: { index, made in
          try options.cancellation.check(output: output)
          if made { audioSeconds += Double(sample[index].samples) / rate }
        })
      if timed { wall = Double(DispatchTime.now().uptimeNanoseconds - begun) / 1e9 }
    }
    return .init(utterances: sample.count, audioSeconds: audioSeconds, wallSeconds: wall, realTimeFactor: wall > 0 ? audioSeconds / wall : 0)
  }
}

extension Preparer {
  /// Refuses to start when the shards this run still has to write (its part's, less those
  /// a resumed run already has) need more than the output's filesystem has free.
  /// - Throws: `ConfigurationError` with both sizes, unless `options.ignoreFreeSpace`.
  func checkFreeSpace(plannedShards: [String: [PlannedShard]], ranges: [String: Range<Int>]?) throws {
    guard !options.ignoreFreeSpace, let free = options.freeSpace(output) else { return }
    var needed = 0
    for (split, shards) in plannedShards {
      let done = journal.splits[split]?.shards.count ?? 0
      for shard in shards.dropFirst(done) {
        if let range = ranges?[split], !range.contains(shard.start) { continue }
        needed += shard.expectedBytes
      }
    }
    guard needed > free else { return }
    throw ConfigurationError(
      "\(output): the shards need \(formatBytes(needed)), and its filesystem has \(formatBytes(free)) free; "
        + "free some space, or pass --ignore-free-space to start anyway (a run that fills the disk stops, keeps its "
        + "finished shards and resumes once space is freed)")
  }
}
