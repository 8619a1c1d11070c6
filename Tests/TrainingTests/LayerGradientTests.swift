import XCTest

@testable import Training

/// Hand-written backward passes against central differences in Double, on tiny shapes with
/// unequal utterance lengths; the loss is `Σ output ⊙ R` for a fixed random `R` that is nonzero
/// at padding positions too, so gradients leaking from padding would show.
final class LayerGradientTests: XCTestCase {
  func testConvolutionGradientsOfInputAndWeight() {
    var generator = Xoshiro256StarStar(seed: 1)
    let conv = Convolution2D<Double>(
      name: "conv", inputChannels: 2, outputChannels: 3, kernelTime: 3, kernelFrequency: 4,
      strideTime: 2, strideFrequency: 2, paddingTime: 1, paddingFrequency: 2, generator: &generator)
    conv.columnBudget = 1  // one output step per im2col chunk
    let lengths = [7, 4]
    var x: Tensor<Double> = randomTensor([7, 2, 6, 2], seed: 2)
    fillPadding(&x, lengths: lengths, value: 5)
    let outputShape = [conv.outputLength(7), 2, conv.outputFrequencies(6), 3]
    let r: Tensor<Double> = randomTensor(outputShape, seed: 3)
    func loss(_ input: Tensor<Double>) -> Double { weightedSum(conv.forward(input, lengths: lengths, training: true), r) }

    XCTAssertEqual(conv.forward(x, lengths: lengths, training: true).shape, outputShape)
    conv.zeroGradients()
    let inputGradient = conv.backward(r)!.scalars
    let weightGradient = conv.weight.gradient.scalars
    assertClose(inputGradient, numericalGradient(of: x, loss: loss), "conv dx")
    assertClose(weightGradient, numericalGradient(of: \.value, in: conv.weight) { loss(x) }, "conv dW")
  }

  /// Forward pass against the direct convolution sum; padding input is read as zero and
  /// output frames past each utterance's output length are zero.
  func testConvolutionMatchesDirectSum() {
    var generator = Xoshiro256StarStar(seed: 4)
    let (kt, kf, st, sf, pt, pf, cin, cout) = (3, 2, 2, 1, 2, 1, 2, 2)
    let conv = Convolution2D<Double>(
      name: "conv", inputChannels: cin, outputChannels: cout, kernelTime: kt, kernelFrequency: kf,
      strideTime: st, strideFrequency: sf, paddingTime: pt, paddingFrequency: pf, generator: &generator)
    let lengths = [3, 6, 5]
    let (steps, batch, bins) = (6, 3, 4)
    var x: Tensor<Double> = randomTensor([steps, batch, bins, cin], seed: 5)
    fillPadding(&x, lengths: lengths, value: -9)
    conv.columnBudget = 50
    let y = conv.forward(x, lengths: lengths, training: false)
    let (outSteps, outBins) = (y.shape[0], y.shape[2])
    XCTAssertEqual(outSteps, (steps + 2 * pt - kt) / st + 1)
    XCTAssertEqual(outBins, (bins + 2 * pf - kf) / sf + 1)
    for b in 0..<batch {
      let outLength = (lengths[b] + 2 * pt - kt) / st + 1
      XCTAssertEqual(conv.outputLength(lengths[b]), outLength)
      for tOut in 0..<outSteps {
        for fOut in 0..<outBins {
          for co in 0..<cout {
            var expected = 0.0
            if tOut < outLength {
              for i in 0..<kt {
                for j in 0..<kf {
                  for ci in 0..<cin {
                    let (t, f) = (tOut * st + i - pt, fOut * sf + j - pf)
                    guard t >= 0 && t < lengths[b] && f >= 0 && f < bins else { continue }
                    expected += conv.weight.value[co, (i * kf + j) * cin + ci] * x[t, b, f, ci]
                  }
                }
              }
            }
            XCTAssertEqual(y[tOut, b, fOut, co], expected, accuracy: 1e-12, "t'=\(tOut) b=\(b) f'=\(fOut) c=\(co)")
          }
        }
      }
    }
  }

