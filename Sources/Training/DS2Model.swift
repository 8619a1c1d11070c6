import DS2Core
/// A padded batch of log-spectrogram features, time-major.
public struct FeatureBatch<Scalar: TensorScalar>: Sendable {
  /// `[T × N × bins]`, zero past each utterance's length; `T` is the longest length.
  public let features: Tensor<Scalar>
  /// Frames per utterance.
  public let lengths: [Int]

  /// Wraps an already padded `[T × N × bins]` tensor.
  /// - Precondition: one length per utterance, each in `0...T`.
  public init(features: Tensor<Scalar>, lengths: [Int]) {
    precondition(features.rank == 3, "features must be [T × N × bins], got \(features.shape)")
    precondition(features.shape[1] == lengths.count, "need one length per utterance")
    SequenceLayout.check(lengths: lengths, steps: features.shape[0])
    self.features = features
    self.lengths = lengths
  }

  /// Pads and interleaves per-utterance feature matrices, each row-major `[frames × bins]`
  /// (frame-major, as a feature extractor writes them).
  /// - Precondition: at least one utterance; every count is a multiple of `bins`.
  public init(bins: Int, utterances: [[Scalar]]) {
    precondition(bins > 0 && !utterances.isEmpty, "need positive bins and at least one utterance")
    let lengths = utterances.map { utterance in
      precondition(utterance.count % bins == 0, "utterance size \(utterance.count) is not a multiple of \(bins) bins")
      return utterance.count / bins
    }
    let steps = lengths.max()!
    let batch = utterances.count
    var features = Tensor<Scalar>(shape: [steps, batch, bins])
    features.withUnsafeMutableBufferPointer { destination in
      for (b, utterance) in utterances.enumerated() {
        for t in 0..<lengths[b] {
          for k in 0..<bins { destination[(t * batch + b) * bins + k] = utterance[t * bins + k] }
        }
      }
    }
    self.init(features: features, lengths: lengths)
  }

  /// Number of utterances `N`.
  public var batchSize: Int { lengths.count }
}

/// The Deep Speech 2 acoustic model (Amodei et al. 2016) in the deepspeech.pytorch layout:
/// conv stack (conv → BN → clipped ReLU), bidirectional recurrent layers with sequence-wise BN
/// on the input projection and summed directions, sequence-wise BN, and a bias-free linear
/// layer to vocabulary logits.
///
/// All activations are time-major `[T × N × features]`. Use `forward`, then
/// `backward(d loss/d logits)` (or `computeGradients`), then an `Optimizer` over `parameters`.
/// Tensors returned by `forward` are owned by the model and overwritten by the next call.
public final class DS2Model<Scalar: TensorScalar>: Layer {
  public let config: ModelConfig
  /// Convolutions, each followed by `convolutionNorms[i]` (which applies the clipped ReLU).
  public let convolutions: [Convolution2D<Scalar>]
  public let convolutionNorms: [BatchNorm<Scalar>]
  public let recurrentLayers: [BidirectionalRecurrent<Scalar>]
  /// Sequence-wise normalization before the output layer.
  public let outputNorm: BatchNorm<Scalar>
  /// `[rnnHidden × vocabularySize]` projection to logits.
  public let output: Linear<Scalar>
  /// Training mode uses batch statistics and caches activations for `backward`; evaluation
  /// mode uses running statistics.
  public var isTraining = true
  public let parameters: [Parameter<Scalar>]
  /// The threads the model computes on (`WorkerPool`); results do not depend on it.
  public var pool: WorkerPool { didSet { handPoolToLayers() } }
  /// Set in data-parallel training: every batch normalization sums its statistics over
  /// the ranks (`BatchNorm.collective`).
  public var collective: (any Collective)? { didSet { for norm in allNorms { norm.collective = collective } } }

  private func handPoolToLayers() {
    for layer in convolutions { layer.pool = pool }
    for norm in allNorms { norm.pool = pool }
    for layer in recurrentLayers { layer.pool = pool }
    output.pool = pool
  }

