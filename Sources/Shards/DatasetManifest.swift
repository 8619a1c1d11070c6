import DS2Core

/// How readers normalize stored (raw log-spectrogram) features.
public enum NormalizationMode: String, Sendable, ConfigurationChoice {
  /// Per-bin `(x − mean) / max(std, stdFloor)` with the training splits' exact statistics.
  case global
  /// Per-bin mean and std of each utterance's own frames.
  case utterance
  /// Raw log spectrogram.
  case none
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

  public init(
    file: String, records: Int, minFrames: Int, maxFrames: Int, frames: Int, samples: Int, bytes: Int, sha256: String,
    statistics: FeatureStatistics
  ) {
    (self.file, self.records, self.minFrames, self.maxFrames) = (file, records, minFrames, maxFrames)
    (self.frames, self.samples, self.bytes, self.sha256, self.statistics) = (frames, samples, bytes, sha256, statistics)
  }
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

/// Where a dataset's inputs were, as absolute paths with symbolic links resolved, at the
/// time it was made: the bases of the relative paths in `rejected.jsonl` and in the
/// provenance of augmented records (noise and babble files are relative to `noiseBank`,
/// impulse responses to `impulseResponses`), so that they resolve from the dataset alone.
public struct InputRoots: Sendable, Codable, Equatable {
  public var corpusRoot: String
  public var noiseBank: String?
  public var impulseResponses: String?
  /// The dataset whose statistics normalize this one (`augment.statisticsFrom`).
  public var statisticsFrom: String?
  public init(corpusRoot: String, noiseBank: String? = nil, impulseResponses: String? = nil, statisticsFrom: String? = nil) {
    self.corpusRoot = corpusRoot
    self.noiseBank = noiseBank
    self.impulseResponses = impulseResponses
    self.statisticsFrom = statisticsFrom
  }
}

/// `manifest.json`: the dataset-level description. Its presence means the dataset is complete.
public struct DatasetManifest: Sendable, Codable, Equatable {
  public static let formatName = "ds2-data.shards"
  /// 2: records carry a CRC-32C (record version 2). 3: records are stored in groups
  /// (`RecordGroup`) and 8-bit parameters in float16 (record version 3). Datasets of
  /// versions 1 and 2 are still read.
  public static let currentFormatVersion = 3
  public static let readableFormatVersions: ClosedRange<Int> = 1...3

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
  /// Absolute input locations (absent in datasets of format version 1).
  public var inputs: InputRoots?

  public init(
    toolVersion: String, seed: UInt64, features: FeatureParameters, normalization: NormalizationInfo,
    vocabulary: Vocabulary, splits: [SplitInfo], rejected: RejectionSummary, recipe: JSONValue, inputs: InputRoots? = nil
  ) {
    self.inputs = inputs
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

  enum CodingKeys: String, CodingKey {
    case format, formatVersion, toolVersion, seed, features, normalization, vocabulary, splits, rejected, recipe, inputs
  }

  /// The audio settings as stored in `features`, absent in datasets made before they were.
  private struct StoredAudioSettings: Decodable {
    var channelRule: ChannelRule?
    var resampleQuality: ResampleQuality?
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    format = try c.decode(String.self, forKey: .format)
    formatVersion = try c.decode(Int.self, forKey: .formatVersion)
    toolVersion = try c.decode(String.self, forKey: .toolVersion)
    seed = try c.decode(UInt64.self, forKey: .seed)
    features = try c.decode(FeatureParameters.self, forKey: .features)
    normalization = try c.decode(NormalizationInfo.self, forKey: .normalization)
    vocabulary = try c.decode(Vocabulary.self, forKey: .vocabulary)
    splits = try c.decode([SplitInfo].self, forKey: .splits)
    rejected = try c.decode(RejectionSummary.self, forKey: .rejected)
    recipe = try c.decode(JSONValue.self, forKey: .recipe)
    inputs = try c.decodeIfPresent(InputRoots.self, forKey: .inputs)
    // Older datasets: the settings they were made with are in the recorded recipe.
    let stored = try c.decode(StoredAudioSettings.self, forKey: .features)
    if case .object(let recipe) = recipe, case .object(let audio)? = recipe["audio"] {
      if stored.channelRule == nil, case .string(let rule)? = audio["channelRule"], let rule = ChannelRule(rawValue: rule) {
        features.channelRule = rule
      }
      if stored.resampleQuality == nil, case .string(let quality)? = audio["resampleQuality"],
        let quality = ResampleQuality(rawValue: quality)
      {
        features.resampleQuality = quality
      }
    }
  }
}

extension DatasetManifest {
  /// Largest manifest a reader reads (a 10,000-hour dataset's is a few MB).
  public static let maxBytes = 256 << 20

