import DS2Core
import Foundation
import Training
import Yams

/// The architecture section of a model YAML. Input bins and vocabulary size come from the
/// dataset, so one file fits English (29 symbols) and Mandarin (thousands) alike.
public struct ModelSection: Sendable, Codable, Equatable {
  /// One conv layer; padding defaults to half the kernel (deepspeech.pytorch).
  public struct Convolution: Sendable, Codable, Equatable {
    /// Output channels (DS2: 32).
    public var channels = 32
    /// Kernel extent along time, frames (DS2: 11).
    public var kernelTime = 11
    /// Kernel extent along frequency, bins (DS2: 41).
    public var kernelFrequency = 41
    /// Stride along time, frames (DS2: 2).
    public var strideTime = 2
    /// Stride along frequency, bins (DS2: 2).
    public var strideFrequency = 2
    /// Zero padding along time, frames; default `kernelTime / 2`.
    public var paddingTime: Int?
    /// Zero padding along frequency, bins; default `kernelFrequency / 2`.
    public var paddingFrequency: Int?

    enum CodingKeys: String, CodingKey, CaseIterable {
      case channels, kernelTime, kernelFrequency, strideTime, strideFrequency, paddingTime, paddingFrequency
    }

    public init(channels: Int = 32, kernelTime: Int = 11, kernelFrequency: Int = 41, strideTime: Int = 2, strideFrequency: Int = 2) {
      self.channels = channels
      self.kernelTime = kernelTime
      self.kernelFrequency = kernelFrequency
      self.strideTime = strideTime
      self.strideFrequency = strideFrequency
    }

    public init(from decoder: any Decoder) throws {
      try decoder.rejectUnknownKeys(CodingKeys.self)
      let c = try decoder.container(keyedBy: CodingKeys.self)
      let d = Convolution()
      channels = try c.decode(.channels, default: d.channels)
      kernelTime = try c.decode(.kernelTime, default: d.kernelTime)
      kernelFrequency = try c.decode(.kernelFrequency, default: d.kernelFrequency)
      strideTime = try c.decode(.strideTime, default: d.strideTime)
      strideFrequency = try c.decode(.strideFrequency, default: d.strideFrequency)
      paddingTime = try c.decodeIfPresent(Int.self, forKey: .paddingTime)
      paddingFrequency = try c.decodeIfPresent(Int.self, forKey: .paddingFrequency)
    }
  }

  /// 1–3 conv layers over time × frequency (0 is allowed: the spectrogram feeds the RNNs).
  public var convolutions = [Convolution()]
  /// `gru` or `rnn` (simple recurrence with the clipped ReLU).
  public var cell: RecurrentCell = .gru
  /// Bidirectional recurrent layers, 1–7.
  public var recurrentLayers = 3
  /// Hidden units per direction (directions are summed).
  public var hidden = 256
  /// Seed of the weight initialization.
  public var seed: UInt64 = 1

  enum CodingKeys: String, CodingKey, CaseIterable { case convolutions, cell, recurrentLayers, hidden, seed }

  public init() {}

  public init(from decoder: any Decoder) throws {
    try decoder.rejectUnknownKeys(CodingKeys.self)
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = ModelSection()
    convolutions = try c.decode(.convolutions, default: d.convolutions)
    cell = try c.decode(.cell, default: d.cell)
    recurrentLayers = try c.decode(.recurrentLayers, default: d.recurrentLayers)
    hidden = try c.decode(.hidden, default: d.hidden)
    seed = try c.decode(.seed, default: d.seed)
  }

  /// The model for a dataset with `bins` feature bins and `vocabularySize` symbols.
  public func config(bins: Int, vocabularySize: Int) -> ModelConfig {
    ModelConfig(
      inputBins: bins, convLayers: convolutionLayers, rnnCell: cell, rnnLayers: recurrentLayers, rnnHidden: hidden,
      vocabularySize: vocabularySize, seed: seed)
  }

