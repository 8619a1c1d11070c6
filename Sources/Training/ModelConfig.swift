/// Errors of the training core that come from user input (configuration, checkpoints).
public enum TrainingError: Error, Equatable, CustomStringConvertible {
  /// A `ModelConfig` field is out of range.
  case invalidConfiguration(String)
  /// Imported model state does not match the model (missing, extra or mis-shaped tensors).
  case stateMismatch(String)

  public var description: String {
    switch self {
    case .invalidConfiguration(let message): "invalid model configuration: \(message)"
    case .stateMismatch(let message): "model state mismatch: \(message)"
    }
  }
}

/// Shape of a Deep Speech 2 model:
/// `[conv → BN → clipped ReLU] × convLayers.count → bidirectional RNN × rnnLayers → BN → FC`.
///
/// Input is a log spectrogram of `inputBins` frequency bins per frame (161 for 20 ms windows of
/// 16 kHz audio, 10 ms hop); output is `vocabularySize` logits per output frame, blank at id 0.
public struct ModelConfig: Codable, Equatable, Sendable {
  /// One 2-D convolution over (time × frequency); no bias (batch normalization follows).
  public struct ConvolutionLayer: Codable, Equatable, Sendable {
    /// Output channels.
    public var channels: Int
    /// Kernel extent along time, in frames.
    public var kernelTime: Int
    /// Kernel extent along frequency, in bins.
    public var kernelFrequency: Int
    /// Stride along time, in frames (each stride-2 layer halves the output frame rate).
    public var strideTime: Int
    /// Stride along frequency, in bins.
    public var strideFrequency: Int
    /// Zero padding on both sides along time, in frames.
    public var paddingTime: Int
    /// Zero padding on both sides along frequency, in bins.
    public var paddingFrequency: Int

    /// Padding defaults to half the kernel (floor), as in deepspeech.pytorch.
    public init(
      channels: Int, kernelTime: Int, kernelFrequency: Int, strideTime: Int, strideFrequency: Int,
      paddingTime: Int? = nil, paddingFrequency: Int? = nil
    ) {
      self.channels = channels
      self.kernelTime = kernelTime
      self.kernelFrequency = kernelFrequency
      self.strideTime = strideTime
      self.strideFrequency = strideFrequency
      self.paddingTime = paddingTime ?? kernelTime / 2
      self.paddingFrequency = paddingFrequency ?? kernelFrequency / 2
    }

    /// deepspeech.pytorch's first layer: 32 channels, 11 frames × 41 bins, stride 2 × 2.
    public static let ds2First = ConvolutionLayer(channels: 32, kernelTime: 11, kernelFrequency: 41, strideTime: 2, strideFrequency: 2)
    /// deepspeech.pytorch's second layer: 32 channels, 11 frames × 21 bins, stride 1 (time) × 2 (frequency).
    public static let ds2Second = ConvolutionLayer(channels: 32, kernelTime: 11, kernelFrequency: 21, strideTime: 1, strideFrequency: 2)
  }

  /// Frequency bins per input frame.
  public var inputBins: Int
  /// Convolution stack, 0–3 layers (DS2 uses 1–3; 0 feeds the spectrogram to the RNNs).
  public var convLayers: [ConvolutionLayer]
  /// Recurrent cell of every recurrent layer.
  public var rnnCell: RecurrentCell
  /// Number of bidirectional recurrent layers, 1–7.
  public var rnnLayers: Int
  /// Hidden units per direction (directions are summed, so also the layer output width).
  public var rnnHidden: Int
  /// Output symbols including the blank (29 for English: blank, space, apostrophe, a–z).
  public var vocabularySize: Int
  /// Seed of the weight initialization; equal seeds give identical models.
  public var seed: UInt64

  public init(
    inputBins: Int = 161, convLayers: [ConvolutionLayer] = [.ds2First], rnnCell: RecurrentCell = .gru,
    rnnLayers: Int = 3, rnnHidden: Int = 256, vocabularySize: Int = 29, seed: UInt64 = 0
  ) {
    self.inputBins = inputBins
    self.convLayers = convLayers
    self.rnnCell = rnnCell
    self.rnnLayers = rnnLayers
    self.rnnHidden = rnnHidden
    self.vocabularySize = vocabularySize
    self.seed = seed
  }

  /// The PyTorch speed peer's default (`ds2_small.py`): one conv layer, 3 × GRU-256, 29 symbols.
  public static let ds2Small = ModelConfig()

  /// Output frames for an utterance of `inputFrames` frames (each conv layer's time formula).
  public func outputLength(inputFrames: Int) -> Int {
    convLayers.reduce(inputFrames) { length, layer in
      SequenceLayout.convolvedLength(length, kernel: layer.kernelTime, stride: layer.strideTime, padding: layer.paddingTime)
    }
  }

  /// Frequency bins after the conv stack.
  public var outputBins: Int {
    convLayers.reduce(inputBins) { bins, layer in
      SequenceLayout.convolvedLength(bins, kernel: layer.kernelFrequency, stride: layer.strideFrequency, padding: layer.paddingFrequency)
    }
  }

  /// Features per frame entering the first recurrent layer: `outputBins × channels` (or
  /// `inputBins` without convolutions).
  public var recurrentInputCount: Int { outputBins * (convLayers.last?.channels ?? 1) }

  /// Throws `TrainingError.invalidConfiguration` naming the first field out of range.
  public func validate() throws {
    func check(_ condition: Bool, _ message: @autoclosure () -> String) throws {
      if !condition { throw TrainingError.invalidConfiguration(message()) }
    }
    try check(inputBins > 0, "inputBins must be positive, got \(inputBins)")
    try check(convLayers.count <= 3, "at most 3 conv layers, got \(convLayers.count)")
    var bins = inputBins
    for (index, layer) in convLayers.enumerated() {
      try check(layer.channels > 0, "convLayers[\(index)].channels must be positive")
      try check(layer.kernelTime > 0 && layer.kernelFrequency > 0, "convLayers[\(index)] kernel must be positive")
      try check(layer.strideTime > 0 && layer.strideFrequency > 0, "convLayers[\(index)] stride must be positive")
      try check(layer.paddingTime >= 0 && layer.paddingFrequency >= 0, "convLayers[\(index)] padding must not be negative")
      bins = SequenceLayout.convolvedLength(bins, kernel: layer.kernelFrequency, stride: layer.strideFrequency, padding: layer.paddingFrequency)
      try check(bins > 0, "convLayers[\(index)] leaves no frequency bins")
    }
    try check((1...7).contains(rnnLayers), "rnnLayers must be 1–7, got \(rnnLayers)")
    try check(rnnHidden > 0, "rnnHidden must be positive, got \(rnnHidden)")
    try check(vocabularySize >= 2, "vocabularySize must include the blank and one symbol, got \(vocabularySize)")
  }
}
