import Foundation
import XCTest

@testable import Training

final class ModelTests: XCTestCase {
  private let tinyConfig = ModelConfig(
    inputBins: 8,
    convLayers: [.init(channels: 4, kernelTime: 5, kernelFrequency: 3, strideTime: 2, strideFrequency: 2)],
    rnnCell: .gru, rnnLayers: 2, rnnHidden: 16, vocabularySize: 6, seed: 42)

  private func features(frames: [Int], bins: Int, seed: UInt64) -> FeatureBatch<Float> {
    FeatureBatch(
      bins: bins,
      utterances: frames.enumerated().map { (index, count) in
        (randomTensor([count, bins], seed: seed + UInt64(index)) as Tensor<Float>).scalars
      })
  }

  /// The full model memorizes one batch: the mean CTC loss falls below 5 % of its initial
  /// value within 300 steps, and greedy decoding then reproduces the labels. Runs the GRU model
  /// with Adam and the clipped-ReLU RNN model with Nesterov SGD.
  func testOverfitsSingleBatch() throws {
    let batch = features(frames: [40, 34, 29, 25], bins: 8, seed: 1)
    let labels: [[Int32]] = [[1, 2, 3, 4, 5, 1, 2], [5, 5, 1, 3, 3], [2, 4, 1, 4, 2], [3, 1, 1, 5]]
    var rnnConfig = tinyConfig
    rnnConfig.rnnCell = .rnn
    let runs: [(ModelConfig, any Optimizer<Float>)] = [
      (tinyConfig, Adam<Float>(learningRate: 0.005)),
      (rnnConfig, SGD<Float>(learningRate: 0.003, momentum: 0.9)),
    ]
    for (config, optimizer) in runs {
      let model = try DS2Model<Float>(config: config)
      var first: Float = 0
      var last: Float = 0
      for step in 0..<300 {
        model.zeroGradients()
        let loss = model.computeGradients(batch: batch, labels: labels).losses.reduce(0, +) / Float(labels.count)
        if step == 0 { first = loss }
        last = loss
        if loss < 0.01 * first { break }
        clipGradientNorm(model.parameters, maxNorm: 100)
        optimizer.step(model.parameters)
      }
      XCTAssertTrue(first.isFinite && first > 1, "\(config.rnnCell)")
      XCTAssertLessThan(last, 0.05 * first, "\(config.rnnCell): initial \(first), final \(last)")
      let (logits, lengths) = model.forward(batch)
      XCTAssertEqual(GreedyDecoder.decode(logits, lengths: lengths), labels, "\(config.rnnCell)")
    }
  }

  func testSeededInitializationIsDeterministic() throws {
    let a = try DS2Model<Float>(config: tinyConfig)
    let b = try DS2Model<Float>(config: tinyConfig)
    var other = tinyConfig
    other.seed = 43
    let c = try DS2Model<Float>(config: other)
    XCTAssertEqual(a.parameters.map(\.value), b.parameters.map(\.value))
    XCTAssertNotEqual(a.parameters.map(\.value), c.parameters.map(\.value))
    XCTAssertEqual(Set(a.parameters.map(\.name)).count, a.parameters.count, "parameter names are unique")
  }

  /// The PyTorch peer's shape: 161 bins → 81 after the conv, 32 × 81 = 2592 GRU inputs,
  /// T' = ⌊(T + 10 − 11)/2⌋ + 1 frames, 29 logits.
  func testDS2SmallShapes() throws {
    let config = ModelConfig.ds2Small
    XCTAssertEqual(config.outputBins, 81)
    XCTAssertEqual(config.recurrentInputCount, 2592)
    XCTAssertEqual(config.outputLength(inputFrames: 1000), 500)
    XCTAssertEqual(config.outputLength(inputFrames: 21), 11)
    let model = try DS2Model<Float>(config: config)
    let (logits, lengths) = model.forward(features(frames: [21, 14], bins: 161, seed: 2))
    XCTAssertEqual(logits.shape, [11, 2, 29])
    XCTAssertEqual(lengths, [11, 7])
    XCTAssertEqual(lengths, model.outputLengths([21, 14]))
  }

