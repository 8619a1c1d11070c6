import Foundation
import Synchronization
import XCTest

@testable import Training

/// An in-process stand-in for the ranks' collectives — threads of one process meeting at a
/// rendezvous — used to test what the model does with a `Collective` (the MPI collective
/// itself is tested across real processes in CLITests/DataParallelTests). Sums add the
/// ranks' values in rank order.
final class ThreadCollective: Collective, @unchecked Sendable {  // `board` is guarded by `condition`
  final class Board: @unchecked Sendable {
    let condition = NSCondition()
    var arrived = 0
    var generation = 0
    var contributions: [[Double]]
    var result: [Double] = []
    init(size: Int) { contributions = Array(repeating: [], count: size) }
  }

  let rank: Int
  let size: Int
  let board: Board
  var communicationSeconds: Double { 0 }

  init(rank: Int, size: Int, board: Board) {
    self.rank = rank
    self.size = size
    self.board = board
  }

  private func reduce(_ values: [Double]) -> [Double] {
    board.condition.lock()
    defer { board.condition.unlock() }
    let generation = board.generation
    board.contributions[rank] = values
    board.arrived += 1
    if board.arrived == size {
      var total = board.contributions[0]
      for other in board.contributions.dropFirst() { for i in total.indices { total[i] += other[i] } }
      board.result = total
      board.arrived = 0
      board.generation += 1
      board.condition.broadcast()
    } else {
      while board.generation == generation { board.condition.wait() }
    }
    return board.result
  }

  func sum(_ values: UnsafeMutableBufferPointer<Float>) {
    let total = reduce(values.map(Double.init))
    for i in values.indices { values[i] = Float(total[i]) }
  }

  func sum(_ values: UnsafeMutableBufferPointer<Double>) {
    let total = reduce(Array(values))
    for i in values.indices { values[i] = total[i] }
  }

  func gather(_ bytes: [UInt8]) -> [[UInt8]] { fatalError("not used") }
}

final class CollectiveTests: XCTestCase {
  let config = ModelConfig(
    inputBins: 8,
    convLayers: [.init(channels: 4, kernelTime: 5, kernelFrequency: 3, strideTime: 2, strideFrequency: 2)],
    rnnCell: .gru, rnnLayers: 2, rnnHidden: 16, vocabularySize: 6, seed: 42)

  func batch(_ frames: [Int], seed: UInt64) -> FeatureBatch<Float> {
    FeatureBatch(
      bins: 8,
      utterances: frames.enumerated().map { index, count in
        (randomTensor([count, 8], seed: seed + UInt64(index)) as Tensor<Float>).scalars
      })
  }

  /// Two ranks, each with every other utterance of a batch and the batch normalizations
  /// summing their statistics across ranks, give the gradients (summed) and running
  /// statistics of one model on the whole batch, to float rounding. A third rank with no
  /// utterance (`participateWithoutData`) changes nothing. Without the summed statistics
  /// (each rank normalizing its own half) the gradients are far off.
  func testRanksComputeTheWholeBatchsGradients() throws {
    let frames = [40, 37, 33, 30, 28, 25]
    let labels: [[Int32]] = [[1, 2, 3, 4, 5, 1, 2], [5, 5, 1, 3, 3], [2, 4, 1, 4, 2], [3, 1, 1, 5], [1, 2], [4, 4, 3]]
    let whole = batch(frames, seed: 7)
    let reference = try DS2Model<Float>(config: config)
    reference.zeroGradients()
    _ = reference.computeGradients(batch: whole, labels: labels)

    for (ranks, sharesStatistics) in [(2, true), (3, true), (2, false)] {
      let board = ThreadCollective.Board(size: ranks)
      let models = try (0..<ranks).map { _ in try DS2Model<Float>(config: config) }
      nonisolated(unsafe) let shared = models  // each thread uses only its own model
      // One thread per rank (they meet at every sum, so all must run at once).
      let done = DispatchGroup()
      let threads = (0..<ranks).map { rank in
        Thread {
          defer { done.leave() }
          let model = shared[rank]
          let collective = ThreadCollective(rank: rank, size: ranks, board: board)
          if sharesStatistics { model.collective = collective }
          // Two ranks share the batch; a third has nothing.
          let mine = Array(stride(from: rank, to: rank < 2 ? frames.count : 0, by: 2))
          if mine.isEmpty {
            model.participateWithoutData()
          } else {
            model.zeroGradients()
            let features = FeatureBatch(
              bins: 8, utterances: mine.map { (randomTensor([frames[$0], 8], seed: 7 + UInt64($0)) as Tensor<Float>).scalars })
            _ = model.computeGradients(batch: features, labels: mine.map { labels[$0] }, meanOver: frames.count)
          }
          sumGradients(model.parameters, over: collective)
        }
      }
      for thread in threads {
        done.enter()
        thread.start()
      }
      done.wait()
      for (index, parameter) in reference.parameters.enumerated() {
        let expected = parameter.gradient.scalars
        let scale = max(expected.map(abs).max() ?? 0, 1e-6)
        for model in models {
          let got = model.parameters[index].gradient.scalars
          let difference = zip(expected, got).map { abs($0 - $1) }.max()! / scale
          if sharesStatistics {
            XCTAssertLessThan(difference, 2e-5, "\(ranks) ranks: \(parameter.name) \(difference)")
          }
        }
      }
      if !sharesStatistics {
        let worst = reference.parameters.indices.map { index -> Float in
          let expected = reference.parameters[index].gradient.scalars
          let scale = max(expected.map(abs).max() ?? 0, 1e-6)
          return zip(expected, models[0].parameters[index].gradient.scalars).map { abs($0 - $1) }.max()! / scale
        }.max()!
        XCTAssertGreaterThan(worst, 1e-2, "without shared statistics the gradients must differ (the test can fail)")
      } else {
        let state = reference.exportState()
        for model in models {
          for (name, tensor) in model.exportState() where name.hasSuffix("running" + "Mean") || name.hasSuffix("runningVariance") {
            let expected = state[name]!.scalars
            XCTAssertLessThan(zip(expected, tensor.scalars).map { abs($0 - $1) }.max()!, 1e-5, "\(ranks) ranks: \(name)")
          }
        }
      }
    }
  }
}