  func testBatchNormGradientsWithAndWithoutClip() {
    for clips in [false, true] {
      let norm = BatchNorm<Double>(name: "bn", featureCount: 3, clipsOutput: clips)
      norm.scale.value = randomTensor([3], seed: 6, bound: 2)
      norm.shift.value = randomTensor([3], seed: 7, bound: 0.5)
      let lengths = [5, 2, 4]
      var x: Tensor<Double> = randomTensor([5, 3, 2, 3], seed: 8)
      fillPadding(&x, lengths: lengths, value: 3)
      let r: Tensor<Double> = randomTensor(x.shape, seed: 9)
      func loss(_ input: Tensor<Double>) -> Double { weightedSum(norm.forward(input, lengths: lengths, training: true), r) }

      _ = norm.forward(x, lengths: lengths, training: true)
      norm.zeroGradients()
      let inputGradient = norm.backward(r).scalars
      assertClose(inputGradient, numericalGradient(of: x, loss: loss), "bn dx clip=\(clips)")
      assertClose(norm.scale.gradient.scalars, numericalGradient(of: \.value, in: norm.scale) { loss(x) }, "bn dγ clip=\(clips)")
      assertClose(norm.shift.gradient.scalars, numericalGradient(of: \.value, in: norm.shift) { loss(x) }, "bn dβ clip=\(clips)")
    }
  }

  /// The in-place variants the model uses give the same results as `forward`/`backward`,
  /// including zeros written over padding in both directions.
  func testBatchNormInPlaceMatchesOutOfPlace() {
    let lengths = [4, 2]
    let x: Tensor<Double> = randomTensor([4, 2, 3, 2], seed: 30)
    let r: Tensor<Double> = randomTensor(x.shape, seed: 31)
    let outOfPlace = BatchNorm<Double>(name: "a", featureCount: 2, clipsOutput: true)
    let inPlace = BatchNorm<Double>(name: "b", featureCount: 2, clipsOutput: true)
    for norm in [outOfPlace, inPlace] { norm.shift.value = Tensor(shape: [2], scalars: [0.3, -0.2]) }
    let y = outOfPlace.forward(x, lengths: lengths, training: true)
    var z = x
    inPlace.normalizeInPlace(&z, lengths: lengths, training: true)
    XCTAssertEqual(z, y)
    let dx = outOfPlace.backward(r)
    var dz = r.reshaped(to: [4, 2, 6])  // the model passes [T × N × F·C]
    inPlace.backpropagateInPlace(&dz)
    XCTAssertEqual(dz.scalars, dx.scalars)
    XCTAssertEqual(inPlace.scale.gradient, outOfPlace.scale.gradient)
    XCTAssertEqual(inPlace.shift.gradient, outOfPlace.shift.gradient)
  }

  /// Training mode normalizes valid positions to mean 0 / variance 1 (γ = 1, β = 0) and
  /// ignores padding; running statistics follow PyTorch's update; evaluation uses them.
  func testBatchNormStatisticsIgnorePadding() {
    let norm = BatchNorm<Double>(name: "bn", featureCount: 2)
    let lengths = [3, 1]
    var x: Tensor<Double> = randomTensor([3, 2, 2], seed: 10, bound: 4)
    fillPadding(&x, lengths: lengths, value: 100)
    let y = norm.forward(x, lengths: lengths, training: true)
    let valid = [(0, 0), (0, 1), (1, 0), (2, 0)]
    for j in 0..<2 {
      let values = valid.map { x[$0.0, $0.1, j] }
      let mean = values.reduce(0, +) / 4
      let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 4
      let outputs = valid.map { y[$0.0, $0.1, j] }
      XCTAssertEqual(outputs.reduce(0, +) / 4, 0, accuracy: 1e-12)
      XCTAssertEqual(outputs.map { $0 * $0 }.reduce(0, +) / 4, variance / (variance + 1e-5), accuracy: 1e-12)
      XCTAssertEqual(y[1, 1, j], 0)
      XCTAssertEqual(y[2, 1, j], 0)
      XCTAssertEqual(norm.runningMean[j], 0.1 * mean, accuracy: 1e-12)
      XCTAssertEqual(norm.runningVariance[j], 0.9 + 0.1 * variance * 4 / 3, accuracy: 1e-12)
      let evaluated = norm.forward(x, lengths: lengths, training: false)
      XCTAssertEqual(evaluated[2, 0, j], (x[2, 0, j] - 0.1 * mean) / (0.9 + 0.1 * variance * 4 / 3 + 1e-5).squareRoot(), accuracy: 1e-12)
    }
  }

