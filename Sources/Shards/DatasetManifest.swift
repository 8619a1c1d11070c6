import DS2Core

/// How readers normalize stored (raw log-spectrogram) features.
public enum NormalizationMode: String, Sendable, Codable, CaseIterable {
  /// Per-bin `(x − mean) / max(std, stdFloor)` with the training splits' exact statistics.
  case global
  /// Per-bin mean and std of each utterance's own frames.
  case utterance
  /// Raw log spectrogram.
  case none
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
  /// `hann`, `hannSymmetric` or `hamming`.
  public var window: String
  public var epsilon: Double
  public var loudnessTargetDecibels: Double?
  /// Storage type of feature values.
  public var dtype: FeatureDType

  public init(
    kind: String = "log-spectrogram", sampleRateHertz: Int, windowSeconds: Double, hopSeconds: Double,
    windowSamples: Int, hopSamples: Int, fftSize: Int, bins: Int, window: String, epsilon: Double,
    loudnessTargetDecibels: Double?, dtype: FeatureDType
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
  }
}

/// Normalization mode and the statistics readers apply.
public struct NormalizationInfo: Sendable, Codable, Equatable {
  public var mode: NormalizationMode
  /// Splits whose frames the statistics cover (the training splits).
  public var statisticsSplits: [String]
  /// Exact per-bin statistics of the raw stored values of `statisticsSplits`.
  public var statistics: FeatureStatistics
  /// Per-bin mean (= `statistics.mean`), for readers that do not merge.
  public var mean: [Double]
  /// Per-bin population standard deviation.
  public var std: [Double]
  /// Lower bound applied to std before dividing.
  public var stdFloor: Double

  public init(mode: NormalizationMode, statisticsSplits: [String], statistics: FeatureStatistics, stdFloor: Double = 1e-5) {
    self.mode = mode
    self.statisticsSplits = statisticsSplits
    self.statistics = statistics
    self.mean = statistics.mean
    self.std = statistics.standardDeviation
    self.stdFloor = stdFloor
  }
}

/// One LMDB shard file.
public struct ShardInfo: Sendable, Codable, Equatable {
  /// Path relative to the dataset directory, e.g. `shards/train-clean-100-00000.mdb`.
  public var file: String
  public var records: Int
  public var minFrames: Int
  public var maxFrames: Int
  /// Sum of frames over records.
  public var frames: Int
  /// Sum of audio samples over records (at the dataset rate).
  public var samples: Int
  /// File size in bytes.
  public var bytes: Int
  /// SHA-256 of the file bytes, lowercase hex.
  public var sha256: String
  /// Statistics of the raw stored feature values of this shard.
  public var statistics: FeatureStatistics
}

/// One split (corpus part) of a dataset.
public struct SplitInfo: Sendable, Codable, Equatable {
  public var name: String
  /// True for splits that count as training data (their statistics normalize all splits).
  public var isTraining: Bool
  public var records: Int
  public var frames: Int
  public var audioSeconds: Double
  public var minFrames: Int
  public var maxFrames: Int
  /// In ascending (frames, id) order: shard i's last key < shard i+1's first key.
  public var shards: [ShardInfo]

  public init(
    name: String, isTraining: Bool, records: Int, frames: Int, audioSeconds: Double, minFrames: Int, maxFrames: Int,
    shards: [ShardInfo]
  ) {
    self.name = name
    self.isTraining = isTraining
    self.records = records
    self.frames = frames
    self.audioSeconds = audioSeconds
    self.minFrames = minFrames
    self.maxFrames = maxFrames
    self.shards = shards
  }
}

/// Counts of rejected items.
public struct RejectionSummary: Sendable, Codable, Equatable {
  public var count: Int
  public var byReason: [String: Int]
  /// File listing each rejected item, one JSON object per line.
  public var file: String
  public init(count: Int, byReason: [String: Int], file: String) {
    self.count = count
    self.byReason = byReason
    self.file = file
  }
}

/// `manifest.json`: the dataset-level description. Its presence means the dataset is complete.
public struct DatasetManifest: Sendable, Codable, Equatable {
  public static let formatName = "ds2-data.shards"
  public static let currentFormatVersion = 1

  public var format: String
  public var formatVersion: Int
  public var toolVersion: String
  public var seed: UInt64
  public var features: FeatureParameters
  public var normalization: NormalizationInfo
  public var vocabulary: Vocabulary
  public var splits: [SplitInfo]
  public var rejected: RejectionSummary
  /// The fully resolved recipe the dataset was made from.
  public var recipe: JSONValue

  public init(
    toolVersion: String, seed: UInt64, features: FeatureParameters, normalization: NormalizationInfo,
    vocabulary: Vocabulary, splits: [SplitInfo], rejected: RejectionSummary, recipe: JSONValue
  ) {
    format = Self.formatName
    formatVersion = Self.currentFormatVersion
    self.toolVersion = toolVersion
    self.seed = seed
    self.features = features
    self.normalization = normalization
    self.vocabulary = vocabulary
    self.splits = splits
    self.rejected = rejected
    self.recipe = recipe
  }

  public func split(named name: String) -> SplitInfo? { splits.first { $0.name == name } }
}