  /// Largest bin count a reader accepts (an FFT of 65,536 samples has 32,769).
  public static let maxBins = 32_769

  /// Checks what readers rely on before they touch a shard: shapes that agree (bins, the
  /// statistics, mean and std), finite normalization values, counts that are not negative
  /// and do not overflow, unique split names, and shard paths confined to the dataset
  /// folder (relative, no `..`, no empty or `.` component).
  /// - Throws: `DatasetError` naming `path` (the manifest) and the field.
  public func validate(path: String) throws {
    func bad(_ message: String) -> DatasetError { DatasetError("\(path): \(message)") }
    let bins = features.bins
    guard (1...Self.maxBins).contains(bins) else { throw bad("features.bins \(bins) is outside 1…\(Self.maxBins)") }
    guard features.sampleRateHertz > 0, features.windowSamples > 0, features.hopSamples > 0, features.fftSize > 0,
      features.windowSeconds.isFinite, features.hopSeconds.isFinite, features.windowSeconds > 0, features.hopSeconds > 0,
      features.epsilon.isFinite,
      features.loudnessTargetDecibels?.isFinite ?? true
    else { throw bad("features: rates, sizes and durations must be positive and finite") }
    let n = normalization
    guard n.statistics.bins == bins, n.mean.count == bins, n.std.count == bins else {
      throw bad(
        "normalization has \(n.statistics.bins) statistics bins, \(n.mean.count) means and \(n.std.count) stds; "
          + "features.bins is \(bins)")
    }
    guard n.mean.allSatisfy(\.isFinite), n.std.allSatisfy({ $0.isFinite && $0 >= 0 }), n.stdFloor.isFinite, n.stdFloor >= 0,
      n.statistics.mean.allSatisfy(\.isFinite), n.statistics.m2.allSatisfy({ $0.isFinite && $0 >= 0 })
    else { throw bad("normalization values must be finite (std, m2 and stdFloor ≥ 0)") }
    guard n.mean == n.statistics.mean, n.std == n.statistics.standardDeviation else {
      throw bad("normalization.mean or .std differs from what normalization.statistics gives (altered?)")
    }
    guard n.mode != .global || n.std.allSatisfy({ max($0, n.stdFloor) > 0 }) else {
      throw bad("a bin's std and normalization.stdFloor are both 0: readers would divide by 0")
    }
    guard vocabulary.count >= 2 else { throw bad("the vocabulary has \(vocabulary.count) symbols") }
    var splitNames = Set<String>()
    var files = Set<String>()
    var statisticsFrames = 0
    for split in splits {
      guard splitNames.insert(split.name).inserted else { throw bad("split \(split.name) is listed twice") }
      guard split.records >= 0, split.frames >= 0, split.minFrames >= 0, split.maxFrames >= 0, split.audioSeconds.isFinite
      else { throw bad("split \(split.name): negative or non-finite totals") }
      for shard in split.shards {
        try Self.checkShardPath(shard.file, manifest: path)
        guard files.insert(shard.file).inserted else { throw bad("shard \(shard.file) is listed twice") }
        guard shard.records >= 0, shard.frames >= 0, shard.samples >= 0, shard.bytes >= 0, shard.minFrames >= 0,
          shard.maxFrames >= 0
        else { throw bad("shard \(shard.file): negative counts") }
        // A record takes more than its 40-byte header, its key and LMDB's node: more than 48
        // bytes of the file (an empty shard is a few pages).
        guard shard.records <= shard.bytes / 48 else {
          throw bad("shard \(shard.file): \(shard.records) records cannot fit in its \(shard.bytes) bytes")
        }
        guard shard.statistics.bins == bins else {
          throw bad("shard \(shard.file): statistics have \(shard.statistics.bins) bins, features.bins is \(bins)")
        }
        let (sum, overflow) = statisticsFrames.addingReportingOverflow(shard.statistics.count)
        guard !overflow, sum < 1 << 53 else { throw bad("shard \(shard.file): statistics count out of range") }
        statisticsFrames = sum
      }
    }
  }

  /// Throws unless `file` is a path inside the dataset folder: relative, with no empty,
  /// `.` or `..` component and no NUL.
  public static func checkShardPath(_ file: String, manifest: String) throws {
    let components = file.split(separator: "/", omittingEmptySubsequences: false)
    guard !file.hasPrefix("/"), !file.contains("\0"),
      !components.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." })
    else {
      throw DatasetError("\(manifest): shard path \(file.debugDescription) is not a plain relative path inside the dataset folder")
    }
  }
}
