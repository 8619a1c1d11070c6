import XCTest

@testable import Training

final class ParallelismTests: XCTestCase {
  /// The two recurrent directions on two threads and CTC over utterances in parallel give
  /// bit-identical losses and gradients to the single-threaded computation.
  func testThreadCountDoesNotChangeResults() throws {
    let saved = ComputeThreads.count
    defer { ComputeThreads.count = saved }
    for cell in [RecurrentCell.gru, .rnn] {
      let config = ModelConfig(
        inputBins: 8, convLayers: [.init(channels: 3, kernelTime: 5, kernelFrequency: 3, strideTime: 2, strideFrequency: 2)],
        rnnCell: cell, rnnLayers: 2, rnnHidden: 12, vocabularySize: 6, seed: 3)
      let batch = FeatureBatch<Float>(
        bins: 8, utterances: [30, 22, 17].enumerated().map { (randomTensor([$0.element, 8], seed: 20 + UInt64($0.offset)) as Tensor<Float>).scalars })
      let labels: [[Int32]] = [[1, 2, 3, 3], [4, 5], [2]]
      var results: [([Float], [Tensor<Float>])] = []
      for threads in [1, 2] {
        ComputeThreads.count = threads
        let model = try DS2Model<Float>(config: config)
        let losses = model.computeGradients(batch: batch, labels: labels).losses
        results.append((losses, model.parameters.map(\.gradient)))
      }
      XCTAssertEqual(results[0].0, results[1].0, "\(cell) losses")
      XCTAssertEqual(results[0].1, results[1].1, "\(cell) gradients")
    }
  }
}
