import Audio
import Augmentation
import Corpus
import DS2Core
import Features
import Foundation
import Logging
import Shards

/// The version written into manifests.
public let toolVersion = "0.1.0"

/// Options of a `prepare` run that are not part of the recipe.
public struct PrepareOptions {
  /// Replace an existing dataset made from a different recipe.
  public var force = false
  /// Receives progress (a terminal display, or nil).
  public var progress: ProgressSink?
  /// Checked between items; when cancelled the run stops with `RunInterrupted`.
  public var cancellation = Cancellation()
  /// Write only this part of the dataset (`--partition K/N`); `merge` joins the parts.
  public var partition: Partition?
  /// Only list and probe, and write the plan that partition tasks read
  /// (`partitions/plan.bin`, `--plan-only`).
  public var planOnly = false
  /// Only list, probe and calibrate, and report sizes and an ETA; write nothing (`--dry-run`).
  public var dryRun = false
  /// Start even when the output's filesystem has less free space than the shards need.
  public var ignoreFreeSpace = false
  /// Free bytes on the filesystem of a path (`statvfs`; replaceable in tests).
  public var freeSpace: @Sendable (String) -> Int? = { freeBytes(near: $0) }
  public var logger = Logger(label: "ds2-data.prepare")

  public init(force: Bool = false, progress: ProgressSink? = nil) {
    self.force = force
    self.progress = progress
  }
}

/// One utterance that passed listing, text and header checks, with its exact lengths.
struct PlannedUtterance: Sendable {
  var source: UtteranceSource
  var labels: [Int32]
  /// Samples after resampling to the dataset rate.
  var samples: Int
  /// Feature frames of those samples.
  var frames: Int
  /// What augmentation does to this copy (nil: written as decoded).
  var augmentation: AugmentationPlan?
  /// The record id (the source id, or `sp<factor>-<id>` for speed copies).
  var id: String
}

/// Prepares a corpus into a length-sorted LMDB dataset (the `ds2-data prepare` command).
///
/// Stages: list the corpus (paths and transcripts only) → check and encode transcripts →
/// probe audio headers in parallel (exact lengths without decoding) → per split, sort by
/// (frames, id) → decode, resample, featurize on `threads` threads, which also take turns
/// writing the results in that order into size-capped shards and digesting closed shards
/// (`rejected.jsonl` and `recipe.yaml` are written while the last shard is digested) →
/// merge per-shard statistics → write, last and atomically, `manifest.json`.
///
/// - Throws: `ConfigurationError` for a bad recipe, a missing root or an output that holds
///   a different dataset; `LMDBError` for write failures (disk full). Bad items never
///   throw: they are counted, logged and listed in `rejected.jsonl`.
public func prepare(recipe: Recipe, options: PrepareOptions = PrepareOptions()) throws -> PrepareReport {
  try Preparer(recipe: recipe, options: options, augmenting: false).run()
}

/// Prepares an augmented dataset (the `ds2-data augment` command): like `prepare`, but
/// every utterance of the augmented splits (default: the training splits) becomes one
/// labelled copy per speed factor, each with noise, babble, gain and reverberation drawn
/// from `(seed, utterance id, copy)` as `recipe.augment` says. Other splits are written
/// clean. The result is length-sorted in the same format; each record's info holds its
/// provenance. Resumable and deterministic like `prepare`.
/// - Throws: as `prepare`, plus `ConfigurationError` for a missing `augment` section or
///   an unusable noise bank.
public func augment(recipe: Recipe, options: PrepareOptions = PrepareOptions()) throws -> PrepareReport {
  guard recipe.augment != nil else {
    throw ConfigurationError("the recipe has no augment section (and no --noise-bank/--speed given)")
  }
  return try Preparer(recipe: recipe, options: options, augmenting: true).run()
}