  func testRecurrentGradientsForGRUAndRNN() {
    for cell in [RecurrentCell.gru, .rnn] {
      var generator = Xoshiro256StarStar(seed: 11)
      let layer = BidirectionalRecurrent<Double>(name: "rnn", cell: cell, inputCount: 3, hiddenCount: 4, generator: &generator)
      layer.normalization.shift.value = randomTensor(layer.normalization.shift.value.shape, seed: 12, bound: 0.5)
      // Unsorted lengths: utterance 0 is inactive inside the active prefix at steps 4 and 5.
      let lengths = [4, 6, 3]
      var x: Tensor<Double> = randomTensor([6, 3, 3], seed: 13)
      fillPadding(&x, lengths: lengths, value: 2)
      let r: Tensor<Double> = randomTensor([6, 3, 4], seed: 14)
      func loss(_ input: Tensor<Double>) -> Double { weightedSum(layer.forward(input, lengths: lengths, training: true), r) }

      _ = layer.forward(x, lengths: lengths, training: true)
      layer.zeroGradients()
      let inputGradient = layer.backward(r)!.scalars
      assertClose(inputGradient, numericalGradient(of: x, loss: loss), "\(cell) dx")
      for parameter in layer.parameters {
        assertClose(parameter.gradient.scalars, numericalGradient(of: \.value, in: parameter) { loss(x) }, "\(cell) \(parameter.name)")
      }
    }
  }

  /// Evaluation-mode forward pass against a direct per-utterance implementation of the cell
  /// equations: each utterance alone, backward direction from its own last frame, padding
  /// contents irrelevant and padding outputs zero.
  func testRecurrentMatchesPerUtteranceReference() {
    for cell in [RecurrentCell.gru, .rnn] {
      var generator = Xoshiro256StarStar(seed: 15)
      let (inputs, hidden) = (3, 4)
      let layer = BidirectionalRecurrent<Double>(name: "rnn", cell: cell, inputCount: inputs, hiddenCount: hidden, generator: &generator)
      let width = cell.gateCount * hidden
      let norm = layer.normalization
      norm.runningMean = randomTensor([2 * width], seed: 16, bound: 0.3)
      norm.runningVariance = Tensor(shape: [2 * width], scalars: (randomTensor([2 * width], seed: 17, bound: 0.5) as Tensor<Double>).scalars.map { 1 + $0 })
      norm.scale.value = randomTensor([2 * width], seed: 18, bound: 1.5)
      norm.shift.value = randomTensor([2 * width], seed: 19, bound: 0.5)
      let lengths = [2, 5, 4]
      var x: Tensor<Double> = randomTensor([5, 3, inputs], seed: 20)
      fillPadding(&x, lengths: lengths, value: 7)
      let y = layer.forward(x, lengths: lengths, training: false)

      let w = layer.inputWeight.value, u = layer.recurrentWeight.value
      func normalizedProjection(_ t: Int, _ b: Int) -> [Double] {
        (0..<(2 * width)).map { c in
          let p = (0..<inputs).reduce(0.0) { $0 + x[t, b, $1] * w[$1, c] }
          return (p - norm.runningMean[c]) / (norm.runningVariance[c] + 1e-5).squareRoot() * norm.scale.value[c] + norm.shift.value[c]
        }
      }
      func step(_ q: [Double], _ h: [Double], direction d: Int) -> [Double] {
        let g = (0..<width).map { c in
          (0..<hidden).reduce(layer.recurrentBias?.value[d, c] ?? 0) { $0 + h[$1] * u[d, $1, c] }
        }
        switch cell {
        case .rnn:
          return (0..<hidden).map { min(max(q[d * width + $0] + g[$0], 0), 20) }
        case .gru:
          return (0..<hidden).map { j in
            let r = 1 / (1 + exp(-(q[d * width + j] + g[j])))
            let z = 1 / (1 + exp(-(q[d * width + hidden + j] + g[hidden + j])))
            let n = tanh(q[d * width + 2 * hidden + j] + r * g[2 * hidden + j])
            return (1 - z) * n + z * h[j]
          }
        }
      }
      for b in 0..<3 {
        var expected = [[Double]](repeating: [Double](repeating: 0, count: hidden), count: 5)
        var h = [Double](repeating: 0, count: hidden)
        for t in 0..<lengths[b] {
          h = step(normalizedProjection(t, b), h, direction: 0)
          for j in 0..<hidden { expected[t][j] += h[j] }
        }
        h = [Double](repeating: 0, count: hidden)
        for t in (0..<lengths[b]).reversed() {
          h = step(normalizedProjection(t, b), h, direction: 1)
          for j in 0..<hidden { expected[t][j] += h[j] }
        }
        for t in 0..<5 {
          assertClose((0..<hidden).map { y[t, b, $0] }, expected[t], absolute: 1e-12, relative: 1e-12, "\(cell) t=\(t) b=\(b)")
        }
      }
    }
  }

