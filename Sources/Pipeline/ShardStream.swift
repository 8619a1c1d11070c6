import Audio
import Augmentation
import Corpus
import DS2Core
import Features
import Foundation
import Logging
import Shards

/// The writing stage of `prepare`: featurizes the planned utterances of every split, in
/// length order, as one ordered stream on the pool's threads, writes them into size-capped
/// shards (`SplitWriter`, `ShardFinisher`) and keeps the resume journal: each completed
/// shard is journaled, and a run restarted with the same journal continues after the
/// shards it lists.
final class ShardStream {
  let recipe: Recipe
  let output: String
  let pool: WorkerPool
  /// One featurizer per pool thread, possibly still being made.
  let featurizers: Later<PerWorker<Featurizer>>
  let augmenter: Augmenter?
  let progress: ProgressSink?
  let cancellation: Cancellation
  let logger: Logger
  /// Told every item rejected while featurizing (and those a resumed journal lists), in order.
  let reject: (ItemError) -> Void
  /// Called once, when the last shard is closed: every rejection is known by then.
  let lastShardClosed: () -> Void
  /// The resume journal, as last saved or about to be.
  private(set) var journal: RunJournal
  /// Where the journal lives: the dataset folder, or a partition's folder.
  let journalDirectory: String
  /// The last journal write, in flight while the caller writes the manifest.
  private var pendingJournalWrite: Later<Void>?
  /// Audio seconds featurized by this run.
  private(set) var processedAudioSeconds = 0.0
  /// Records found already written (a resumed run).
  private(set) var resumedRecords = 0

  init(
    recipe: Recipe, pool: WorkerPool, featurizers: Later<PerWorker<Featurizer>>, augmenter: Augmenter?, journal: RunJournal,
    journalDirectory: String, progress: ProgressSink?, cancellation: Cancellation, logger: Logger, reject: @escaping (ItemError) -> Void,
    lastShardClosed: @escaping () -> Void
  ) {
    self.recipe = recipe
    self.output = recipe.output
    self.pool = pool
    self.featurizers = featurizers
    self.augmenter = augmenter
    self.journal = journal
    self.journalDirectory = journalDirectory
    self.progress = progress
    self.cancellation = cancellation
    self.logger = logger
    self.reject = reject
    self.lastShardClosed = lastShardClosed
  }

  /// Saves the journal, after the write still in flight (if any) has finished.
  /// - Throws: either write's error.
  func saveJournal() throws {
    if let pending = pendingJournalWrite {
      pendingJournalWrite = nil
      try pending.value()
    }
    try journal.save(directory: journalDirectory)
  }

  /// Waits for the journal write in flight, if any, ignoring its error (the dataset is
  /// complete, or the run already failed).
  func settleJournalWrite() {
    _ = try? pendingJournalWrite?.value()
    pendingJournalWrite = nil
  }