/// One `prepare` or `augment` run: composes the stages and owns what they report.
///
/// `DatasetFolder` claims, checks and empties the output; the corpus reader lists;
/// `UtterancePlanner` decides what is featurized; `ShardStream` featurizes and writes the
/// shards with the resume journal; this type merges the statistics and writes the side
/// files and, last, the manifest. Rejections from every stage are collected here, in the
/// order found, for `rejected.jsonl`.
final class Preparer {
  let recipe: Recipe
  let options: PrepareOptions
  let output: String
  let threads: Int
  /// The run's compute threads.
  let pool: WorkerPool
  var rejections: [ItemError] = []
  /// The resume journal this run starts from (fresh, or the one it resumes).
  var journal: RunJournal
  /// One featurizer per thread, being made (see `run`).
  var featurizersInFlight: Later<PerWorker<Featurizer>>!
  /// `rejected.jsonl` and `recipe.yaml`, being written (see `startSideFiles`).
  var sideFiles: Later<Void>?
  var logger: Logger { options.logger }

  /// The recipe settings that determine this run's output (see `Recipe.contentIdentity`).
  let identity: JSONValue
  let augmenting: Bool
  /// Set when augmenting: indexes noise and impulse responses, draws and applies plans.
  var augmenter: Augmenter?
  /// The claimed and locked output folder (set at the start of `run`).
  private var claimedFolder: DatasetFolder?
  var folder: DatasetFolder { claimedFolder! }

  init(recipe: Recipe, options: PrepareOptions, augmenting: Bool) {
    self.recipe = recipe
    self.options = options
    self.output = recipe.output
    self.threads = recipe.effectiveThreads
    self.pool = WorkerPool(threads: recipe.effectiveThreads)
    self.augmenting = augmenting
    self.identity = recipe.contentIdentity(augmenting: augmenting)
    self.journal = RunJournal(recipe: identity)
  }

  /// Logs and keeps one rejection.
  func reject(_ error: ItemError) {
    logger.warning("rejected \(error)")
    rejections.append(error)
  }

  func run() throws -> PrepareReport {
    do {
      return try runClaimed()
    } catch {
      // A run that failed before writing anything leaves no folder behind; an interrupted
      // one keeps its journal to resume from.
      if !(error is RunInterrupted) { claimedFolder?.removeIfNothingWritten() }
      throw error
    }
  }

