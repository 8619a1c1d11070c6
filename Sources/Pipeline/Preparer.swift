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
  /// Metadata stored with the record (speaker).
  var metadata: [String: String]
  /// What augmentation does to this copy (nil: written as decoded).
  var augmentation: AugmentationPlan?
  /// The record id (the source id, or `sp<factor>-<id>` for speed copies).
  var id: String
}

/// Prepares a corpus into a length-sorted LMDB dataset (the `ds2-data prepare` command).
///
/// Stages: list the corpus (paths and transcripts only) → check and encode transcripts →
/// probe audio headers in parallel (exact lengths without decoding) → per split, sort by
/// (frames, id) → decode, resample, featurize on `threads` workers, written in that order
/// into size-capped shards by one writer → merge per-shard statistics → write
/// `rejected.jsonl`, `recipe.yaml` and, last and atomically, `manifest.json`.
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

final class Preparer {
  let recipe: Recipe
  let options: PrepareOptions
  let output: String
  let threads: Int
  var rejections: [ItemError] = []
  var journal: RunJournal
  /// Audio seconds featurized by this run; records found already written.
  var processedAudioSeconds = 0.0
  var resumedRecords = 0
  var logger: Logger { options.logger }

  /// The recipe settings that determine this run's output (see `Recipe.contentIdentity`).
  let identity: JSONValue
  let augmenting: Bool
  /// Set when augmenting: indexes noise and impulse responses, draws and applies plans.
  var augmenter: Augmenter?

  init(recipe: Recipe, options: PrepareOptions, augmenting: Bool) {
    self.recipe = recipe
    self.options = options
    self.output = recipe.output
    self.threads = recipe.effectiveThreads
    self.augmenting = augmenting
    self.identity = recipe.contentIdentity(augmenting: augmenting)
    self.journal = RunJournal(recipe: identity)
  }

  func reject(_ error: ItemError) {
    logger.warning("rejected \(error)")
    rejections.append(error)
  }

