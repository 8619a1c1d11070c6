import Audio
import Augmentation
import Corpus
import DS2Core
import Features
import Foundation
import Logging
import Shards

/// The first stage of `prepare` after listing: decides what will be featurized.
///
/// Checks ids, encodes transcripts, probes audio headers (exact lengths without decoding),
/// applies the duration filters; when augmenting, `expand` then turns each utterance of the
/// augmented splits into its speed copies with their drawn plans. Reads only headers; writes
/// nothing.
struct UtterancePlanner {
  let recipe: Recipe
  let vocabulary: Vocabulary
  let pool: WorkerPool
  let progress: ProgressSink?
  let cancellation: Cancellation

  /// What planning decided, in listing order.
  struct Plan {
    var utterances: [PlannedUtterance] = []
    /// Why the others were left out, in the order found (ids, then headers, then copies).
    var rejections: [ItemError] = []
  }

  /// Plans `sources` (before augmentation's copies). Ids are checked in order here;
  /// transcripts and headers per utterance on the pool's threads.
  /// - Throws: `RunInterrupted` when cancelled.
  func plan(_ sources: [UtteranceSource]) throws -> Plan {
    var rejections: [ItemError] = []
    func reject(_ error: ItemError) { rejections.append(error) }
    var seen: [String: Set<String>] = [:]
    var candidates: [UtteranceSource] = []
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
      candidates.append(source)
    }

    let progress = PhaseProgress(sink: self.progress, phase: "probe", itemsTotal: candidates.count, audioSecondsTotal: 0)
    var planned: [PlannedUtterance] = []
    planned.reserveCapacity(candidates.count)
    // A header probe takes microseconds: the threads take batches, not single files.
    let batch = 32
    try pool.orderedMap(
      count: (candidates.count + batch - 1) / batch, window: 16,
      produce: { [candidates, recipe, vocabulary] chunk, _ -> [Result<PlannedUtterance, ItemError>] in
        candidates[(chunk * batch)..<min(candidates.count, (chunk + 1) * batch)].map { source in
          UtterancePlanner.probe(source, vocabulary: vocabulary, recipe: recipe)
        }
      },
      consume: { _, results in
        try cancellation.check(output: recipe.output)
        for result in results {
          switch result {
          case .success(let utterance): planned.append(utterance)
          case .failure(let error): reject(error)
          }
          progress.advance(audioSeconds: 0)
        }
      })
    progress.finish()
    return Plan(utterances: planned, rejections: rejections)
  }

  /// Encodes one utterance's transcript, reads its audio header and applies the duration
  /// filters: its labels and exact lengths at the dataset rate, or why it is rejected.
  static func probe(_ source: UtteranceSource, vocabulary: Vocabulary, recipe: Recipe) -> Result<PlannedUtterance, ItemError> {
    let (rate, features, filters) = (recipe.audio.sampleRateHertz, recipe.features, recipe.filters)
    let labels: [Int32]
    do {
      labels = try vocabulary.encode(source.transcript)
    } catch {
      return .failure(
        ItemError(.outOfVocabulary, file: source.transcriptPath ?? source.audioPath, line: source.transcriptLine,
          utteranceId: source.id, split: source.split, message: "\(error) in \"\(source.transcript)\""))
    }
    do {
      let info = try source.packed.map { try AudioDecoder.probe(packed: $0, path: source.audioPath) }
        ?? AudioDecoder.probe(path: source.audioPath)
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
      try AudioDecoder.checkLength(frames: segment.frames, sampleRateHertz: info.sampleRateHertz, path: source.audioPath)
      let samples = Resampler.outputCount(inputCount: segment.frames, sourceHertz: info.sampleRateHertz, targetHertz: rate)
      let frames = features.frameCount(sampleCount: samples, sampleRateHertz: rate)
      if frames == 0 {
        return fail(.tooShort, "\(samples) samples at \(rate) Hz is shorter than one \(features.windowSeconds) s window")
      }
      return .success(
        PlannedUtterance(
          source: source, labels: labels, samples: samples, frames: frames, augmentation: nil,
          id: source.id))
    } catch {
      return .failure(audioFailure(error, source: source, utteranceId: source.id))
    }
  }

  /// Replaces each utterance of an augmented split by one copy per speed factor, each
  /// with its drawn plan; copies that get too short for one window are rejected.
  func expand(
    _ planned: [PlannedUtterance], with augmenter: Augmenter, reject: (ItemError) -> Void
  ) -> [PlannedUtterance] {
    Self.expand(planned, recipe: recipe, with: augmenter, reject: reject)
  }

  /// `expand(_:with:reject:)` for `recipe`, usable off the planner (on the pool's threads).
  static func expand(
    _ planned: [PlannedUtterance], recipe: Recipe, with augmenter: Augmenter, reject: (ItemError) -> Void
  ) -> [PlannedUtterance] {
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
}

/// The rejection for an audio failure of one utterance: an `ItemError` from the audio
/// layer with the utterance and split filled in, or any other error as unreadable audio
/// naming the file.
func audioFailure(_ error: Error, source: UtteranceSource, utteranceId: String) -> ItemError {
  if var itemError = error as? ItemError {
    itemError.utteranceId = utteranceId
    itemError.split = source.split
    return itemError
  }
  return ItemError(.unreadableAudio, file: source.audioPath, utteranceId: utteranceId, split: source.split, message: "\(error)")
}