  private func runClaimed() throws -> PrepareReport {
    let started = DispatchTime.now()
    let cpuAtStart = processCPUSeconds()
    try recipe.validate()
    let partition = options.partition
    if (partition != nil || options.planOnly) && options.force {
      throw ConfigurationError(
        "--force cannot be combined with --partition or --plan-only: parts never remove what other parts wrote; "
          + "replace the dataset with one prepare --force first, or choose another --output")
    }
    if partition != nil && options.planOnly {
      throw ConfigurationError("--plan-only writes the plan for all parts: run it once, without --partition, before the tasks")
    }
    if options.dryRun && (partition != nil || options.planOnly || options.force) {
      throw ConfigurationError("--dry-run writes nothing: it does not combine with --partition, --plan-only or --force")
    }
    if options.dryRun {
      // The path checks of a real run, so that a dry run refuses what the run would.
      do { try OutputFolder.checkPath(output, kind: .dataset, protectedPaths: inputPaths()) } catch let error as OutputFolderError {
        throw ConfigurationError(error.message)
      }
    } else {
      claimedFolder = try DatasetFolder.claim(
        output, protecting: inputPaths(), lock: partition == nil ? .exclusive : .shared, logger: logger)
    }
    var report = PrepareReport(outputDirectory: output)
    report.threads = threads
    if augmenting { report.verb = "augmented" }
    // A run on one machine into the output of an unfinished partitioned run would rewrite
    // the parts' shards under them.
    let partsRoot = output + "/" + PartFolder.folderName
    if partition == nil && !options.planOnly && !options.dryRun, case let parts = PartFolder.parts(in: partsRoot), !parts.isEmpty {
      guard options.force else {
        throw ConfigurationError(
          "\(output) holds the parts of an unfinished partitioned run (\(parts.map { "partitions/\($0.0)" }.joined(separator: ", "))); "
            + "finish it (the remaining --partition K/N tasks, then ds2-data merge \(output)), or pass --force to discard "
            + "them and prepare it here on one machine")
      }
      PartFolder.removeAll(in: partsRoot)
    }
    if !options.dryRun, try folder.holdsDataset(identity: identity, force: options.force) {
      report.alreadyComplete = true
      if partition == nil && !options.planOnly { report.countExistingRejections(in: output) }
      return report
    }
    let planPath = (claimedFolder?.path ?? output) + "/" + PartFolder.folderName + "/" + StoredPlan.fileName
    let planFile = partition != nil && RegularFile.exists(planPath) ? try StoredPlan.File(path: planPath) : nil
    if let planFile, planFile.header.identity != identity {
      throw ConfigurationError(
        "\(planPath) was written for a different recipe (differs in: "
          + "\(differingKeys(planFile.header.identity, identity).joined(separator: ", "))); every part runs the recipe of the plan")
    }
    let part = try partition.map { try PartFolder.claim(partition: $0, in: folder, identity: identity) }
    // The part's lock is held until the run returns.
    defer { withExtendedLifetime(part) {} }
    if let part,
      part.isComplete(
        identity: identity, output: output,
        changed: { [logger] in logger.warning("part \(part.partition): \($0); writing the part again") })
    {
      report.alreadyComplete = true
      report.partition = partition
      return report
    }
    let journalDirectory = part?.path ?? output
    let resumed =
      options.dryRun
      ? nil : try part.map { $0.resumableJournal(for: journal) } ?? folder.resumableJournal(for: journal, force: options.force)
    if let resumed { journal = resumed }
    let resuming = resumed != nil
    // FFTW plans take milliseconds to make: made while the corpus is listed.
    let featureParameters = makeFeatureParameters()
    // Borrowed statistics must fit these features: checked before any work, not at the end.
    if augmenting, let source = recipe.augment?.statisticsFrom {
      _ = try borrowedStatistics(from: source, features: featureParameters)
    }
    let planOnly = options.planOnly
    featurizersInFlight = pool.later { [threads] in
      try PerWorker(count: planOnly ? 0 : threads) { _ in try Featurizer(parameters: featureParameters) }
    }

    // 1. List (a task with a stored plan takes the listing's outcome from it).
    let listing: CorpusListing
    if let planFile {
      listing = CorpusListing(
        sources: [], rejections: planFile.header.listingRejections, missingSplits: planFile.header.missingSplits)
      logger.info("read the plan \(planPath): \(planFile.header.utterances) utterances")
    } else {
      listing = try makeCorpusReader(recipe.corpus, pool: pool, unpacking: !options.dryRun).list(splits: recipe.corpus.splits)
    }
    report.missingSplits = listing.missingSplits
    for split in listing.missingSplits {
      logger.warning("split \(split) is not under \(recipe.corpus.root); skipping it")
    }
    let presentTraining = recipe.corpus.trainingSplits.filter { !listing.missingSplits.contains($0) }
    if recipe.normalization.mode == .global && presentTraining.isEmpty {
      throw ConfigurationError(
        "normalization.mode is global but none of the training splits (\(recipe.corpus.trainingSplits.joined(separator: ", "))) "
          + "is under \(recipe.corpus.root); download one, or set normalization.mode")
    }
    // Present but listing nothing (their list files unreadable, say): global statistics
    // would come from no frames at all.
    if recipe.normalization.mode == .global && planFile == nil
      && !listing.sources.contains(where: { recipe.corpus.trainingSplits.contains($0.split) })
    {
      let why = listing.rejections.first { $0.reason == .unreadableFile && recipe.corpus.trainingSplits.contains($0.split ?? "") }
      throw ConfigurationError(
        "normalization.mode is global but the training splits (\(presentTraining.joined(separator: ", "))) list no utterance"
          + (why.map { ": \($0)" } ?? "") + "; fix the corpus, or set normalization.mode")
    }
    listing.rejections.forEach(reject)

    // 2. Texts, 3. headers.
    logger.info("listed \(listing.sources.count) utterances in \(elapsed(since: started))")
    let vocabulary = try planFile?.header.vocabulary ?? makeVocabulary(for: recipe.corpus, listing: listing)
    // The plan step of augment draws the copies too, to store their record sizes.
    if augmenting, let config = recipe.augment {
      let augmenter = try Augmenter(config: config, sampleRateHertz: recipe.audio.sampleRateHertz, seed: recipe.seed, pool: pool)
      if let bank = augmenter.bank {
        logger.notice("noise bank \(bank.root): \(bank.files.count) usable file(s), \(bank.rejections.count) rejected")
        report.noiseFiles = bank.files.count
        bank.rejections.forEach(reject)
      }
      augmenter.impulseResponseRejections.forEach(reject)
      self.augmenter = augmenter
    }
    // A new run's output is emptied and journaled while the headers are probed: on disk
    // before any shard is, so an unfinished run says which recipe it belongs to.
    let outputReady = Later(waitingWork: { [journal, claimedFolder, part, journalDirectory] in
      guard !resuming, !planOnly, let folder = claimedFolder else { return }
      if let part { try part.startOver(in: folder) } else { try folder.wipe() }
      try journal.save(directory: journalDirectory)
    })
    // Also when the run throws: no half-written file races what the caller does next.
    defer {
      _ = try? outputReady.value()
      _ = try? sideFiles?.value()
    }
    let planner = UtterancePlanner(
      recipe: recipe, vocabulary: vocabulary, pool: pool, progress: options.progress, cancellation: options.cancellation)
    // A task with a stored plan keeps of it only what ordering needs and decodes its own share.
    let probed =
      try planFile.map { UtterancePlanner.Plan(utterances: [], rejections: $0.header.probeRejections) }
      ?? planner.plan(listing.sources)
    if options.planOnly {
      return try writePlan(
        StoredPlan(
          header: .init(
            identity: identity, missingSplits: listing.missingSplits, listingRejections: listing.rejections,
            probeRejections: probed.rejections, vocabulary: vocabulary, utterances: probed.utterances.count),
          utterances: probed.utterances, stamps: try stamps(of: probed.utterances),
          copySizes: try augmenter.map { try copySizes(of: probed.utterances, augmenter: $0, bins: featureParameters.bins) }),
        to: planPath, report: &report, started: started)
    }
    probed.rejections.forEach(reject)
    var planned = probed.utterances
    if let augmenter { planned = planner.expand(planned, with: augmenter, reject: reject) }

    // 4. Featurize and write each split in length order (a partition: its share of them).
    let splitNames = recipe.corpus.splits.filter { !listing.missingSplits.contains($0) }
    let order: SplitOrder
    if let planFile, let partition {
      // Augment's copies of one utterance are drawn from it alone: expanded one at a time,
      // rejections reported on the first pass only (in plan order, as a single run reports them).
      let expand = augmenter.map { augmenter in
        { (utterance: PlannedUtterance, reporting: Bool) in
          planner.expand([utterance], with: augmenter, reject: reporting ? { [self] in reject($0) } : { _ in })
        }
      }
      order = try SplitOrder(
        plan: planFile, splits: splitNames, partition: partition, recipe: recipe, bins: featureParameters.bins,
        expand: expand)
    } else {
      order = SplitOrder(
        splitNames.map { split in
          var utterances = planned.filter { $0.source.split == split }
          utterances.sort { $0.frames != $1.frames ? $0.frames < $1.frames : utf8Precedes($0.id, $1.id) }
          return (split, utterances)
        }, partition: partition, recipe: recipe, bins: featureParameters.bins)
    }
    planned = []
    logger.info(
      "planned \(splitNames.reduce(0) { $0 + (order.secondsBySplit[$1]?.count ?? 0) }) utterances (texts, headers) at \(elapsed(since: started))")
    let splitUtterances = order.splitUtterances
    let plannedShards = order.plannedShards
    let ranges = order.ranges
    if options.dryRun {
      report.preflight = try preflight(
        splitUtterances, featureParameters: featureParameters, vocabulary: vocabulary, missingSplits: listing.missingSplits,
        started: started)
      return report
    }
    try outputReady.value()
    let stream = ShardStream(
      recipe: recipe, pool: pool, featurizers: featurizersInFlight, augmenter: augmenter, journal: journal,
      journalDirectory: journalDirectory, progress: options.progress, cancellation: options.cancellation, logger: logger,
      reject: { [self] in reject($0) }, lastShardClosed: { [self] in if partition == nil { startSideFiles() } })
    // A journal write still in flight when the run throws lands before the caller goes on.
    defer { stream.settleJournalWrite() }
    try checkFreeSpace(plannedShards: plannedShards, ranges: ranges)
    let rejectionsBeforeWriting = rejections.count
    let shardsBySplit = try stream.write(
      splitUtterances, bins: featureParameters.bins, plannedShards: plannedShards, ranges: ranges,
      firstPositions: order.firstPositions)
    if let partition, let part {
      let manifest = PartManifest(
        index: partition.index, count: partition.count, identity: identity, augmenting: augmenting, recipe: recipe,
        recipeYAML: try recipe.yaml(), features: featureParameters, vocabulary: vocabulary, splits: splitUtterances.map(\.0),
        missingSplits: listing.missingSplits, inputs: inputRoots(), noiseFiles: report.noiseFiles,
        planRejections: partition.index == 0 ? Array(rejections.prefix(rejectionsBeforeWriting)) : [],
        rejections: Array(rejections.dropFirst(rejectionsBeforeWriting)),
        shards: shardsBySplit.mapValues { $0.map(PartShard.init) },
        planDigest: planFile?.digest,
        shardStamps: Dictionary(
          uniqueKeysWithValues: shardsBySplit.values.joined().map { shard in
            let stamp = StoredPlan.FileStamp(path: output + "/" + shard.file)
            return (shard.file, [stamp?.bytes ?? -1, stamp?.modifiedNanoseconds ?? -1])
          }))
      try part.finish(with: manifest)
      stream.settleJournalWrite()
      try? FileManager.default.removeItem(atPath: part.path + "/" + RunJournal.fileName)
      report.partition = partition
      report.planRead = planFile.map { _ in planPath }
      for split in splitNames {
        let seconds = order.secondsBySplit[split] ?? []
        report.plannedSeconds += seconds.reduce(0, +)
        if let range = ranges?[split] { report.partitionShareSeconds += seconds[range].reduce(0, +) }
      }
      report.addSplits(
        splitUtterances.map { split, _ in
          makeSplitInfo(
            name: split, shards: shardsBySplit[split] ?? [], isTraining: recipe.corpus.trainingSplits.contains(split))
        })
      // A part counts what it rejected itself; what listing and planning rejected is the
      // same for every part, counted once by merge.
      report.countRejections(Array(rejections.dropFirst(rejectionsBeforeWriting)))
      report.planningRejections = rejectionsBeforeWriting
      finish(&report)
      return report
    }
    if sideFiles == nil { startSideFiles() }
    try sideFiles?.value()
    logger.info("wrote all splits at \(elapsed(since: started))")
    let (manifest, splitInfos) = try assembleManifest(
      features: featureParameters, vocabulary: vocabulary, splits: splitUtterances.map(\.0), shardsBySplit: shardsBySplit,
      missingSplits: listing.missingSplits, inputs: inputRoots())
    report.addSplits(splitInfos)
    report.countRejections(rejections)
    try atomicWrite(encodeManifest(manifest), to: output + "/manifest.json")
    // The dataset is complete: the journal's last save is moot, whether it failed or not.
    stream.settleJournalWrite()
    try? FileManager.default.removeItem(atPath: output + "/" + RunJournal.fileName)
    finish(&report)
    return report

    /// The run's time, memory and work done.
    func finish(_ report: inout PrepareReport) {
      report.wallSeconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
      report.peakMemoryBytes = peakResidentBytes()
      report.cpuSeconds = processCPUSeconds() - cpuAtStart
      report.processedAudioSeconds = stream.processedAudioSeconds
      report.resumedRecords = stream.resumedRecords
    }
  }

