import DS2Core
import XCTest

@testable import Training

final class ParallelismTests: XCTestCase {
  /// The two recurrent directions on two threads and CTC over utterances in parallel give
  /// bit-identical losses and gradients to the single-threaded computation.
  func testThreadCountDoesNotChangeResults() throws {
    for cell in [RecurrentCell.gru, .rnn] {
      let config = ModelConfig(
        inputBins: 8, convLayers: [.init(channels: 3, kernelTime: 5, kernelFrequency: 3, strideTime: 2, strideFrequency: 2)],
        rnnCell: cell, rnnLayers: 2, rnnHidden: 12, vocabularySize: 6, seed: 3)
      let batch = FeatureBatch<Float>(
        bins: 8, utterances: [30, 22, 17].enumerated().map { (randomTensor([$0.element, 8], seed: 20 + UInt64($0.offset)) as Tensor<Float>).scalars })
      let labels: [[Int32]] = [[1, 2, 3, 3], [4, 5], [2]]
      var results: [([Float], [Tensor<Float>])] = []
      for threads in [1, 2] {
        let model = try DS2Model<Float>(config: config, pool: WorkerPool(threads: threads))
        let losses = model.computeGradients(batch: batch, labels: labels).losses
        results.append((losses, model.parameters.map(\.gradient)))
      }
      XCTAssertEqual(results[0].0, results[1].0, "\(cell) losses")
      XCTAssertEqual(results[0].1, results[1].1, "\(cell) gradients")
    }
  }
}

final class BatchNormScaleTests: XCTestCase {
  /// Batch normalization written out directly over the valid positions, in Double: the
  /// reference for the layer's blocked, threaded passes.
  struct Reference {
    var y: [Double]
    var dx: [Double]
    var dGamma: [Double]
    var dBeta: [Double]
    var mean: [Double]
    var variance: [Double]
    /// Evaluation output with the running statistics after this one training step
    /// (PyTorch's update from mean 0, variance 1; unbiased variance).
    var evaluation: [Double]

    init(x: [Double], dy: [Double], shape: [Int], lengths: [Int], gamma: [Double], beta: [Double], clips: Bool) {
      let (steps, batch, c) = (shape[0], shape[1], shape.last!)
      let perPosition = x.count / (steps * batch)
      var valid: [Int] = []  // element offsets of valid rows
      for t in 0..<steps {
        for b in 0..<batch where t < lengths[b] {
          let start = (t * batch + b) * perPosition
          for row in stride(from: start, to: start + perPosition, by: c) { valid.append(row) }
        }
      }
      let m = Double(valid.count)
      y = [Double](repeating: 0, count: x.count)
      dx = y
      dGamma = [Double](repeating: 0, count: c)
      dBeta = dGamma
      mean = dGamma
      variance = dGamma
      evaluation = y
      for j in 0..<c {
        let mu = valid.map { x[$0 + j] }.reduce(0, +) / m
        let variance = valid.map { (x[$0 + j] - mu) * (x[$0 + j] - mu) }.reduce(0, +) / m
        let sigma = (variance + 1e-5).squareRoot()
        mean[j] = mu
        self.variance[j] = variance
        let (runningMean, runningVariance) = (0.1 * mu, 0.9 + 0.1 * variance * m / (m - 1))
        for row in valid {
          let out = gamma[j] * (x[row + j] - runningMean) / (runningVariance + 1e-5).squareRoot() + beta[j]
          evaluation[row + j] = clips ? min(max(out, 0), 20) : out
        }
        var g: [Double] = []
        for row in valid {
          let xHat = (x[row + j] - mu) / sigma
          let out = gamma[j] * xHat + beta[j]
          y[row + j] = clips ? min(max(out, 0), 20) : out
          g.append(!clips || (out > 0 && out < 20) ? dy[row + j] : 0)
        }
        let xHats = valid.map { (x[$0 + j] - mu) / sigma }
        let meanG = g.reduce(0, +) / m
        let meanGX = zip(g, xHats).map(*).reduce(0, +) / m
        dBeta[j] = g.reduce(0, +)
        dGamma[j] = zip(g, xHats).map(*).reduce(0, +)
        for (k, row) in valid.enumerated() {
          dx[row + j] = gamma[j] / sigma * (g[k] - meanG - xHats[k] * meanGX)
        }
      }
    }
  }

  /// A batch normalization large enough to be cut into many row blocks and split over
  /// threads: bit-identical for 1 and 2 threads, and within Float rounding of the direct
  /// Double computation above, with and without the clip, forward (training and
  /// evaluation) and backward; for 8 features (whole SIMD groups), 13 (groups and a tail)
  /// and 3 (tail only).
  func testBlockedBatchNormMatchesDirectComputationAndIgnoresThreadCount() {
    let lengths = [60, 57, 31, 12]  // 160 valid frames
    // Over 62,500 valid values each, so that the passes are split over the threads.
    for (channels, frequencies) in [(8, 81), (13, 41), (3, 161)] {
      let x64: Tensor<Double> = randomTensor([60, lengths.count, frequencies, channels], seed: 41, bound: 3)
      let dy64: Tensor<Double> = randomTensor(x64.shape, seed: 42)
      let x32 = Tensor<Float>(shape: x64.shape, scalars: x64.scalars.map(Float.init))
      let dy32 = Tensor<Float>(shape: dy64.shape, scalars: dy64.scalars.map(Float.init))
      let gamma = (0..<channels).map { 0.5 + 0.25 * Double($0) }
      let beta = (0..<channels).map { 0.5 + Double($0) }
      for clips in [false, true] {
        let reference = Reference(
          x: x64.scalars, dy: dy64.scalars, shape: x64.shape, lengths: lengths, gamma: gamma, beta: beta, clips: clips)
        var runs: [[[Float]]] = []
        for threads in [1, 2] {
          let norm = BatchNorm<Float>(name: "bn", featureCount: channels, clipsOutput: clips)
          norm.pool = WorkerPool(threads: threads)
          norm.scale.value = Tensor(shape: [channels], scalars: gamma.map(Float.init))
          norm.shift.value = Tensor(shape: [channels], scalars: beta.map(Float.init))
          let y = norm.forward(x32, lengths: lengths, training: true).scalars
          let dx = norm.backward(dy32).scalars
          let evaluation = norm.forward(x32, lengths: lengths, training: false).scalars
          runs.append([y, dx, norm.scale.gradient.scalars, norm.shift.gradient.scalars, norm.runningMean.scalars, evaluation])
        }
        let label = "C \(channels), clip \(clips)"
        XCTAssertEqual(runs[0], runs[1], "1 and 2 threads differ (\(label))")
        assertClose(runs[0][0].map(Double.init), reference.y, absolute: 1e-5, relative: 1e-4, "forward, \(label)")
        assertClose(runs[0][1].map(Double.init), reference.dx, absolute: 1e-5, relative: 1e-3, "backward, \(label)")
        assertClose(runs[0][2].map(Double.init), reference.dGamma, absolute: 1e-2, relative: 1e-4, "dγ, \(label)")
        assertClose(runs[0][3].map(Double.init), reference.dBeta, absolute: 1e-2, relative: 1e-4, "dβ, \(label)")
        assertClose(runs[0][4].map(Double.init), reference.mean.map { 0.1 * $0 }, absolute: 1e-6, relative: 1e-5, "running mean, \(label)")
        assertClose(runs[0][5].map(Double.init), reference.evaluation, absolute: 1e-5, relative: 1e-4, "evaluation, \(label)")
      }
    }
  }
}
