import DS2Core
import Dispatch
import Foundation
import Shards
import Training

/// A batch read from the shards: padded features and what decoding and scoring need.
public struct LoadedBatch: Sendable {
  /// `[T × N × bins]`, normalized, zero past each utterance; longest utterance first.
  public var features: FeatureBatch<Float>
  public var labels: [[Int32]]
  public var transcripts: [String]
  public var ids: [String]
  /// Seconds of audio in the batch (sum over utterances, without padding).
  public var audioSeconds: Double
  /// Seconds spent reading and converting it (on the loader's queue).
  public var loadSeconds: Double
}

/// Reads batches from one or more datasets on a private serial queue.
///
/// Records are read one at a time by key from the memory-mapped LMDB shards (no shard is
/// copied into memory), decoded from float16/float32, normalized with their own dataset's
/// statistics and interleaved into the padded time-major batch tensor. Every access to the
/// datasets happens on the loader's queue, so the (non thread-safe) `Dataset` objects are
/// never used concurrently.
final class BatchLoader: @unchecked Sendable {  // the Datasets (not thread-safe) are used only on `queue`
  private let datasets: [Dataset]
  private let sampleRates: [Double]
  let queue = DispatchQueue(label: "ds2-data.batch-loader", qos: .userInitiated)
  let bins: Int

  /// - Precondition: at least one dataset; all have the same bins.
  init(datasets: [Dataset]) {
    precondition(!datasets.isEmpty, "need a dataset")
    self.datasets = datasets
    sampleRates = datasets.map { Double($0.manifest.features.sampleRateHertz) }
    bins = datasets[0].manifest.features.bins
  }

  /// Reads `plan` into a batch. Call on `queue` (or before any prefetcher exists).
  /// - Throws: `DatasetError`, `LMDBError`.
  func load(_ plan: BatchPlan) throws -> LoadedBatch {
    let started = DispatchTime.now().uptimeNanoseconds
    let batch = plan.records.count
    let steps = plan.maxFrames
    let bins = self.bins
    var values = [Float](repeating: 0, count: steps * batch * bins)
    var labels: [[Int32]] = []
    var transcripts: [String] = []
    var ids: [String] = []
    var lengths: [Int] = []
    var audioSeconds = 0.0
    for (b, reference) in plan.records.enumerated() {
      let dataset = datasets[reference.dataset]
      let record = try dataset.record(split: reference.split, at: reference.location)
      guard record.bins == bins else {
        throw DatasetError("\(dataset.directory): record \(record.id) has \(record.bins) bins, expected \(bins)")
      }
      values.withUnsafeMutableBufferPointer { destination in
        record.features.values.withUnsafeBufferPointer { source in
          for t in 0..<record.frames {
            (destination.baseAddress! + (t * batch + b) * bins).update(from: source.baseAddress! + t * bins, count: bins)
          }
        }
      }
      labels.append(record.labels)
      transcripts.append(record.transcript)
      ids.append(record.id)
      lengths.append(record.frames)
      audioSeconds += Double(record.sampleCount) / sampleRates[reference.dataset]
    }
    let features = FeatureBatch(features: Tensor(shape: [steps, batch, bins], scalars: values), lengths: lengths)
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    return LoadedBatch(
      features: features, labels: labels, transcripts: transcripts, ids: ids, audioSeconds: audioSeconds,
      loadSeconds: seconds)
  }
}

/// Loads a sequence of batches ahead of the consumer on the loader's queue.
///
/// Keeps up to `depth` batches ready; `next()` blocks only when none is (the time spent
/// waiting is the data-loading cost the training step sees). Dropping the prefetcher (or
/// `cancel()`) stops the background work after the batch in flight, which frees the
/// loader's queue for the next pass.
final class Prefetcher {
  /// State shared with the background producer (which must not keep the prefetcher alive).
  private final class Channel: @unchecked Sendable {  // every var is guarded by `condition`
    let condition = NSCondition()
    let depth: Int
    var ready: [Result<LoadedBatch, any Error>] = []
    var cancelled = false

    init(depth: Int) { self.depth = depth }

    /// Waits for a free slot; false when cancelled.
    func waitForSlot() -> Bool {
      condition.lock()
      defer { condition.unlock() }
      while ready.count >= depth && !cancelled { condition.wait() }
      return !cancelled
    }

    func put(_ result: Result<LoadedBatch, any Error>) {
      condition.lock()
      ready.append(result)
      condition.broadcast()
      condition.unlock()
    }

    func take() -> Result<LoadedBatch, any Error> {
      condition.lock()
      defer { condition.unlock() }
      while ready.isEmpty { condition.wait() }
      condition.broadcast()
      return ready.removeFirst()
    }

    func cancel() {
      condition.lock()
      cancelled = true
      condition.broadcast()
      condition.unlock()
    }
  }

  private let channel: Channel
  private let loader: BatchLoader
  private let plans: [BatchPlan]
  private let inBackground: Bool
  private var remaining: Int
  /// Seconds `next()` has spent waiting for a batch.
  private(set) var waitSeconds = 0.0

  /// - Parameter inBackground: load ahead on the loader's queue; false loads each batch
  ///   when `next()` asks for it, on the loader's queue while the caller waits (a run on
  ///   one thread then never computes on two).
  init(loader: BatchLoader, plans: [BatchPlan], depth: Int = 3, inBackground: Bool = true) {
    precondition(depth >= 1, "prefetch depth must be at least 1")
    let channel = Channel(depth: depth)
    self.channel = channel
    self.loader = loader
    self.plans = plans
    self.inBackground = inBackground
    remaining = plans.count
    guard inBackground else { return }
    loader.queue.async {
      for plan in plans {
        guard channel.waitForSlot() else { return }
        let result = Result { try loader.load(plan) }
        channel.put(result)
        if case .failure = result { return }
      }
    }
  }

  deinit { channel.cancel() }

  /// Stops the background loading after the batch in flight.
  func cancel() { channel.cancel() }

  /// The next batch in order, or nil after the last.
  /// - Throws: what loading that batch threw.
  func next() throws -> LoadedBatch? {
    guard remaining > 0 else { return nil }
    let started = DispatchTime.now().uptimeNanoseconds
    let result: Result<LoadedBatch, any Error>
    if inBackground {
      result = channel.take()
    } else {
      let (loader, plan) = (self.loader, plans[plans.count - remaining])
      result = loader.queue.sync { Result { try loader.load(plan) } }
    }
    waitSeconds += Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    remaining -= 1
    if case .failure = result { remaining = 0 }
    return try result.get()
  }
}