  /// The manifest of the dataset whose splits (in order) hold `shardsBySplit`, with this
  /// run's rejections: split totals, the training splits' statistics merged in shard order
  /// (or those of `augment.statisticsFrom`), the rejection summary. Shared by a whole run
  /// and by `merge`, so that both write the same bytes.
  func assembleManifest(
    features: FeatureParameters, vocabulary: Vocabulary, splits: [String], shardsBySplit: [String: [ShardInfo]],
    missingSplits: [String], inputs: InputRoots
  ) throws -> (DatasetManifest, [SplitInfo]) {
    let presentTraining = recipe.corpus.trainingSplits.filter { !missingSplits.contains($0) }
    let splitInfos = splits.map { split in
      makeSplitInfo(name: split, shards: shardsBySplit[split] ?? [], isTraining: recipe.corpus.trainingSplits.contains(split))
    }
    var statistics = FeatureStatistics(bins: features.bins)
    var statisticsSplits = presentTraining
    for split in splitInfos where presentTraining.contains(split.name) {
      for shard in split.shards { statistics.merge(shard.statistics) }
    }
    if augmenting, let source = recipe.augment?.statisticsFrom {
      (statistics, statisticsSplits) = try borrowedStatistics(from: source, features: features)
    }
    var byReason: [String: Int] = [:]
    for rejection in rejections { byReason[rejection.reason.rawValue, default: 0] += 1 }
    let manifest = DatasetManifest(
      toolVersion: toolVersion, seed: recipe.seed, features: features,
      normalization: NormalizationInfo(
        mode: recipe.normalization.mode, statisticsSplits: statisticsSplits, statistics: statistics,
        stdFloor: recipe.normalization.stdFloor),
      vocabulary: vocabulary, splits: splitInfos,
      rejected: RejectionSummary(count: rejections.count, byReason: byReason, file: "rejected.jsonl"),
      recipe: identity, inputs: inputs)
    return (manifest, splitInfos)
  }

