/// The settings that turn audio into stored features: value types shared by the stages
/// that make features (Audio, Features, Pipeline) and those that store and read them
/// (Shards, Trainer).

/// Analysis window shape.
public enum WindowShape: String, Sendable, ConfigurationChoice {
  /// Periodic Hann, `w[n] = 0.5 − 0.5 cos(2πn/N)`, n = 0…N−1 (sums to a constant at 50 % overlap).
  case hann
  /// Symmetric Hann, `w[n] = 0.5 − 0.5 cos(2πn/(N−1))` (numpy's `hanning`, used by PaddlePaddle DS2).
  case hannSymmetric
  /// Periodic Hamming, `w[n] = 0.54 − 0.46 cos(2πn/N)`.
  case hamming
}

/// How to turn a multi-channel file into the mono waveform the features need.
public enum ChannelRule: String, Sendable, ConfigurationChoice {
  /// Accept only mono files; a file with more channels is rejected (`bad_channels`).
  case mono
  /// Use channel 0 of any file.
  case first
  /// Average all channels.
  case average
}

/// libsamplerate converter quality, best (slowest) to fastest.
public enum ResampleQuality: String, Sendable, ConfigurationChoice {
  case sincBest, sincMedium, sincFastest, zeroOrderHold, linear
}

/// How feature values are stored in a record.
public enum FeatureDType: String, Sendable, ConfigurationChoice {
  /// IEEE 754 binary16, little-endian (2 bytes per value). The default.
  case float16
  /// IEEE 754 binary32, little-endian (4 bytes per value).
  case float32
  /// 8-bit codes with an affine map per record and bin: `value = minimum[k] + code · step[k]`
  /// (docs/FORMAT.md §3.1): one byte per value plus 4 bytes per bin and record (the two
  /// parameters in float16; float32, 8 bytes, in record versions 1 and 2).
  case uint8

  /// The record layout version this build writes (docs/FORMAT.md §3): 3 stores the 8-bit
  /// parameters in float16.
  public static let currentRecordVersion = 3

  /// Bytes of a record's feature block of `frames × bins` values in a record of
  /// `recordVersion` (the one this build writes by default).
  public func featureBlockBytes(frames: Int, bins: Int, recordVersion: Int = currentRecordVersion) -> Int {
    switch self {
    case .float16: return 2 * frames * bins
    case .float32: return 4 * frames * bins
    case .uint8: return Self.quantizationParameterBytes(recordVersion: recordVersion) * bins + frames * bins
    }
  }

  /// Bytes of the 8-bit parameters (minimum and step) per bin: two float16 from record
  /// version 3, two float32 before.
  public static func quantizationParameterBytes(recordVersion: Int) -> Int { recordVersion >= 3 ? 4 : 8 }

  /// `featureBlockBytes`, or nil when it overflows.
  public func checkedFeatureBlockBytes(frames: Int, bins: Int, recordVersion: Int = currentRecordVersion) -> Int? {
    let (values, overflow) = frames.multipliedReportingOverflow(by: bins)
    guard !overflow, values <= Int.max / 8 else { return nil }
    return featureBlockBytes(frames: frames, bins: bins, recordVersion: recordVersion)
  }
}

/// The feature extraction settings a dataset was made with (enough to featurize new
/// audio identically, e.g. for `transcribe`).
public struct FeatureParameters: Sendable, Codable, Equatable {
  /// Always `"log-spectrogram"` in format version 1.
  public var kind: String
  public var sampleRateHertz: Int
  public var windowSeconds: Double
  public var hopSeconds: Double
  public var windowSamples: Int
  public var hopSamples: Int
  public var fftSize: Int
  public var bins: Int
  public var window: WindowShape
  public var epsilon: Double
  public var loudnessTargetDecibels: Double?
  /// Storage type of feature values.
  public var dtype: FeatureDType
  /// How multi-channel audio became mono (absent in datasets made before it was stored: `mono`).
  public var channelRule: ChannelRule
  /// The libsamplerate converter that brought audio to `sampleRateHertz` (absent before it
  /// was stored: `sincMedium`, the default then).
  public var resampleQuality: ResampleQuality

  public init(
    kind: String = "log-spectrogram", sampleRateHertz: Int, windowSeconds: Double, hopSeconds: Double,
    windowSamples: Int, hopSamples: Int, fftSize: Int, bins: Int, window: WindowShape, epsilon: Double,
    loudnessTargetDecibels: Double?, dtype: FeatureDType, channelRule: ChannelRule, resampleQuality: ResampleQuality
  ) {
    self.kind = kind
    self.sampleRateHertz = sampleRateHertz
    self.windowSeconds = windowSeconds
    self.hopSeconds = hopSeconds
    self.windowSamples = windowSamples
    self.hopSamples = hopSamples
    self.fftSize = fftSize
    self.bins = bins
    self.window = window
    self.epsilon = epsilon
    self.loudnessTargetDecibels = loudnessTargetDecibels
    self.dtype = dtype
    self.channelRule = channelRule
    self.resampleQuality = resampleQuality
  }

  enum CodingKeys: String, CodingKey {
    case kind, sampleRateHertz, windowSeconds, hopSeconds, windowSamples, hopSamples, fftSize, bins, window, epsilon
    case loudnessTargetDecibels, dtype, channelRule, resampleQuality
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    kind = try c.decode(String.self, forKey: .kind)
    sampleRateHertz = try c.decode(Int.self, forKey: .sampleRateHertz)
    windowSeconds = try c.decode(Double.self, forKey: .windowSeconds)
    hopSeconds = try c.decode(Double.self, forKey: .hopSeconds)
    windowSamples = try c.decode(Int.self, forKey: .windowSamples)
    hopSamples = try c.decode(Int.self, forKey: .hopSamples)
    fftSize = try c.decode(Int.self, forKey: .fftSize)
    bins = try c.decode(Int.self, forKey: .bins)
    window = try c.decode(WindowShape.self, forKey: .window)
    epsilon = try c.decode(Double.self, forKey: .epsilon)
    loudnessTargetDecibels = try c.decodeIfPresent(Double.self, forKey: .loudnessTargetDecibels)
    dtype = try c.decode(FeatureDType.self, forKey: .dtype)
    channelRule = try c.decodeIfPresent(ChannelRule.self, forKey: .channelRule) ?? .mono
    resampleQuality = try c.decodeIfPresent(ResampleQuality.self, forKey: .resampleQuality) ?? .sincMedium
  }
}
