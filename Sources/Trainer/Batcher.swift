import DS2Core
import Shards

/// One record of one of the datasets being trained on.
public struct RecordReference: Sendable, Equatable, Hashable {
  /// Index of the dataset in the run's dataset list.
  public var dataset: Int
  /// The split the record belongs to.
  public var split: String
  public var location: RecordLocation

  public init(dataset: Int, split: String, location: RecordLocation) {
    self.dataset = dataset
    self.split = split
    self.location = location
  }

  public var frames: Int { location.frames }
}

/// A batch before loading: records of similar length, longest first (the recurrent layers
/// then run each step over a prefix of the batch).
public struct BatchPlan: Sendable, Equatable {
  public var records: [RecordReference]
  /// Frames of the longest record.
  public var maxFrames: Int { records.first?.frames ?? 0 }
  /// Padded frames: utterances × longest.
  public var paddedFrames: Int { records.count * maxFrames }
}

/// Forms batches from neighbouring records of the length-sorted shards and orders them per
/// epoch (SortaGrad).
///
/// All records (of every dataset and split given) are merged in ascending (frames, dataset,
/// stored order) and cut into consecutive batches, so a batch holds utterances of nearly
/// equal length and little padding. A batch holds `batchSize` records, or fewer when
/// `maxBatchFrames` caps `utterances × longest frames` (a record longer than the cap forms a
/// batch alone). Epoch 0 visits batches in ascending length when `sortaGrad` is on; every
/// other epoch visits them in an order shuffled by a generator seeded from `(seed, epoch)`,
/// so the order of any epoch can be recomputed on resume. Every record appears exactly once
/// per epoch.
public struct Batcher: Sendable {
  /// Batches in ascending length.
  public let batches: [BatchPlan]
  public let sortaGrad: Bool
  public let seed: UInt64

  /// - Precondition: `batchSize ≥ 1`; `maxBatchFrames`, when given, is positive.
  public init(records: [RecordReference], batchSize: Int, maxBatchFrames: Int? = nil, sortaGrad: Bool = true, seed: UInt64) {
    precondition(batchSize >= 1, "batch size must be at least 1")
    precondition((maxBatchFrames ?? 1) > 0, "the frame cap must be positive")
    let sorted = records.enumerated().sorted { a, b in
      (a.element.frames, a.element.dataset, a.offset) < (b.element.frames, b.element.dataset, b.offset)
    }.map(\.element)
    var batches: [BatchPlan] = []
    var current: [RecordReference] = []
    for record in sorted {
      // Ascending order: the newest record is the longest of the batch.
      let wouldPad = (current.count + 1) * record.frames
      if !current.isEmpty && (current.count == batchSize || maxBatchFrames.map { wouldPad > $0 } ?? false) {
        batches.append(BatchPlan(records: current.reversed()))
        current = []
      }
      current.append(record)
    }
    if !current.isEmpty { batches.append(BatchPlan(records: current.reversed())) }
    self.batches = batches
    self.sortaGrad = sortaGrad
    self.seed = seed
  }

  /// Batch indices (into `batches`) in the order epoch `epoch` (0-based) visits them.
  public func order(epoch: Int) -> [Int] {
    var order = Array(batches.indices)
    if epoch == 0 && sortaGrad { return order }
    // Fisher–Yates with an explicit draw, so the order never depends on the standard
    // library's shuffling algorithm.
    var generator = SeededGenerator(seed: seed, id: "batch-order", copy: epoch)
    for i in stride(from: order.count - 1, to: 0, by: -1) {
      let j = Int(generator.next() % UInt64(i + 1))
      order.swapAt(i, j)
    }
    return order
  }

  /// Total records.
  public var recordCount: Int { batches.reduce(0) { $0 + $1.records.count } }
}