  /// The folders this run reads, which its output must not be or contain.
  func inputPaths() -> [String] {
    var inputs = [recipe.corpus.root]
    if augmenting, let config = recipe.augment {
      inputs += [config.noise.bank, config.reverb.impulseResponses, config.statisticsFrom].compactMap { $0 }
    }
    return inputs
  }

  /// The normalization statistics of another (clean) dataset made with the same features.
  /// - Throws: `ConfigurationError` when it cannot be read or its features differ.
  func borrowedStatistics(from directory: String, features: FeatureParameters) throws -> (FeatureStatistics, [String]) {
    let dataset: Dataset
    do { dataset = try Dataset(directory: directory) } catch {
      throw ConfigurationError("augment.statisticsFrom: \(error)")
    }
    var theirs = dataset.manifest.features
    theirs.dtype = features.dtype
    guard theirs == features else {
      let encoder = JSONEncoder()
      let differences =
        (try? differingKeys(
          JSONDecoder().decode(JSONValue.self, from: encoder.encode(theirs)),
          JSONDecoder().decode(JSONValue.self, from: encoder.encode(features)))) ?? []
      throw ConfigurationError(
        "augment.statisticsFrom: \(directory) was made with different feature settings (differs in: "
          + differences.map { "features." + $0 }.joined(separator: ", ") + ")")
    }
    let normalization = dataset.manifest.normalization
    return (normalization.statistics, normalization.statisticsSplits.map { "\(directory):\($0)" })
  }