  /// What featurizing one utterance gave.
  enum Featurized: Sendable {
    case record(EncodedRecord)
    case rejected(ItemError)
    /// Not attempted: the run is being cancelled.
    case skipped
  }

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
  /// - Parameters:
  ///   - plannedShards: where each split's shards start (`ShardStream.plannedShards(for:bins:recipe:)`).
  ///   - ranges: the positions of each split to write (a partition's share); nil: all.
  ///   - firstPositions: the position of each split's first utterance given (0 when absent:
  ///     all are given); `ranges` must lie within what is given.
  func write(
    _ splits: [(String, [PlannedUtterance])], bins: Int, plannedShards: [String: [PlannedShard]],
    ranges: [String: Range<Int>]? = nil, firstPositions: [String: Int] = [:]
  ) throws -> [String: [ShardInfo]] {
    // Restore journaled progress; collect what is left to do.
    var items: [WorkItem] = []
    var rejectionsBySplit: [String: [(position: Int, error: ItemError)]] = [:]
    var countBySplit: [String: Int] = [:]
    for (split, utterances) in splits {
      let first = firstPositions[split] ?? 0
      let range = ranges?[split] ?? first..<(first + utterances.count)
      precondition(range.isEmpty || (range.lowerBound >= first && range.upperBound <= first + utterances.count), "positions given")
      countBySplit[split] = range.upperBound
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
      for position in max(progress.consumed, range.lowerBound)..<range.upperBound {
        items.append(WorkItem(split: split, position: position, utterance: utterances[position - first]))
      }
    }

    // Shard digests run on the map's threads, ahead of new items.
    let pool = self.pool
    let finisher = ShardFinisher(digestOn: { pool.submit($0) })
    /// Journals the completed shards (saved unless `save` is false), then throws the
    /// finisher's error, if any: shards completed before a failure are kept.
    func journalCompletions(save: Bool = true) throws {
      let (completions, failure) = finisher.takeCompletions()
      guard !completions.isEmpty else {
        if let failure { throw failure }
        return
      }
      for completion in completions {
        var progress = journal.splits[completion.split]!
        progress.shards.append(completion.shard)
        progress.consumed = completion.position
        progress.rejections = rejectionsBySplit[completion.split, default: []].filter { $0.position < completion.position }
          .map(\.error)
        journal.splits[completion.split] = progress
      }
      if save { try saveJournal() }
      if let failure { throw failure }
    }

    let rate = recipe.audio.sampleRateHertz
    let featurizers = try self.featurizers.value()
    let scratch = PerWorker(count: pool.threadCount) { _ in Augmenter.Scratch() }
    let augmenter = self.augmenter
    let dtype = recipe.shards.dtype
    let cancellation = self.cancellation
    let totalSeconds = items.reduce(0.0) { $0 + Double($1.utterance.samples) / Double(rate) }
    let phase = PhaseProgress(sink: progress, phase: "featurize", itemsTotal: items.count, audioSecondsTotal: totalSeconds)
    var writer: SplitWriter?
    func closeWriter() throws {
      guard let current = writer else { return }
      current.position = countBySplit[current.split]!
      try current.finish()
      writer = nil
    }
    do {
      try pool.orderedMap(
        count: items.count, window: window(for: items.map(\.utterance)),
        produce: { [items] index, worker -> Featurized in
          let utterance = items[index].utterance
          let source = utterance.source
          // Cancelled: stop making records; `consume` throws before it sees this.
          if cancellation.signal != nil { return .skipped }
          do {
            return .record(
              try makeRecord(
                utterance, featurizer: featurizers[worker], augmenter: augmenter, scratch: scratch[worker], dtype: dtype))
          } catch {
            return .rejected(audioFailure(error, source: source, utteranceId: utterance.id))
          }
        },
        consume: { index, result in
          try cancellation.check(output: output)
          let item = items[index]
          if writer?.split != item.split {
            try closeWriter()
            writer = try SplitWriter(
              directory: output, split: item.split, bins: bins, maxShardBytes: recipe.shards.maxShardBytes,
              plannedShards: plannedShards[item.split]!, finisher: finisher)
          }
          writer!.position = item.position
          switch result {
          case .record(let record): try writer!.append(record)
          case .rejected(let error):
            reject(error)
            rejectionsBySplit[item.split, default: []].append((item.position, error))
          case .skipped:
            preconditionFailure("an item is skipped only when the run is cancelled, which the check above throws for")
          }
          // The last shard is closed here, so that its digest also runs on the map's threads
          // (and the side files are written meanwhile).
          if index == items.count - 1 {
            try closeWriter()
            lastShardClosed()
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
    try journalCompletions(save: false)  // saved below, with every split finished
    phase.finish()
    var shards: [String: [ShardInfo]] = [:]
    for (split, utterances) in splits {
      var progress = journal.splits[split]!
      progress.consumed = ranges?[split]?.upperBound ?? (firstPositions[split] ?? 0) + utterances.count
      progress.rejections = rejectionsBySplit[split, default: []].map(\.error)
      progress.finished = true
      journal.splits[split] = progress
      shards[split] = progress.shards
    }
    // Only a crash before the manifest lands reads this save; the manifest is written
    // meanwhile (`run` waits for both).
    if let pending = pendingJournalWrite {
      pendingJournalWrite = nil
      try pending.value()
    }
    let snapshot = journal
    pendingJournalWrite = backgroundWrite(to: journalDirectory + "/" + RunJournal.fileName) { try snapshot.text() }
    return shards
  }

  /// Results in flight for the featurization map: enough that the other threads keep
  /// working for a while when the writing one stalls (an LMDB commit, a file created
  /// while the file system flushes a finished shard): as many of the longest record as fit
  /// in 64 MiB, at most 32 per thread, and never fewer than 4 per thread + 4 (which may
  /// exceed 64 MiB for very long utterances).
  func window(for utterances: [PlannedUtterance]) -> Int {
    let threads = pool.threadCount
    let bins = recipe.features.bins(sampleRateHertz: recipe.audio.sampleRateHertz)
    let largest = utterances.map(\.frames).max() ?? 1
    let fitting = (64 << 20) / max(1, recipe.shards.dtype.featureBlockBytes(frames: largest, bins: bins))
    return max(4 * threads + 4, min(fitting, 32 * threads))
  }

  /// Where each split's shards start and their estimated sizes (`SplitWriter.planShards`).
  static func plannedShards(for splits: [(String, [PlannedUtterance])], bins: Int, recipe: Recipe) -> [String: [PlannedShard]] {
    var planned: [String: [PlannedShard]] = [:]
    for (split, utterances) in splits {
      planned[split] = SplitWriter.planShards(
        valueSizes: utterances.map { plannedValueBytes($0, bins: bins, dtype: recipe.shards.dtype) },
        keySizes: utterances.map { keyBytes($0.id) }, maxShardBytes: recipe.shards.maxShardBytes)
    }
    return planned
  }

  /// The size of a record's key (`RecordLayout.key(frames:id:)`: frames, then the id).
  static func keyBytes(_ id: String) -> Int { 4 + id.utf8.count }

  /// The stored size of `utterance`'s record as planned (its info as drawn: the speaker and
  /// the augmentation plan).
  static func plannedValueBytes(_ utterance: PlannedUtterance, bins: Int, dtype: FeatureDType) -> Int {
    let info = RecordInfo(speaker: utterance.source.speaker, augmentation: utterance.augmentation)
    let infoBytes: Int
    if utterance.augmentation == nil, let speaker = info.speaker {
      infoBytes = #"{"speaker":""}"#.utf8.count + jsonEscapedLength(speaker)
    } else {
      infoBytes = info.json.utf8.count
    }
    return RecordLayout.valueSize(
      idBytes: utterance.id.utf8.count, transcriptBytes: utterance.source.transcript.utf8.count, infoBytes: infoBytes,
      labelCount: utterance.labels.count, frames: utterance.frames, bins: bins, dtype: dtype)
  }

  /// True when every journaled shard file exists with the journaled size.
  func journaledShardsExist(_ shards: [ShardInfo]) -> Bool {
    shards.allSatisfy { shard in
      let attributes = try? FileManager.default.attributesOfItem(atPath: output + "/" + shard.file)
      return (attributes?[.size] as? NSNumber)?.intValue == shard.bytes
    }
  }
}

/// UTF-8 bytes of `text` as a JSON string body (quotes, backslashes and control characters escaped).
/// Decodes, augments (as planned) and featurizes `utterance` into its encoded record.
/// - Throws: the audio layer's `ItemError`s, and `ItemError(.unreadableAudio)` when the
///   audio decodes to another length than its header promised.
func makeRecord(
  _ utterance: PlannedUtterance, featurizer: Featurizer, augmenter: Augmenter?, scratch: Augmenter.Scratch, dtype: FeatureDType
) throws -> EncodedRecord {
  let source = utterance.source
  var waveform = try featurizer.waveform(
    path: source.audioPath, contents: source.packed?.contents, channel: source.channel, startSeconds: source.startSeconds,
    durationSeconds: source.durationSeconds)
  var info = RecordInfo(speaker: utterance.source.speaker, augmentation: nil)
  if let plan = utterance.augmentation, let augmenter {
    (waveform, info.augmentation) = try augmenter.apply(plan, to: waveform, scratch: scratch, file: source.audioPath)
  }
  // The plan came from the header; a file changed since then (or a header that lies)
  // gives another length, which would move the record out of length order.
  guard waveform.samples.count == utterance.samples else {
    throw ItemError(
      .unreadableAudio, file: source.audioPath,
      message: "decoded to \(waveform.samples.count) samples at \(featurizer.parameters.sampleRateHertz) Hz; its header promised "
        + "\(utterance.samples) (changed during the run?)")
  }
  var features = try featurizer.features(of: waveform, file: source.audioPath).values
  return EncodedRecord(
    id: utterance.id, transcript: source.transcript, labels: utterance.labels, sampleCount: utterance.samples,
    frames: utterance.frames, bins: featurizer.bins, features: &features, dtype: dtype, infoJSON: info.json)
}

func jsonEscapedLength(_ text: String) -> Int {
  text.utf8.reduce(0) { length, byte in
    switch byte {
    case UInt8(ascii: "\""), UInt8(ascii: "\\"), 0x08, 0x0c, 0x0a, 0x0d, 0x09: return length + 2
    case 0..<0x20: return length + 6
    default: return length + 1
    }
  }
}