  /// Builds the model with weights drawn from `config.seed`, computing on `pool`.
  /// - Throws: `TrainingError.invalidConfiguration`.
  public init(config: ModelConfig, pool: WorkerPool = .serial) throws {
    try config.validate()
    self.config = config
    var generator = Xoshiro256StarStar(seed: config.seed)
    var convolutions: [Convolution2D<Scalar>] = []
    var norms: [BatchNorm<Scalar>] = []
    var channels = 1
    for (index, layer) in config.convLayers.enumerated() {
      convolutions.append(Convolution2D(
        name: "conv\(index)", inputChannels: channels, outputChannels: layer.channels,
        kernelTime: layer.kernelTime, kernelFrequency: layer.kernelFrequency,
        strideTime: layer.strideTime, strideFrequency: layer.strideFrequency,
        paddingTime: layer.paddingTime, paddingFrequency: layer.paddingFrequency, generator: &generator))
      norms.append(BatchNorm(name: "conv\(index).norm", featureCount: layer.channels, clipsOutput: true))
      channels = layer.channels
    }
    var recurrent: [BidirectionalRecurrent<Scalar>] = []
    let scratch = RecurrentScratch<Scalar>()
    for index in 0..<config.rnnLayers {
      recurrent.append(BidirectionalRecurrent(
        name: "rnn\(index)", cell: config.rnnCell,
        inputCount: index == 0 ? config.recurrentInputCount : config.rnnHidden,
        hiddenCount: config.rnnHidden, scratch: scratch, generator: &generator))
    }
    self.convolutions = convolutions
    convolutionNorms = norms
    recurrentLayers = recurrent
    outputNorm = BatchNorm(name: "outputNorm", featureCount: config.rnnHidden)
    output = Linear(name: "output", inputCount: config.rnnHidden, outputCount: config.vocabularySize, generator: &generator)
    var parameters: [Parameter<Scalar>] = []
    for (convolution, norm) in zip(convolutions, norms) { parameters += convolution.parameters + norm.parameters }
    for layer in recurrent { parameters += layer.parameters }
    parameters += outputNorm.parameters + output.parameters
    self.parameters = parameters
    self.pool = pool
    handPoolToLayers()
  }

  /// Output frames per utterance for input lengths (in frames).
  public func outputLengths(_ inputLengths: [Int]) -> [Int] {
    inputLengths.map { config.outputLength(inputFrames: $0) }
  }

  /// Runs the model. Returns logits `[T' × N × vocabularySize]` (pre-softmax) and the valid
  /// output frames per utterance; logits at padding frames are not meaningful.
  @_specialize(exported: true, where Scalar == Float)
  public func forward(_ batch: FeatureBatch<Scalar>) -> (logits: Tensor<Scalar>, lengths: [Int]) {
    let input = batch.features
    precondition(input.shape[2] == config.inputBins, "expected \(config.inputBins) bins, got \(input.shape[2])")
    var lengths = batch.lengths
    var x = input.reshaped(to: [input.shape[0], input.shape[1], input.shape[2], 1])
    for (convolution, norm) in zip(convolutions, convolutionNorms) {
      _ = convolution.forward(x, lengths: lengths, training: isTraining)
      lengths = lengths.map(convolution.outputLength)
      // In place: the convolution's buffer becomes the block output, reused every step.
      norm.normalizeInPlace(&convolution.output, lengths: lengths, training: isTraining)
      x = convolution.output
    }
    var sequence = x.reshaped(to: [x.shape[0], x.shape[1], x.shape[2] * x.shape[3]])
    for layer in recurrentLayers {
      sequence = layer.forward(sequence, lengths: lengths, training: isTraining)
    }
    sequence = outputNorm.forward(sequence, lengths: lengths, training: isTraining)
    return (output.forward(sequence, training: isTraining), lengths)
  }