  /// The conv layers, paddings resolved.
  var convolutionLayers: [ModelConfig.ConvolutionLayer] {
    convolutions.map {
      .init(
        channels: $0.channels, kernelTime: $0.kernelTime, kernelFrequency: $0.kernelFrequency,
        strideTime: $0.strideTime, strideFrequency: $0.strideFrequency, paddingTime: $0.paddingTime,
        paddingFrequency: $0.paddingFrequency)
    }
  }

  /// Checks the shape within `ModelConfig`'s ranges (layer counts, units, each conv
  /// layer's channels, kernels, strides and paddings). The weight count, which depends on
  /// the dataset's bins, is checked when the model is built.
  /// - Throws: `ConfigurationError` naming the field (relative to this section).
  public func validate() throws {
    try ConfigurationCheck.value(convolutions.count, in: ModelConfig.convolutionLayerCountRange, "convolutions", allowed: "0 … 3 layers")
    for (index, layer) in convolutionLayers.enumerated() {
      try validatingSection("convolutions[\(index)]") { try layer.validate() }
    }
    try ConfigurationCheck.value(recurrentLayers, in: ModelConfig.recurrentLayerRange, "recurrentLayers")
    try ConfigurationCheck.value(hidden, in: ModelConfig.hiddenRange, "hidden")
  }
}

/// Which optimizer updates the weights.
public enum OptimizerKind: String, Sendable, ConfigurationChoice {
  /// SGD with (Nesterov) momentum, DS2's choice.
  case sgd
  /// Adam with bias correction.
  case adam
}

/// The optimization section of a model YAML.
public struct TrainingSection: Sendable, Codable, Equatable {
  /// Passes over the training data.
  public var epochs = 20
  /// Utterances per batch (the cap when `maxBatchFrames` is also set).
  public var batchSize = 16
  /// Optional cap on padded frames per batch (`utterances × longest frames`); batches of
  /// short utterances then hold more of them.
  public var maxBatchFrames: Int?
  public var optimizer: OptimizerKind = .sgd
  /// Initial learning rate.
  public var learningRate = 3e-4
  /// SGD momentum μ (DS2: 0.99).
  public var momentum = 0.99
  /// Nesterov's form of momentum.
  public var nesterov = true
  /// The learning rate is divided by this after every epoch (DS2: 1.2; 1 = constant).
  public var annealing = 1.2
  /// Global gradient-norm clipping threshold.
  public var maxGradientNorm = 400.0
  /// SortaGrad: epoch 1 visits batches in ascending length, later epochs in a seeded
  /// shuffled order. False shuffles every epoch.
  public var sortaGrad = true
  /// Seed of the batch shuffles.
  public var seed: UInt64 = 1
  /// Write `latest.ckpt` every this many steps (0 = only at epoch ends).
  public var checkpointEverySteps = 500
  /// Training splits; default: the dataset's training splits.
  public var trainSplits: [String]?
  /// Split evaluated after each epoch; default: the first non-training split (`dev*` first).
  public var evaluationSplit: String?
  /// Skip utterances longer than this many frames (0 = keep all).
  public var maxFrames = 0
  /// Threads for the computation (split matrix products, CTC, recurrent directions); 0 = one per core.
  public var threads = 0

  enum CodingKeys: String, CodingKey, CaseIterable {
    case epochs, batchSize, maxBatchFrames, optimizer, learningRate, momentum, nesterov, annealing, maxGradientNorm
    case sortaGrad, seed, checkpointEverySteps, trainSplits, evaluationSplit, maxFrames, threads
  }

  public init() {}

