import DS2Core
import Shards
import XCTest

@testable import Trainer

final class BatcherTests: XCTestCase {
  /// Records of two datasets with pseudo-random lengths (ties included).
  private func records(_ count: Int, seed: UInt64) -> [RecordReference] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { index in
      let frames = 20 + Int(generator.next() % 300)
      return RecordReference(
        dataset: index % 2, split: "train",
        location: RecordLocation(shard: 0, key: Array("u\(index)".utf8), frames: frames, labelCount: 3, sampleCount: frames * 160))
    }
  }

  /// Every record exactly once; batches are full but the last; neighbours in length order;
  /// longest first inside a batch; the first epoch ascends (SortaGrad).
  func testBatchesPartitionTheRecordsInLengthOrder() {
    let input = records(200, seed: 1)
    let batcher = Batcher(records: input, batchSize: 7, seed: 5)
    XCTAssertEqual(batcher.recordCount, 200)
    XCTAssertEqual(Set(batcher.batches.flatMap(\.records)), Set(input))
    XCTAssertEqual(batcher.batches.map(\.records.count), Array(repeating: 7, count: 28) + [4])
    for batch in batcher.batches {
      XCTAssertEqual(batch.records.map(\.frames), batch.records.map(\.frames).sorted(by: >), "longest first")
    }
    let first = batcher.order(epoch: 0).map { batcher.batches[$0] }
    for (a, b) in zip(first, first.dropFirst()) {
      XCTAssertLessThanOrEqual(a.records.first!.frames, b.records.last!.frames, "epoch 1 ascends in length")
    }
  }

  /// Later epochs are permutations, differ from each other, and are reproducible from the seed.
  func testLaterEpochsShuffleDeterministically() {
    let batcher = Batcher(records: records(100, seed: 2), batchSize: 4, seed: 9)
    let identity = Array(batcher.batches.indices)
    let second = batcher.order(epoch: 1)
    XCTAssertEqual(second.sorted(), identity)
    XCTAssertNotEqual(second, identity)
    XCTAssertNotEqual(second, batcher.order(epoch: 2))
    XCTAssertEqual(second, Batcher(records: records(100, seed: 2), batchSize: 4, seed: 9).order(epoch: 1))
    XCTAssertNotEqual(second, Batcher(records: records(100, seed: 2), batchSize: 4, seed: 10).order(epoch: 1))
    let unsorted = Batcher(records: records(100, seed: 2), batchSize: 4, sortaGrad: false, seed: 9)
    XCTAssertNotEqual(unsorted.order(epoch: 0), identity, "without SortaGrad the first epoch is shuffled too")
  }

  /// A frame cap bounds utterances × longest frames; a record over the cap stands alone.
  func testFrameCapBoundsPaddedFrames() {
    var input = records(150, seed: 3)
    input.append(RecordReference(dataset: 0, split: "train", location: RecordLocation(shard: 0, key: [1], frames: 5000, labelCount: 1, sampleCount: 0)))
    let batcher = Batcher(records: input, batchSize: 32, maxBatchFrames: 1000, seed: 1)
    XCTAssertEqual(batcher.recordCount, 151)
    for batch in batcher.batches where batch.records.count > 1 {
      XCTAssertLessThanOrEqual(batch.paddedFrames, 1000)
      XCTAssertLessThanOrEqual(batch.records.count, 32)
    }
    XCTAssertEqual(batcher.batches.last!.records.map(\.frames), [5000])
    XCTAssertGreaterThan(batcher.batches.first!.records.count, batcher.batches[batcher.batches.count - 2].records.count, "short utterances make bigger batches")
  }
}
