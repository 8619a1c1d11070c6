import DS2Core

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

    /// Output channels accepted.
    public static let channelsRange = 1...1_024
    /// Kernel extents accepted along time, frames.
    public static let kernelTimeRange = 1...128
    /// Kernel extents accepted along frequency, bins.
    public static let kernelFrequencyRange = 1...512
    /// Strides accepted (time and frequency).
    public static let strideRange = 1...16

    /// Checks every field: channels, kernels and strides within their ranges, padding from
    /// 0 to the kernel's extent.
    /// - Throws: `ConfigurationError` naming the field (`kernelTime: …`).
    public func validate() throws {
      try ConfigurationCheck.value(channels, in: Self.channelsRange, "channels")
      try ConfigurationCheck.value(kernelTime, in: Self.kernelTimeRange, "kernelTime", unit: "frames")
      try ConfigurationCheck.value(kernelFrequency, in: Self.kernelFrequencyRange, "kernelFrequency", unit: "bins")
      try ConfigurationCheck.value(strideTime, in: Self.strideRange, "strideTime", unit: "frames")
      try ConfigurationCheck.value(strideFrequency, in: Self.strideRange, "strideFrequency", unit: "bins")
      try ConfigurationCheck.value(paddingTime, in: 0...kernelTime, "paddingTime", unit: "frames", allowed: "0 … kernelTime \(kernelTime)")
      try ConfigurationCheck.value(
        paddingFrequency, in: 0...kernelFrequency, "paddingFrequency", unit: "bins", allowed: "0 … kernelFrequency \(kernelFrequency)")
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

  /// Convolution layers accepted.
  public static let convolutionLayerCountRange = 0...3
  /// Recurrent layers accepted.
  public static let recurrentLayerRange = 1...7
  /// Hidden units per direction accepted.
  public static let hiddenRange = 1...4_096
  /// Input bins accepted (a 65,536-point FFT has 32,769).
  public static let inputBinsRange = 1...32_769
  /// Output symbols accepted, blank included.
  public static let vocabularySizeRange = 2...1_000_000
  /// Most weights a model may have: 2^30 (4 GiB of `Float`, before gradients and
  /// optimizer state).
  public static let maximumWeightCount = 1 << 30

  /// Weights of the conv kernels and the recurrent and output matrices (biases and
  /// normalization left out), in floating point so that no shape overflows.
  public var weightCount: Double {
    var total = 0.0
    var channels = 1.0
    var bins = Double(inputBins)
    for layer in convLayers {
      total += channels * Double(layer.channels) * Double(layer.kernelTime) * Double(layer.kernelFrequency)
      channels = Double(layer.channels)
      bins = ((bins + 2 * Double(layer.paddingFrequency) - Double(layer.kernelFrequency)) / Double(layer.strideFrequency)).rounded(.down) + 1
    }
    let inputs = convLayers.isEmpty ? Double(inputBins) : max(bins, 0) * channels
    let (gates, hidden) = (Double(rnnCell.gateCount), Double(rnnHidden))
    // Two directions; the first layer reads the conv output, the others the hidden state.
    total += 2 * gates * hidden * (inputs + hidden) + Double(max(rnnLayers - 1, 0)) * 2 * gates * hidden * 2 * hidden
    return total + hidden * Double(vocabularySize)
  }

  /// Throws `TrainingError.invalidConfiguration` naming the first field out of range, or
  /// when the model would have more than `maximumWeightCount` weights.
  public func validate() throws {
    func check(_ condition: Bool, _ message: @autoclosure () -> String) throws {
      if !condition { throw TrainingError.invalidConfiguration(message()) }
    }
    func check(_ field: String, _ body: () throws -> Void) throws {
      do { try body() } catch let error as ConfigurationError { throw TrainingError.invalidConfiguration(field + error.message) }
    }
    try check("") { try ConfigurationCheck.value(inputBins, in: Self.inputBinsRange, "inputBins") }
    try check("") { try ConfigurationCheck.value(convLayers.count, in: Self.convolutionLayerCountRange, "convLayers.count") }
    var bins = inputBins
    for (index, layer) in convLayers.enumerated() {
      try check("convLayers[\(index)].") { try layer.validate() }
      bins = SequenceLayout.convolvedLength(bins, kernel: layer.kernelFrequency, stride: layer.strideFrequency, padding: layer.paddingFrequency)
      try check(bins > 0, "convLayers[\(index)] leaves no frequency bins")
    }
    try check("") { try ConfigurationCheck.value(rnnLayers, in: Self.recurrentLayerRange, "rnnLayers") }
    try check("") { try ConfigurationCheck.value(rnnHidden, in: Self.hiddenRange, "rnnHidden") }
    try check("") { try ConfigurationCheck.value(vocabularySize, in: Self.vocabularySizeRange, "vocabularySize") }
    let weights = weightCount
    try check(
      weights <= Double(Self.maximumWeightCount),
      "the model would have \(ConfigurationCheck.format(weights.rounded())) weights (\(inputBins) input bins, "
        + "\(vocabularySize) symbols); at most \(Self.maximumWeightCount) (fewer channels, units or layers)")
  }
}