  /// The run's input folders as absolute paths (`DatasetManifest.inputs`).
  func inputRoots() -> InputRoots {
    let augment = augmenting ? recipe.augment : nil
    return InputRoots(
      corpusRoot: OutputFolder.resolve(recipe.corpus.root),
      noiseBank: augment?.noise.bank.map(OutputFolder.resolve),
      impulseResponses: augment.flatMap { $0.reverb.probability > 0 ? $0.reverb.impulseResponses : nil }.map(OutputFolder.resolve),
      statisticsFrom: augment?.statisticsFrom.map(OutputFolder.resolve))
  }

  func makeFeatureParameters() -> FeatureParameters {
    recipe.features.parameters(
      sampleRateHertz: recipe.audio.sampleRateHertz, channelRule: recipe.audio.channelRule,
      resampleQuality: recipe.audio.resampleQuality, dtype: recipe.shards.dtype)
  }

  func makeSplitInfo(name: String, shards: [ShardInfo], isTraining: Bool) -> SplitInfo {
    let records = shards.reduce(0) { $0 + $1.records }
    return SplitInfo(
      name: name, isTraining: isTraining, records: records, frames: shards.reduce(0) { $0 + $1.frames },
      audioSeconds: Double(shards.reduce(0) { $0 + $1.samples }) / Double(recipe.audio.sampleRateHertz),
      minFrames: shards.map(\.minFrames).min() ?? 0, maxFrames: shards.map(\.maxFrames).max() ?? 0, shards: shards)
  }