  public init(from decoder: any Decoder) throws {
    try decoder.rejectUnknownKeys(CodingKeys.self)
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = TrainingSection()
    epochs = try c.decode(.epochs, default: d.epochs)
    batchSize = try c.decode(.batchSize, default: d.batchSize)
    maxBatchFrames = try c.decodeIfPresent(Int.self, forKey: .maxBatchFrames)
    optimizer = try c.decode(.optimizer, default: d.optimizer)
    learningRate = try c.decode(.learningRate, default: d.learningRate)
    momentum = try c.decode(.momentum, default: d.momentum)
    nesterov = try c.decode(.nesterov, default: d.nesterov)
    annealing = try c.decode(.annealing, default: d.annealing)
    maxGradientNorm = try c.decode(.maxGradientNorm, default: d.maxGradientNorm)
    sortaGrad = try c.decode(.sortaGrad, default: d.sortaGrad)
    seed = try c.decode(.seed, default: d.seed)
    checkpointEverySteps = try c.decode(.checkpointEverySteps, default: d.checkpointEverySteps)
    trainSplits = try c.decodeIfPresent([String].self, forKey: .trainSplits)
    evaluationSplit = try c.decodeIfPresent(String.self, forKey: .evaluationSplit)
    maxFrames = try c.decode(.maxFrames, default: d.maxFrames)
    threads = try c.decode(.threads, default: d.threads)
  }

  /// Threads to use: `threads`, or one per core when 0.
  public var effectiveThreads: Int { threads > 0 ? threads : ProcessInfo.processInfo.activeProcessorCount }

  /// Epochs accepted.
  public static let epochsRange = 1...1_000_000
  /// Utterances per batch accepted.
  public static let batchSizeRange = 1...65_536
  /// Padded frames per batch accepted (`maxBatchFrames`).
  public static let maxBatchFramesRange = 1...(1 << 30)
  /// Learning rates accepted: above 0, at most this.
  public static let maximumLearningRate = 10.0
  /// Annealing divisors accepted.
  public static let annealingRange = 1.0...10.0
  /// Gradient-norm clipping thresholds accepted: above 0, at most this.
  public static let maximumGradientNormLimit = 1e6
  /// `checkpointEverySteps` and `maxFrames` values accepted (0 = off).
  public static let countRange = 0...1_000_000_000

  /// Checks every number: finite and within the ranges above; momentum in [0, 1);
  /// threads within `threadCountRange`.
  /// - Throws: `ConfigurationError` naming the field (relative to this section).
  public func validate() throws {
    try ConfigurationCheck.value(epochs, in: Self.epochsRange, "epochs")
    try ConfigurationCheck.value(batchSize, in: Self.batchSizeRange, "batchSize", unit: "utterances")
    if let maxBatchFrames {
      try ConfigurationCheck.value(maxBatchFrames, in: Self.maxBatchFramesRange, "maxBatchFrames", unit: "frames")
    }
    try ConfigurationCheck.value(learningRate, above: 0, atMost: Self.maximumLearningRate, "learningRate")
    try ConfigurationCheck.value(momentum, in: 0..<1, "momentum")
    try ConfigurationCheck.value(annealing, in: Self.annealingRange, "annealing")
    try ConfigurationCheck.value(maxGradientNorm, above: 0, atMost: Self.maximumGradientNormLimit, "maxGradientNorm")
    try ConfigurationCheck.value(checkpointEverySteps, in: Self.countRange, "checkpointEverySteps", unit: "steps")
    try ConfigurationCheck.value(maxFrames, in: Self.countRange, "maxFrames", unit: "frames")
    try ConfigurationCheck.value(threads, in: threadCountRange, "threads", allowed: threadCountAllowed)
  }
}

/// The decoding section of a model YAML (evaluation and transcription).
public struct DecodingSection: Sendable, Codable, Equatable {
  /// Prefixes kept by the CTC prefix beam search.
  public var beamWidth = 16
  /// Word n-gram language model in ARPA format; relative to the current directory.
  public var languageModel: String?
  /// Weight α of the language model's log-probability (DS2 §7).
  public var alpha = 0.5
  /// Word insertion bonus β per word.
  public var beta = 1.0

  enum CodingKeys: String, CodingKey, CaseIterable { case beamWidth, languageModel, alpha, beta }

  public init() {}