  func run() throws -> PrepareReport {
    let started = DispatchTime.now()
    let cpuAtStart = processCPUSeconds()
    try recipe.validate()
    var report = PrepareReport(outputDirectory: output)
    report.threads = threads
    if augmenting { report.verb = "augmented" }
    if try existingDatasetMatches() {
      report.alreadyComplete = true
      return report
    }
    let resuming = try openJournal()

    // 1. List.
    let reader = try makeCorpusReader(recipe.corpus)
    let listing = try reader.list(splits: recipe.corpus.splits)
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
    listing.rejections.forEach(reject)

    // 2. Texts, 3. headers.
    logger.info("listed \(listing.sources.count) utterances in \(elapsed(since: started))")
    let vocabulary = try makeVocabulary(for: recipe.corpus, listing: listing)
    if augmenting, let config = recipe.augment {
      let augmenter = try Augmenter(config: config, sampleRateHertz: recipe.audio.sampleRateHertz, seed: recipe.seed)
      if let bank = augmenter.bank {
        logger.notice("noise bank \(bank.root): \(bank.files.count) usable file(s), \(bank.rejections.count) rejected")
        report.noiseFiles = bank.files.count
        bank.rejections.forEach(reject)
      }
      self.augmenter = augmenter
    }
    let planned = try plan(listing.sources, vocabulary: vocabulary)
    logger.info("planned \(planned.count) utterances (texts, headers) at \(elapsed(since: started))")

    // 4. Featurize and write each split in length order.
    let featureParameters = try makeFeatureParameters()
    var splitInfos: [SplitInfo] = []
    let splitUtterances = recipe.corpus.splits.filter { !listing.missingSplits.contains($0) }.map { split in
      (split, planned.filter { $0.source.split == split }.sorted {
        $0.frames != $1.frames ? $0.frames < $1.frames : $0.id.utf8.lexicographicallyPrecedes($1.id.utf8)
      })
    }
    if !resuming {
      try wipeOutput()
      try journal.save(directory: output)
    }
    let shardsBySplit = try write(splitUtterances, bins: featureParameters.bins)
    logger.info("wrote all splits at \(elapsed(since: started))")
    for (split, _) in splitUtterances {
      let shards = shardsBySplit[split] ?? []
      let info = makeSplitInfo(name: split, shards: shards, isTraining: recipe.corpus.trainingSplits.contains(split))
      splitInfos.append(info)
      report.splits.append(
        .init(
          name: split, records: info.records, audioSeconds: info.audioSeconds, shards: shards.count,
          bytes: shards.reduce(0) { $0 + $1.bytes }))
    }

    // 5. Statistics, side files, manifest.
    var statistics = FeatureStatistics(bins: featureParameters.bins)
    var statisticsSplits = presentTraining
    for split in splitInfos where presentTraining.contains(split.name) {
      for shard in split.shards { statistics.merge(shard.statistics) }
    }
    if augmenting, let source = recipe.augment?.statisticsFrom {
      (statistics, statisticsSplits) = try borrowedStatistics(from: source, features: featureParameters)
    }
    for rejection in rejections { report.rejectionsByReason[rejection.reason, default: 0] += 1 }
    try writeRejections()
    let manifest = DatasetManifest(
      toolVersion: toolVersion, seed: recipe.seed, features: featureParameters,
      normalization: NormalizationInfo(
        mode: recipe.normalization.mode, statisticsSplits: statisticsSplits, statistics: statistics,
        stdFloor: recipe.normalization.stdFloor),
      vocabulary: vocabulary, splits: splitInfos,
      rejected: RejectionSummary(
        count: rejections.count,
        byReason: Dictionary(uniqueKeysWithValues: report.rejectionsByReason.map { ($0.key.rawValue, $0.value) }),
        file: "rejected.jsonl"),
      recipe: identity)
    try atomicWrite(recipe.yaml(), to: output + "/recipe.yaml")
    try atomicWrite(encodeManifest(manifest), to: output + "/manifest.json")
    try? FileManager.default.removeItem(atPath: output + "/" + RunJournal.fileName)

    report.wallSeconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
    report.peakMemoryBytes = peakResidentBytes()
    report.cpuSeconds = processCPUSeconds() - cpuAtStart
    report.processedAudioSeconds = processedAudioSeconds
    report.resumedRecords = resumedRecords
    return report
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
      throw ConfigurationError("augment.statisticsFrom: \(directory) was made with different feature settings")
    }
    let normalization = dataset.manifest.normalization
    return (normalization.statistics, normalization.statisticsSplits.map { "\(directory):\($0)" })
  }

  // MARK: Output directory

  /// True when `output` already holds the dataset of this recipe. Throws when it holds
  /// another one (unless forced, in which case the old dataset is removed).
  func existingDatasetMatches() throws -> Bool {
    let manifestPath = output + "/manifest.json"
    let fileManager = FileManager.default
    if let data = fileManager.contents(atPath: manifestPath) {
      if let existing = try? JSONDecoder().decode(DatasetManifest.self, from: data),
        existing.recipe == identity, !options.force
      {
        return true
      }
      if !options.force {
        let existing = try? JSONDecoder().decode(DatasetManifest.self, from: data)
        let changed = existing.map { differingKeys($0.recipe, identity) } ?? ["manifest unreadable"]
        throw ConfigurationError(
          "\(output) already holds a dataset made from a different recipe (differs in: "
            + "\(changed.joined(separator: ", "))); rerun with --force to replace it, or choose another --output")
      }
      try fileManager.removeItem(atPath: manifestPath)
      try wipeOutput()
    }
    return false
  }

  /// Returns true to resume the journaled run of this recipe, false to start a new one
  /// (the caller wipes the output just before writing); refuses to mix with an
  /// unfinished run of another recipe unless forced.
  func openJournal() throws -> Bool {
    if let existing = RunJournal.load(directory: output) {
      if existing.recipe == journal.recipe && !options.force {
        journal = existing
        let shards = existing.splits.values.reduce(0) { $0 + $1.shards.count }
        let records = existing.splits.values.reduce(0) { $0 + $1.shards.reduce(0) { $0 + $1.records } }
        logger.notice("resuming \(output): \(shards) shard(s), \(records) record(s) already written")
        return true
      }
      if !options.force {
        throw ConfigurationError(
          "\(output) holds an unfinished run of a different recipe (differs in: "
            + "\(differingKeys(existing.recipe, journal.recipe).joined(separator: ", "))); rerun that recipe to "
            + "finish it, or use --force to discard it")
      }
    }
    return false
  }

  /// Removes what ds2-data writes in `output` (never other files).
  func wipeOutput() throws {
    let fileManager = FileManager.default
    for name in ["manifest.json", "recipe.yaml", "rejected.jsonl", RunJournal.fileName, "shards"] {
      let path = output + "/" + name
      if fileManager.fileExists(atPath: path) { try fileManager.removeItem(atPath: path) }
    }
    do {
      try fileManager.createDirectory(atPath: output + "/shards", withIntermediateDirectories: true)
    } catch {
      throw ConfigurationError("cannot create output directory \(output): \(error.localizedDescription)")
    }
  }

  func makeFeatureParameters() throws -> FeatureParameters {
    let rate = recipe.audio.sampleRateHertz
    let f = recipe.features
    return FeatureParameters(
      sampleRateHertz: rate, windowSeconds: f.windowSeconds, hopSeconds: f.hopSeconds,
      windowSamples: f.windowSamples(sampleRateHertz: rate), hopSamples: f.hopSamples(sampleRateHertz: rate),
      fftSize: f.fftLength(sampleRateHertz: rate), bins: f.bins(sampleRateHertz: rate), window: f.window.rawValue,
      epsilon: f.epsilon, loudnessTargetDecibels: f.loudnessTargetDecibels, dtype: recipe.shards.dtype)
  }

  // MARK: Planning

  /// Encodes transcripts, probes headers, applies filters; returns what will be featurized.
  func plan(_ sources: [UtteranceSource], vocabulary: Vocabulary) throws -> [PlannedUtterance] {
    var seen: [String: Set<String>] = [:]
    var candidates: [(UtteranceSource, [Int32])] = []
    for source in sources {
      let file = source.transcriptPath ?? source.audioPath
      if seen[source.split, default: []].contains(source.id) {
        reject(ItemError(.duplicateId, file: file, line: source.transcriptLine, utteranceId: source.id,
          split: source.split, message: "utterance id appears twice in split \(source.split)"))
        continue
      }
      seen[source.split, default: []].insert(source.id)
      guard source.id.utf8.count <= RecordLayout.maxIdBytes else {
        reject(ItemError(.malformedTranscript, file: file, line: source.transcriptLine, utteranceId: source.id,
          split: source.split, message: "utterance id longer than \(RecordLayout.maxIdBytes) bytes"))
        continue
      }
      guard !source.transcript.isEmpty else {
        reject(ItemError(.emptyTranscript, file: file, line: source.transcriptLine, utteranceId: source.id,
          split: source.split, message: "transcript is empty after normalization"))
        continue
      }
      do {
        candidates.append((source, try vocabulary.encode(source.transcript)))
      } catch let error as Vocabulary.OutOfVocabulary {
        reject(ItemError(.outOfVocabulary, file: file, line: source.transcriptLine, utteranceId: source.id,
          split: source.split, message: "\(error) in \"\(source.transcript)\""))
      }
    }

    let rate = recipe.audio.sampleRateHertz
    let features = recipe.features
    let filters = recipe.filters
    let progress = PhaseProgress(sink: options.progress, phase: "probe", itemsTotal: candidates.count, audioSecondsTotal: 0)
    var planned: [PlannedUtterance] = []
    planned.reserveCapacity(candidates.count)
    try orderedParallelMap(
      count: candidates.count, threads: threads, window: 256,
      produce: { index, _ -> Result<PlannedUtterance, ItemError> in
        let (source, labels) = candidates[index]
        do {
          let info = try AudioDecoder.probe(path: source.audioPath)
          let segment = try AudioDecoder.segment(
            of: info, path: source.audioPath, startSeconds: source.startSeconds, durationSeconds: source.durationSeconds)
          let seconds = Double(segment.frames) / Double(info.sampleRateHertz)
          func fail(_ reason: RejectionReason, _ message: String) -> Result<PlannedUtterance, ItemError> {
            .failure(ItemError(reason, file: source.audioPath, utteranceId: source.id, split: source.split, message: message))
          }
          if segment.frames == 0 { return fail(.emptyAudio, "no samples (\(info.formatName))") }
          if seconds < filters.minDurationSeconds {
            return fail(.tooShort, String(format: "%.3f s is below filters.minDurationSeconds %.3f", seconds, filters.minDurationSeconds))
          }
          if let maximum = filters.maxDurationSeconds, seconds > maximum {
            return fail(.tooLong, String(format: "%.3f s is above filters.maxDurationSeconds %.3f", seconds, maximum))
          }
          let samples = Resampler.outputCount(inputCount: segment.frames, sourceHertz: info.sampleRateHertz, targetHertz: rate)
          let frames = features.frameCount(sampleCount: samples, sampleRateHertz: rate)
          if frames == 0 {
            return fail(.tooShort, "\(samples) samples at \(rate) Hz is shorter than one \(features.windowSeconds) s window")
          }
          var metadata: [String: String] = [:]
          if let speaker = source.speaker { metadata["speaker"] = speaker }
          return .success(
            PlannedUtterance(
              source: source, labels: labels, samples: samples, frames: frames, metadata: metadata, augmentation: nil,
              id: source.id))
        } catch var error as ItemError {
          error.utteranceId = source.id
          error.split = source.split
          return .failure(error)
        } catch {
          return .failure(ItemError(.unreadableAudio, file: source.audioPath, utteranceId: source.id, split: source.split,
            message: "\(error)"))
        }
      },
      consume: { _, result in
        try options.cancellation.check(output: output)
        switch result {
        case .success(let utterance): planned.append(utterance)
        case .failure(let error): reject(error)
        }
        progress.advance(audioSeconds: 0)
      })
    progress.finish()
    return augmenter.map { expand(planned, with: $0) } ?? planned
  }

  /// Replaces each utterance of an augmented split by one copy per speed factor, each
  /// with its drawn plan; copies that get too short for one window are rejected.
  func expand(_ planned: [PlannedUtterance], with augmenter: Augmenter) -> [PlannedUtterance] {
    let config = augmenter.config
    let augmented = Set(config.splits ?? recipe.corpus.trainingSplits)
    let rate = recipe.audio.sampleRateHertz
    var expanded: [PlannedUtterance] = []
    for utterance in planned {
      guard augmented.contains(utterance.source.split) else {
        expanded.append(utterance)
        continue
      }
      for (copy, factor) in config.speedFactors.enumerated() {
        var item = utterance
        item.id = AugmentConfig.copyId(utterance.source.id, factor: factor)
        item.samples = augmenter.outputCount(samples: utterance.samples, factor: factor)
        item.frames = recipe.features.frameCount(sampleCount: item.samples, sampleRateHertz: rate)
        guard item.frames > 0 else {
          reject(ItemError(.tooShort, file: utterance.source.audioPath, utteranceId: item.id, split: utterance.source.split,
            message: "speed \(factor) leaves \(item.samples) samples, less than one window"))
          continue
        }
        item.augmentation = augmenter.plan(source: utterance.source.id, copy: copy, factor: factor, samples: item.samples)
        expanded.append(item)
      }
    }
    return expanded
  }

  // MARK: Writing

  /// One utterance to featurize in the single ordered stream over all splits.
  struct WorkItem {
    var split: String
    /// Index of the utterance in its split's length order.
    var position: Int
    var utterance: PlannedUtterance
  }

  /// Featurizes and writes every split's utterances (each split already in length order)
  /// as one ordered stream, so that the workers never drain between splits; resumes
  /// after the shards the journal lists. Returns each split's shards.
  func write(_ splits: [(String, [PlannedUtterance])], bins: Int) throws -> [String: [ShardInfo]] {
    // Restore journaled progress; collect what is left to do.
    var items: [WorkItem] = []
    var rejectionsBySplit: [String: [(position: Int, error: ItemError)]] = [:]
    var countBySplit: [String: Int] = [:]
    for (split, utterances) in splits {
      countBySplit[split] = utterances.count
      var progress = journal.splits[split] ?? RunJournal.SplitProgress()
      if !journaledShardsExist(progress.shards) {
        logger.warning("shards of \(split) listed in \(RunJournal.fileName) are missing or changed; rewriting the split")
        progress = RunJournal.SplitProgress()
      }
      journal.splits[split] = progress
      progress.rejections.forEach(reject)
      rejectionsBySplit[split] = progress.rejections.map { (-1, $0) }
      resumedRecords += progress.shards.reduce(0) { $0 + $1.records }
      if progress.finished { continue }
      for position in progress.consumed..<utterances.count {
        items.append(WorkItem(split: split, position: position, utterance: utterances[position]))
      }
    }

    let finisher = ShardFinisher()
    func journalCompletions() throws {
      let completions = try finisher.takeCompletions()
      guard !completions.isEmpty else { return }
      for completion in completions {
        var progress = journal.splits[completion.split]!
        progress.shards.append(completion.shard)
        progress.consumed = completion.position
        progress.rejections = rejectionsBySplit[completion.split, default: []].filter { $0.position < completion.position }
          .map(\.error)
        journal.splits[completion.split] = progress
      }
      try journal.save(directory: output)
    }

    let rate = recipe.audio.sampleRateHertz
    let extractors = try (0..<threads).map { _ in try SpectrogramExtractor(config: recipe.features, sampleRateHertz: rate) }
    let scratch = (0..<threads).map { _ in Augmenter.Scratch() }
    let augmenter = self.augmenter
    let audio = recipe.audio
    let loudness = recipe.features.loudnessTargetDecibels
    let dtype = recipe.shards.dtype
    let cancellation = options.cancellation
    let totalSeconds = items.reduce(0.0) { $0 + Double($1.utterance.samples) / Double(rate) }
    let phase = PhaseProgress(sink: options.progress, phase: "featurize", itemsTotal: items.count, audioSecondsTotal: totalSeconds)
    var writer: SplitWriter?
    func closeWriter() throws {
      guard let current = writer else { return }
      current.position = countBySplit[current.split]!
      try current.finish()
      writer = nil
    }
    do {
      try orderedParallelMap(
        count: items.count, threads: threads, window: 4 * threads + 4,
        produce: { index, worker -> Result<EncodedRecord, ItemError> in
          let utterance = items[index].utterance
          let source = utterance.source
          if cancellation.signal != nil {
            return .failure(ItemError(.unreadableAudio, file: source.audioPath, message: "cancelled"))
          }
          do {
            var waveform = try AudioDecoder.decode(
              path: source.audioPath, channel: source.channel, rule: audio.channelRule, startSeconds: source.startSeconds,
              durationSeconds: source.durationSeconds)
            waveform = try Resampler.resample(waveform, to: rate, quality: audio.resampleQuality, file: source.audioPath)
            var info = RecordInfo(speaker: utterance.metadata["speaker"], augmentation: nil)
            if let plan = utterance.augmentation, let augmenter {
              (waveform, info.augmentation) = try augmenter.apply(plan, to: waveform, scratch: scratch[worker], file: source.audioPath)
            }
            if let loudness {
              waveform = try LoudnessNormalizer.normalize(waveform, targetDecibels: loudness, file: source.audioPath)
            }
            precondition(waveform.samples.count == utterance.samples, "decoded length differs from the planned length")
            var features = extractors[worker].compute(waveform.samples).values
            return .success(
              EncodedRecord(
                id: utterance.id, transcript: source.transcript, labels: utterance.labels, sampleCount: utterance.samples,
                frames: utterance.frames, bins: extractors[worker].bins, features: &features, dtype: dtype,
                infoJSON: info.json))
          } catch var error as ItemError {
            error.utteranceId = utterance.id
            error.split = source.split
            return .failure(error)
          } catch {
            return .failure(
              ItemError(.unreadableAudio, file: source.audioPath, utteranceId: utterance.id, split: source.split,
                message: "\(error)"))
          }
        },
        consume: { index, result in
          try cancellation.check(output: output)
          let item = items[index]
          if writer?.split != item.split {
            try closeWriter()
            writer = try SplitWriter(
              directory: output, split: item.split, bins: bins, maxShardBytes: recipe.shards.maxShardBytes,
              firstShardIndex: journal.splits[item.split]!.shards.count, finisher: finisher)
          }
          writer!.position = item.position
          switch result {
          case .success(let record): try writer!.append(record)
          case .failure(let error):
            reject(error)
            rejectionsBySplit[item.split, default: []].append((item.position, error))
          }
          try journalCompletions()
          let seconds = Double(item.utterance.samples) / Double(rate)
          processedAudioSeconds += seconds
          phase.advance(audioSeconds: seconds)
        })
      try closeWriter()
    } catch {
      // Keep what is complete: let handed-over shards finish and journal them.
      writer?.abandon()
      finisher.waitUntilIdle()
      try? journalCompletions()
      throw error
    }
    finisher.waitUntilIdle()
    try journalCompletions()
    phase.finish()
    var shards: [String: [ShardInfo]] = [:]
    for (split, utterances) in splits {
      var progress = journal.splits[split]!
      progress.consumed = utterances.count
      progress.rejections = rejectionsBySplit[split, default: []].map(\.error)
      progress.finished = true
      journal.splits[split] = progress
      shards[split] = progress.shards
    }
    try journal.save(directory: output)
    return shards
  }

  /// True when every journaled shard file exists with the journaled size.
  func journaledShardsExist(_ shards: [ShardInfo]) -> Bool {
    shards.allSatisfy { shard in
      let attributes = try? FileManager.default.attributesOfItem(atPath: output + "/" + shard.file)
      return (attributes?[.size] as? NSNumber)?.intValue == shard.bytes
    }
  }

  func makeSplitInfo(name: String, shards: [ShardInfo], isTraining: Bool) -> SplitInfo {
    let records = shards.reduce(0) { $0 + $1.records }
    return SplitInfo(
      name: name, isTraining: isTraining, records: records, frames: shards.reduce(0) { $0 + $1.frames },
      audioSeconds: Double(shards.reduce(0) { $0 + $1.samples }) / Double(recipe.audio.sampleRateHertz),
      minFrames: shards.map(\.minFrames).min() ?? 0, maxFrames: shards.map(\.maxFrames).max() ?? 0, shards: shards)
  }

  func writeRejections() throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    var text = ""
    for rejection in rejections {
      text += String(decoding: try encoder.encode(rejection), as: UTF8.self) + "\n"
    }
    try atomicWrite(text, to: output + "/rejected.jsonl")
  }

  func encodeManifest(_ manifest: DatasetManifest) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(manifest), as: UTF8.self) + "\n"
  }
}

/// Seconds since `start`, formatted for logs.
func elapsed(since start: DispatchTime) -> String {
  String(format: "%.3f s", Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9)
}

/// Writes `text` to `path` through a temporary file and a rename, so readers see either
/// the old file or the whole new one.
func atomicWrite(_ text: String, to path: String) throws {
  let temporary = path + ".tmp"
  do {
    try Data(text.utf8).write(to: URL(fileURLWithPath: temporary))
    if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
    try FileManager.default.moveItem(atPath: temporary, toPath: path)
  } catch {
    throw ConfigurationError("cannot write \(path): \(error.localizedDescription)")
  }
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

/// Top-level keys whose values differ between two JSON objects.
func differingKeys(_ a: JSONValue, _ b: JSONValue) -> [String] {
  guard case .object(let x) = a, case .object(let y) = b else { return ["recipe"] }
  return Set(x.keys).union(y.keys).filter { x[$0] != y[$0] }.sorted()
}