  /// In training mode, changing padding contents changes nothing (statistics skip padding).
  func testRecurrentTrainingOutputIgnoresPadding() {
    var generator = Xoshiro256StarStar(seed: 21)
    let layer = BidirectionalRecurrent<Double>(name: "rnn", cell: .gru, inputCount: 2, hiddenCount: 3, generator: &generator)
    let lengths = [3, 5]
    var x: Tensor<Double> = randomTensor([5, 2, 2], seed: 22)
    fillPadding(&x, lengths: lengths, value: 0)
    let clean = layer.forward(x, lengths: lengths, training: true)
    fillPadding(&x, lengths: lengths, value: -40)
    XCTAssertEqual(layer.forward(x, lengths: lengths, training: true), clean)
  }

  func testLinearGradients() {
    var generator = Xoshiro256StarStar(seed: 23)
    let linear = Linear<Double>(name: "fc", inputCount: 4, outputCount: 3, generator: &generator)
    let x: Tensor<Double> = randomTensor([2, 3, 4], seed: 24)
    let r: Tensor<Double> = randomTensor([2, 3, 3], seed: 25)
    func loss(_ input: Tensor<Double>) -> Double { weightedSum(linear.forward(input, training: true), r) }
    _ = linear.forward(x, training: true)
    let inputGradient = linear.backward(r)!.scalars
    assertClose(inputGradient, numericalGradient(of: x, loss: loss), "fc dx")
    assertClose(linear.weight.gradient.scalars, numericalGradient(of: \.value, in: linear.weight) { loss(x) }, "fc dW")
  }

  /// The whole model (two conv layers, two GRU layers, output BN, FC) with the CTC loss:
  /// every parameter gradient from `computeGradients` against central differences of the
  /// batch-mean CTC loss.
  func testModelGradientsThroughCTC() throws {
    let config = ModelConfig(
      inputBins: 5,
      convLayers: [
        .init(channels: 2, kernelTime: 3, kernelFrequency: 3, strideTime: 2, strideFrequency: 2),
        .init(channels: 2, kernelTime: 3, kernelFrequency: 2, strideTime: 1, strideFrequency: 1),
      ],
      rnnCell: .gru, rnnLayers: 2, rnnHidden: 3, vocabularySize: 4, seed: 26)
    let model = try DS2Model<Double>(config: config)
    let batch = FeatureBatch<Double>(
      bins: 5, utterances: [(randomTensor([9, 5], seed: 27) as Tensor<Double>).scalars, (randomTensor([6, 5], seed: 28) as Tensor<Double>).scalars])
    let labels: [[Int32]] = [[1, 2], [3]]
    func loss() -> Double {
      let (logits, lengths) = model.forward(batch)
      return CTC.loss(logits: logits, lengths: lengths, labels: labels).losses.reduce(0, +) / 2
    }
    model.zeroGradients()
    let result = model.computeGradients(batch: batch, labels: labels)
    XCTAssertTrue(result.losses.allSatisfy(\.isFinite))
    for parameter in model.parameters {
      assertClose(parameter.gradient.scalars, numericalGradient(of: \.value, in: parameter, loss: loss), "model \(parameter.name)")
    }
  }
}
