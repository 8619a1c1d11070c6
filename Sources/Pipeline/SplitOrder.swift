import DS2Core
import Shards

/// Each split's utterances in length order (frames, then id), the shards they fill and —
/// for a partition — the positions that are this task's.
struct SplitOrder {
  /// Per split, in recipe order: its utterances from position `firstPositions[split]`
  /// (0 when absent) on — every one, or, for a task ordering from a stored plan, its share.
  var splitUtterances: [(String, [PlannedUtterance])]
  var firstPositions: [String: Int] = [:]
  var plannedShards: [String: [PlannedShard]]
  /// The seconds (after resampling) of every position of each split.
  var secondsBySplit: [String: [Double]]
  /// The partition's positions in each split (nil: not partitioned).
  var ranges: [String: Range<Int>]?

  /// From every utterance of each split, already in length order.
  init(_ splits: [(String, [PlannedUtterance])], partition: Partition?, recipe: Recipe, bins: Int) {
    let rate = Double(recipe.audio.sampleRateHertz)
    let plannedShards = ShardStream.plannedShards(for: splits, bins: bins, recipe: recipe)
    let seconds = Dictionary(uniqueKeysWithValues: splits.map { split, utterances in
      (split, utterances.map { Double($0.samples) / rate })
    })
    splitUtterances = splits
    self.plannedShards = plannedShards
    secondsBySplit = seconds
    ranges = partition?.ranges(of: splits.map { split, _ in (split, plannedShards[split]!, seconds[split]!) })
  }

  /// From a stored plan, for one partition: keeps of every utterance (or augmented copy)
  /// only what ordering and shard planning need (id, frames, samples, record size, where
  /// it is in the plan), decodes whole only the partition's share, checks that share's
  /// audio files against the plan's stamps, then frees the plan's bytes. The same order,
  /// shards and share as `init(_:partition:recipe:bins:)` on every decoded (and expanded)
  /// utterance, in a fraction of the memory.
  /// - Parameter expand: an utterance's augmented copies (augment), deterministic per
  ///   utterance; called once per utterance with `reporting` true, then again for the
  ///   share's utterances with `reporting` false.
  /// - Throws: `ConfigurationError` for a damaged plan or an audio file changed since.
  init(
    plan: StoredPlan.File, splits: [String], partition: Partition, recipe: Recipe, bins: Int,
    expand: ((PlannedUtterance, _ reporting: Bool) -> [PlannedUtterance])? = nil
  ) throws {
    struct Entry {
      var id: String
      var frames: Int
      var samples: Int
      var valueBytes: Int
      var offset: Int
      /// Which of the utterance's copies (0 without augmentation).
      var copy: Int
    }
    let dtype = recipe.shards.dtype
    var entriesBySplit = Dictionary(uniqueKeysWithValues: splits.map { ($0, [Entry]()) })
    try plan.forEachUtterance { utterance, _, storedSizes, offset in
      for (copy, item) in (expand?(utterance, true) ?? [utterance]).enumerated() {
        guard entriesBySplit[item.source.split] != nil else { continue }
        // The plan step's size of this copy, when it stored one (encoding a copy's info to
        // measure it is most of the cost of ordering augmented copies).
        let stored = storedSizes?.first { $0.copy == item.augmentation?.copy }?.valueBytes
        entriesBySplit[item.source.split]!.append(
          Entry(
            id: item.id, frames: item.frames, samples: item.samples,
            valueBytes: stored ?? ShardStream.plannedValueBytes(item, bins: bins, dtype: dtype), offset: offset,
            copy: copy))
      }
    }
    let rate = Double(recipe.audio.sampleRateHertz)
    var plannedShards: [String: [PlannedShard]] = [:]
    var seconds: [String: [Double]] = [:]
    for split in splits {
      entriesBySplit[split]!.sort { $0.frames != $1.frames ? $0.frames < $1.frames : utf8Precedes($0.id, $1.id) }
      let entries = entriesBySplit[split]!
      plannedShards[split] = SplitWriter.planShards(
        valueSizes: entries.map(\.valueBytes), keySizes: entries.map { ShardStream.keyBytes($0.id) },
        maxShardBytes: recipe.shards.maxShardBytes)
      seconds[split] = entries.map { Double($0.samples) / rate }
    }
    let ranges = partition.ranges(of: splits.map { ($0, plannedShards[$0]!, seconds[$0]!) })
    var checked = Set<String>()
    splitUtterances = try splits.map { split in
      let share = try entriesBySplit[split]![ranges[split] ?? 0..<0].map { entry in
        let (utterance, stamp, _) = try plan.utterance(at: entry.offset)
        if checked.insert(utterance.source.audioPath).inserted {
          try StoredPlan.checkFile(utterance.source.audioPath, against: stamp, planPath: plan.path)
        }
        guard let expand else { return utterance }
        let copies = expand(utterance, false)
        guard entry.copy < copies.count, copies[entry.copy].id == entry.id else {
          throw StoredPlan.File.damaged(plan.path, "utterance \(utterance.id): its copies differ between two expansions")
        }
        // A copy drawn differently from the plan step's (another noise bank or impulse
        // responses since) would not fit the shards the plan laid out.
        guard ShardStream.plannedValueBytes(copies[entry.copy], bins: bins, dtype: dtype) == entry.valueBytes else {
          throw ConfigurationError(
            "\(copies[entry.copy].id): its augmentation differs from the one \(plan.path) planned (the noise bank, "
              + "impulse responses or recipe changed since the plan step); write the plan again into a new output")
        }
        return copies[entry.copy]
      }
      return (split, share)
    }
    plan.release()
    firstPositions = ranges.mapValues(\.lowerBound)
    self.plannedShards = plannedShards
    secondsBySplit = seconds
    self.ranges = ranges
  }
}