  public init(from decoder: any Decoder) throws {
    try decoder.rejectUnknownKeys(CodingKeys.self)
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = DecodingSection()
    beamWidth = try c.decode(.beamWidth, default: d.beamWidth)
    languageModel = try c.decodeIfPresent(String.self, forKey: .languageModel)
    alpha = try c.decode(.alpha, default: d.alpha)
    beta = try c.decode(.beta, default: d.beta)
  }

  /// Beam widths accepted.
  public static let beamWidthRange = 1...4_096
  /// Language-model weights α accepted.
  public static let alphaRange = 0.0...100.0
  /// Word bonuses β accepted.
  public static let betaRange = -100.0...100.0

  /// - Throws: `ConfigurationError` naming the field (relative to this section).
  public func validate() throws {
    try ConfigurationCheck.value(beamWidth, in: Self.beamWidthRange, "beamWidth")
    try ConfigurationCheck.value(alpha, in: Self.alphaRange, "alpha")
    try ConfigurationCheck.value(beta, in: Self.betaRange, "beta")
  }
}

/// A model YAML (`recipes/models/*.yaml`): architecture, optimization and decoding.
/// Every field has a default; unknown keys are errors.
public struct ModelRecipe: Sendable, Codable, Equatable {
  /// A name for logs.
  public var name = "model"
  public var model = ModelSection()
  public var training = TrainingSection()
  public var decoding = DecodingSection()

  enum CodingKeys: String, CodingKey, CaseIterable { case name, model, training, decoding }

  public init() {}

  public init(from decoder: any Decoder) throws {
    try decoder.rejectUnknownKeys(CodingKeys.self)
    let c = try decoder.container(keyedBy: CodingKeys.self)
    name = try c.decode(.name, default: "model")
    model = try c.decode(.model, default: ModelSection())
    training = try c.decode(.training, default: TrainingSection())
    decoding = try c.decode(.decoding, default: DecodingSection())
  }

  /// The model `ds2-data train` uses without `--model`: small enough to train on the
  /// bundled 3-minute corpus in a couple of minutes (one 8-channel DS2 conv layer,
  /// 2 bidirectional GRU layers of 96 units, Adam).
  public static let small: ModelRecipe = {
    var recipe = ModelRecipe()
    recipe.name = "ds2-mini"
    recipe.model.convolutions = [ModelSection.Convolution(channels: 8)]
    recipe.model.recurrentLayers = 2
    recipe.model.hidden = 96
    recipe.training.epochs = 30
    recipe.training.batchSize = 8
    recipe.training.optimizer = .adam
    recipe.training.learningRate = 1e-3
    recipe.training.annealing = 1.05
    recipe.training.checkpointEverySteps = 0
    return recipe
  }()

  /// Loads and validates a model YAML (within `YAMLText`'s size and nesting limits).
  /// - Throws: `ConfigurationError` naming the file and the field.
  public static func load(path: String) throws -> ModelRecipe {
    let text = try YAMLText.read(path: path, kind: "model")
    let recipe: ModelRecipe
    do {
      recipe = try YAMLDecoder().decode(ModelRecipe.self, from: text)
    } catch let error as DecodingError {
      throw ConfigurationError("model \(path): \(error.configurationMessage)")
    } catch {
      throw ConfigurationError("model \(path): \(error)")
    }
    do {
      try recipe.validate()
    } catch let error as ConfigurationError {
      throw ConfigurationError("model \(path): \(error.message)")
    }
    return recipe
  }

  /// Checks the settings that need no dataset: every number finite and within its
  /// section's documented range.
  /// - Throws: `ConfigurationError` naming the field (`training.epochs: …`).
  public func validate() throws {
    try validatingSection("model") { try model.validate() }
    try validatingSection("training") { try training.validate() }
    try validatingSection("decoding") { try decoding.validate() }
  }

  /// The recipe as YAML.
  public func yaml() throws -> String { try YAMLEncoder().encode(self) }
}