  /// Starts writing `rejected.jsonl` (every rejection is known by now) and the resolved
  /// `recipe.yaml`, in the background: called when the last shard is closed, so that
  /// they are written while its digest is computed (or after `write` when a resumed run
  /// had nothing left to write).
  func startSideFiles() {
    sideFiles = Later(waitingWork: { [output, recipe, rejections] in
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
      var text = ""
      for rejection in rejections {
        text += String(decoding: try encoder.encode(rejection), as: UTF8.self) + "\n"
      }
      try atomicWrite(text, to: output + "/rejected.jsonl")
      try atomicWrite(recipe.yaml(), to: output + "/recipe.yaml")
    })
  }

  /// `manifest.json`'s text: `JSONEncoder`'s pretty-printed, sorted form, written by
  /// `SortedJSONEncoder` (the same bytes, faster for the per-shard statistics).
  func encodeManifest(_ manifest: DatasetManifest) throws -> String {
    String(decoding: try SortedJSONEncoder(prettyPrinted: true).encode(manifest), as: UTF8.self) + "\n"
  }
}

/// Seconds since `start`, formatted for logs.
func elapsed(since start: DispatchTime) -> String {
  String(format: "%.3f s", Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9)
}

/// `atomicWrite(text(), to: path)` started now on a thread of its own (`Later(waitingWork:)`).
func backgroundWrite(to path: String, _ text: @escaping @Sendable () throws -> String) -> Later<Void> {
  Later(waitingWork: { try atomicWrite(text(), to: path) })
}

/// Writes `text` to `path` durably (`AtomicFile.write`): readers see the old file or the
/// whole new one, also after a crash.
/// - Throws: `ConfigurationError` naming the file and the system error.
func atomicWrite(_ text: String, to path: String) throws {
  try AtomicFile.write(Array(text.utf8), to: path)
}

/// The info JSON object stored with a record (docs/FORMAT.md §3.2).
struct RecordInfo: Encodable {
  var speaker: String?
  /// Provenance of an augmented copy.
  var augmentation: AugmentationPlan?

  /// Compact JSON with sorted keys, or "" when there is nothing to say.
  var json: String {
    guard speaker != nil || augmentation != nil else { return "" }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
  }
}

/// The settings that differ between two recipe identities, as dotted paths with the old
/// and new values (`features.windowSeconds 0.02 → 0.025`), for "what changed" messages.
func differingKeys(_ old: JSONValue, _ new: JSONValue, path: String = "") -> [String] {
  if case .object(let x) = old, case .object(let y) = new {
    return Set(x.keys).union(y.keys).sorted().flatMap { key -> [String] in
      let child = path.isEmpty ? key : path + "." + key
      return differingKeys(x[key] ?? .null, y[key] ?? .null, path: child)
    }
  }
  guard old != new else { return [] }
  // The whole augment section on one side only: one is an augment run, the other a prepare.
  if path == "augment", old == .null || new == .null {
    return ["augment: " + (old == .null ? "a prepare dataset → an augment one" : "an augment dataset → a prepare one")]
  }
  func show(_ value: JSONValue) -> String {
    switch value {
    case .null: return "(unset)"
    case .bool(let b): return "\(b)"
    case .number(let n): return n == n.rounded() && abs(n) < 1e15 ? String(Int(n)) : "\(n)"
    case .string(let s): return s
    case .array, .object:
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
      return String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self)
    }
  }
  return ["\(path.isEmpty ? "recipe" : path) \(show(old)) → \(show(new))"]
}