  /// Back-propagates d(loss)/d(logits) (`[T' × N × vocabularySize]`) through the last training
  /// `forward`, accumulating every parameter gradient.
  @_specialize(exported: true, where Scalar == Float)
  public func backward(_ logitsGradient: Tensor<Scalar>) {
    var gradient = output.backward(logitsGradient)!
    gradient = outputNorm.backward(gradient)
    for layer in recurrentLayers.dropFirst().reversed() {
      gradient = layer.backward(gradient)!
    }
    recurrentLayers[0].backward(gradient, computeInputGradient: !convolutions.isEmpty)
    // Each conv block's output gradient lives in the next layer's buffer; normalize it in place.
    for index in convolutions.indices.reversed() {
      let blockGradient: Tensor<Scalar>
      if index == convolutions.count - 1 {
        convolutionNorms[index].backpropagateInPlace(&recurrentLayers[0].inputGradient)
        blockGradient = recurrentLayers[0].inputGradient
      } else {
        convolutionNorms[index].backpropagateInPlace(&convolutions[index + 1].inputGradient)
        blockGradient = convolutions[index + 1].inputGradient
      }
      convolutions[index].backward(blockGradient.reshaped(to: convolutions[index].output.shape), computeInputGradient: index > 0)
    }
    // Gradient buffers are rebuilt every step; freed, they stay out of the next forward's peak.
    for layer in recurrentLayers { layer.releaseGradientBuffers() }
    for convolution in convolutions { convolution.inputGradient = Tensor(shape: [0]) }
  }

  /// One training computation: `forward` (training mode), CTC loss against `labels`, and
  /// `backward` of the batch-mean loss (`Σ finite losses / N`, as the PyTorch peer uses),
  /// accumulating parameter gradients. Utterances whose loss is infinite contribute no gradient.
  /// - Returns: the per-utterance losses and the logits gradient.
  @_specialize(exported: true, where Scalar == Float)
  ///
  /// In data-parallel training each rank passes its share of the batch and the global batch
  /// size as `meanOver`, so that the gradients summed over the ranks are the global batch's.
  public func computeGradients(batch: FeatureBatch<Scalar>, labels: [[Int32]], meanOver: Int? = nil) -> CTCResult<Scalar> {
    isTraining = true
    let (logits, lengths) = forward(batch)
    let result = CTC.loss(
      logits: logits, lengths: lengths, labels: labels, gradientScale: 1 / Scalar(meanOver ?? batch.batchSize), pool: pool)
    backward(result.gradient)
    return result
  }

  /// A training step's part for a rank with no utterance in this batch (data-parallel
  /// training with fewer utterances than ranks): every parameter gradient is zero, and the
  /// rank joins each batch normalization's sums in the order the others make them.
  public func participateWithoutData() {
    zeroGradients()
    let forwardOrder = convolutionNorms + recurrentLayers.map(\.normalization) + [outputNorm]
    for norm in forwardOrder { norm.participateWithoutData(backward: false) }
    for norm in forwardOrder.reversed() { norm.participateWithoutData(backward: true) }
  }

  /// Every parameter and running statistic by name (`"rnn0.inputWeight"`,
  /// `"conv0.norm.runningMean"`, …), for checkpoints.
  public func exportState() -> [String: Tensor<Scalar>] {
    var state: [String: Tensor<Scalar>] = [:]
    for parameter in parameters { state[parameter.name] = parameter.value }
    for norm in allNorms {
      state[norm.name + ".runningMean"] = norm.runningMean
      state[norm.name + ".runningVariance"] = norm.runningVariance
    }
    return state
  }

  /// Replaces every parameter and running statistic from `exportState` output.
  /// - Throws: `TrainingError.stateMismatch` when a name is missing or extra or a shape differs;
  ///   the model is unchanged then.
  public func importState(_ state: [String: Tensor<Scalar>]) throws {
    let current = exportState()
    for (name, tensor) in current {
      guard let replacement = state[name] else { throw TrainingError.stateMismatch("missing \(name)") }
      guard replacement.shape == tensor.shape else {
        throw TrainingError.stateMismatch("\(name) has shape \(replacement.shape), expected \(tensor.shape)")
      }
    }
    if let extra = state.keys.first(where: { current[$0] == nil }) { throw TrainingError.stateMismatch("unexpected \(extra)") }
    for parameter in parameters { parameter.value = state[parameter.name]! }
    for norm in allNorms {
      norm.runningMean = state[norm.name + ".runningMean"]!
      norm.runningVariance = state[norm.name + ".runningVariance"]!
    }
  }

  private var allNorms: [BatchNorm<Scalar>] {
    convolutionNorms + recurrentLayers.map(\.normalization) + [outputNorm]
  }
}