  /// Evaluation mode: an utterance's logits do not depend on the rest of its batch or on the
  /// padding (per-utterance lengths are honoured through conv, recurrences and norms).
  func testEvaluationIsIndependentOfBatchComposition() throws {
    var config = tinyConfig
    config.rnnCell = .rnn
    config.convLayers.append(.init(channels: 3, kernelTime: 3, kernelFrequency: 3, strideTime: 1, strideFrequency: 1))
    let model = try DS2Model<Double>(config: config)
    // Give the running statistics non-trivial values.
    let warmup = FeatureBatch<Double>(bins: 8, utterances: [(randomTensor([17, 8], seed: 3) as Tensor<Double>).scalars])
    _ = model.computeGradients(batch: warmup, labels: [[1]])
    model.isTraining = false
    let utterances = [9, 16, 12].enumerated().map { (randomTensor([$0.element, 8], seed: 10 + UInt64($0.offset)) as Tensor<Double>).scalars }
    let (together, lengths) = model.forward(FeatureBatch(bins: 8, utterances: utterances))
    for (b, single) in utterances.enumerated() {
      let (alone, aloneLengths) = model.forward(FeatureBatch(bins: 8, utterances: [single]))
      XCTAssertEqual(aloneLengths[0], lengths[b])
      assertClose(alone.scalars, utterance(together, b, length: lengths[b]).scalars, absolute: 1e-12, relative: 1e-10, "utterance \(b)")
    }
  }

  func testStateExportImportRoundTrip() throws {
    let source = try DS2Model<Double>(config: tinyConfig)
    _ = source.computeGradients(batch: FeatureBatch(bins: 8, utterances: [(randomTensor([12, 8], seed: 4) as Tensor<Double>).scalars]), labels: [[2]])
    var otherConfig = tinyConfig
    otherConfig.seed = 7
    let target = try DS2Model<Double>(config: otherConfig)
    let state = source.exportState()
    XCTAssertNotNil(state["conv0.norm.runningMean"])
    try target.importState(state)
    source.isTraining = false
    target.isTraining = false
    let batch = FeatureBatch<Double>(bins: 8, utterances: [(randomTensor([10, 8], seed: 5) as Tensor<Double>).scalars])
    XCTAssertEqual(source.forward(batch).logits, target.forward(batch).logits)

    var missing = state
    missing["output.weight"] = nil
    XCTAssertThrowsError(try target.importState(missing)) { XCTAssertEqual($0 as? TrainingError, .stateMismatch("missing output.weight")) }
    var reshaped = state
    reshaped["output.weight"] = Tensor(shape: [1])
    XCTAssertThrowsError(try target.importState(reshaped))
    var extra = state
    extra["bogus"] = Tensor(shape: [1])
    XCTAssertThrowsError(try target.importState(extra))
  }

  func testConfigCodingAndValidation() throws {
    let data = try JSONEncoder().encode(ModelConfig.ds2Small)
    XCTAssertEqual(try JSONDecoder().decode(ModelConfig.self, from: data), .ds2Small)
    XCTAssertNoThrow(try ModelConfig.ds2Small.validate())
    var config = ModelConfig.ds2Small
    config.rnnLayers = 8
    XCTAssertThrowsError(try config.validate())
    config = .ds2Small
    config.convLayers = [.ds2First, .ds2Second, .ds2Second, .ds2Second]
    XCTAssertThrowsError(try config.validate())
    config = .ds2Small
    config.convLayers = [.init(channels: 4, kernelTime: 3, kernelFrequency: 41, strideTime: 1, strideFrequency: 1, paddingTime: 1, paddingFrequency: 0)]
    config.inputBins = 40
    XCTAssertThrowsError(try DS2Model<Float>(config: config)) { error in
      XCTAssertEqual(error as? TrainingError, .invalidConfiguration("convLayers[0] leaves no frequency bins"))
    }
  }
}
