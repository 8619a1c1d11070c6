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
      inputBins: bins,
      convLayers: convolutions.map {
        .init(
          channels: $0.channels, kernelTime: $0.kernelTime, kernelFrequency: $0.kernelFrequency,
          strideTime: $0.strideTime, strideFrequency: $0.strideFrequency, paddingTime: $0.paddingTime,
          paddingFrequency: $0.paddingFrequency)
      },
      rnnCell: cell, rnnLayers: recurrentLayers, rnnHidden: hidden, vocabularySize: vocabularySize, seed: seed)
  }
}

/// Which optimizer updates the weights.
public enum OptimizerKind: String, Sendable, Codable, CaseIterable {
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

  /// Loads a model YAML.
  /// - Throws: `ConfigurationError` naming the file and the field.
  public static func load(path: String) throws -> ModelRecipe {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw ConfigurationError("model \(path): cannot read the file")
    }
    guard let text = String(data: data, encoding: .utf8) else {
      throw ConfigurationError("model \(path): not UTF-8 text")
    }
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

  /// Checks the settings that need no dataset.
  /// - Throws: `ConfigurationError` naming the field.
  public func validate() throws {
    func check(_ condition: Bool, _ message: @autoclosure () -> String) throws {
      if !condition { throw ConfigurationError(message()) }
    }
    try check((0...3).contains(model.convolutions.count), "model.convolutions: at most 3 layers")
    try check((1...7).contains(model.recurrentLayers), "model.recurrentLayers must be 1–7")
    try check(model.hidden > 0, "model.hidden must be positive")
    try check(training.epochs >= 1, "training.epochs must be ≥ 1")
    try check(training.batchSize >= 1, "training.batchSize must be ≥ 1")
    if let cap = training.maxBatchFrames { try check(cap > 0, "training.maxBatchFrames must be positive") }
    try check(training.learningRate > 0 && training.learningRate.isFinite, "training.learningRate must be positive")
    try check((0..<1).contains(training.momentum), "training.momentum must lie in [0, 1)")
    try check(training.annealing >= 1, "training.annealing must be ≥ 1")
    try check(training.maxGradientNorm > 0, "training.maxGradientNorm must be positive")
    try check(training.checkpointEverySteps >= 0, "training.checkpointEverySteps must be ≥ 0")
    try check(training.maxFrames >= 0, "training.maxFrames must be ≥ 0")
    try check(training.threads >= 0, "training.threads must be ≥ 0 (0 = one per core)")
    try check(decoding.beamWidth >= 1, "decoding.beamWidth must be ≥ 1")
    try check(decoding.alpha >= 0 && decoding.beta.isFinite, "decoding.alpha must be ≥ 0 and beta finite")
  }

  /// The recipe as YAML.
  public func yaml() throws -> String { try YAMLEncoder().encode(self) }
}
