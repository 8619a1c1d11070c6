import Audio
import Augmentation
import Corpus
import DS2Core
import Features
import Foundation
import Shards
import Yams

/// The corpus layouts `prepare` can read.
public enum CorpusKind: String, Sendable, ConfigurationChoice {
  /// LibriSpeech as OpenSLR ships it (FLAC + `*.trans.txt`).
  case librispeech
  /// Fisher English Training parts 1 and 2 as LDC ships them (SPHERE + `fe_03_*.txt`).
  case fisher
  /// AISHELL-1 as OpenSLR ships it (per-speaker WAV archives + one transcript file).
  case aishell
  /// JSON-lines manifests (`<split>.jsonl`), NeMo / PaddlePaddle style.
  case manifest
  /// Kaldi data directories (`<split>/wav.scp`, `text`, optional `segments`).
  case kaldi

  /// The transcript language the kind fixes, or nil when the recipe chooses it.
  public var fixedLanguage: TranscriptLanguage? {
    switch self {
    case .librispeech, .fisher: return .english
    case .aishell: return .mandarin
    case .manifest, .kaldi: return nil
    }
  }
}

/// Which corpus to read and which of its parts.
public struct CorpusConfig: Sendable, Codable, Equatable {
  public var kind: CorpusKind
  /// Corpus root; relative paths are relative to the current directory.
  public var root: String
  /// Splits (corpus parts) to prepare, in this order.
  public var splits: [String]
  /// Splits whose statistics normalize every split; default: the splits whose names
  /// start with `train`. A Mandarin vocabulary is built from their transcripts.
  public var trainingSplits: [String]
  /// Transcript language of `manifest` and `kaldi` corpora (default English); other
  /// kinds fix their own and accept only that value.
  public var language: TranscriptLanguage?

  enum CodingKeys: String, CodingKey, CaseIterable { case kind, root, splits, trainingSplits, language }

  public init(
    kind: CorpusKind, root: String, splits: [String], trainingSplits: [String]? = nil,
    language: TranscriptLanguage? = nil
  ) {
    self.kind = kind
    self.root = root
    self.splits = splits
    self.trainingSplits = trainingSplits ?? splits.filter { $0.hasPrefix("train") }
    self.language = language
  }

  /// The language transcripts are normalized and labelled in.
  public var effectiveLanguage: TranscriptLanguage { kind.fixedLanguage ?? language ?? .english }

  public init(from decoder: any Decoder) throws {
    try decoder.rejectUnknownKeys(CodingKeys.self)
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let splits = try c.decode([String].self, forKey: .splits)
    self.init(
      kind: try c.decode(CorpusKind.self, forKey: .kind), root: try c.decode(String.self, forKey: .root),
      splits: splits, trainingSplits: try c.decodeIfPresent([String].self, forKey: .trainingSplits),
      language: try c.decodeIfPresent(TranscriptLanguage.self, forKey: .language))
  }
}

/// Decoding and resampling settings.
public struct AudioConfig: Sendable, Codable, Equatable {
  /// Every utterance is resampled to this rate (Hz) before analysis.
  public var sampleRateHertz = 16_000
  /// What to do with multi-channel files when the corpus does not name a channel.
  public var channelRule: ChannelRule = .mono
  /// libsamplerate converter for rate conversion.
  public var resampleQuality: ResampleQuality = .sincMedium

  enum CodingKeys: String, CodingKey, CaseIterable { case sampleRateHertz, channelRule, resampleQuality }

  public init() {}

  public init(from decoder: any Decoder) throws {
    try decoder.rejectUnknownKeys(CodingKeys.self)
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = AudioConfig()
    sampleRateHertz = try c.decode(.sampleRateHertz, default: d.sampleRateHertz)
    channelRule = try c.decode(.channelRule, default: d.channelRule)
    resampleQuality = try c.decode(.resampleQuality, default: d.resampleQuality)
  }

  /// Sample rates accepted, Hz.
  public static let sampleRateHertzRange = 1_000...384_000

  /// - Throws: `ConfigurationError` naming the field (relative to this section).
  public func validate() throws {
    try ConfigurationCheck.value(sampleRateHertz, in: Self.sampleRateHertzRange, "sampleRateHertz", unit: "Hz")
  }
}

/// Feature normalization settings.
public struct NormalizationConfig: Sendable, Codable, Equatable {
  public var mode: NormalizationMode = .global
  /// Lower bound on a bin's standard deviation before dividing by it (`stdFloorRange`).
  public var stdFloor = 1e-5

  enum CodingKeys: String, CodingKey, CaseIterable { case mode, stdFloor }

  public init() {}

  public init(from decoder: any Decoder) throws {
    try decoder.rejectUnknownKeys(CodingKeys.self)
    let c = try decoder.container(keyedBy: CodingKeys.self)
    mode = try c.decode(.mode, default: NormalizationMode.global)
    stdFloor = try c.decode(.stdFloor, default: 1e-5)
  }

  /// `stdFloor` values accepted (its inverse stays a finite `Float`).
  public static let stdFloorRange = 1e-30...1e3

  /// - Throws: `ConfigurationError` naming the field (relative to this section).
  public func validate() throws {
    try ConfigurationCheck.value(stdFloor, in: Self.stdFloorRange, "stdFloor")
  }
}

/// Shard file settings.
public struct ShardConfig: Sendable, Codable, Equatable {
  /// Size cap of one shard file in bytes (default 1 GiB; `maxShardBytesRange`).
  public var maxShardBytes = 1 << 30
  /// Storage type of feature values.
  public var dtype: FeatureDType = .float16

  enum CodingKeys: String, CodingKey, CaseIterable { case maxShardBytes, dtype }

  public init() {}

  public init(from decoder: any Decoder) throws {
    try decoder.rejectUnknownKeys(CodingKeys.self)
    let c = try decoder.container(keyedBy: CodingKeys.self)
    maxShardBytes = try c.decode(.maxShardBytes, default: 1 << 30)
    dtype = try c.decode(.dtype, default: FeatureDType.float16)
  }

  /// Shard size caps accepted: 1 MiB … 1 TiB. A shard's LMDB map is reserved at about
  /// 9/8 of the cap, which must stay addressable (and far from `Int` overflow).
  public static let maxShardBytesRange = (1 << 20)...(1 << 40)

  /// - Throws: `ConfigurationError` naming the field (relative to this section).
  public func validate() throws {
    try ConfigurationCheck.value(maxShardBytes, in: Self.maxShardBytesRange, "maxShardBytes", allowed: "1 MiB … 1 TiB")
  }
}

/// Which utterances to keep, by duration (after segmenting, before resampling).
public struct FilterConfig: Sendable, Codable, Equatable {
  /// Shorter utterances are rejected as `too_short` (0 keeps all that make ≥ 1 frame).
  public var minDurationSeconds = 0.0
  /// Longer utterances are rejected as `too_long`; nil keeps all.
  public var maxDurationSeconds: Double? = nil

  enum CodingKeys: String, CodingKey, CaseIterable { case minDurationSeconds, maxDurationSeconds }

  public init() {}

  public init(from decoder: any Decoder) throws {
    try decoder.rejectUnknownKeys(CodingKeys.self)
    let c = try decoder.container(keyedBy: CodingKeys.self)
    minDurationSeconds = try c.decode(.minDurationSeconds, default: 0.0)
    maxDurationSeconds = try c.decodeIfPresent(Double.self, forKey: .maxDurationSeconds)
  }

  /// Durations accepted, seconds (up to a day).
  public static let durationSecondsRange = 0.0...86_400.0

  /// Checks both durations are finite and in range, and the maximum above the minimum.
  /// - Throws: `ConfigurationError` naming the field (relative to this section).
  public func validate() throws {
    try ConfigurationCheck.value(minDurationSeconds, in: Self.durationSecondsRange, "minDurationSeconds", unit: "s")
    if let maxDurationSeconds {
      try ConfigurationCheck.value(maxDurationSeconds, in: Self.durationSecondsRange, "maxDurationSeconds", unit: "s")
      guard maxDurationSeconds > minDurationSeconds else {
        throw ConfigurationError(
          "maxDurationSeconds: \(ConfigurationCheck.format(maxDurationSeconds)) must exceed minDurationSeconds "
            + "(\(ConfigurationCheck.format(minDurationSeconds)))")
      }
    }
  }
}

/// A preparation recipe: the composition of each stage's settings.
///
/// Read from YAML; every field but `corpus` has a default. The fully resolved recipe is
/// written beside the output as `recipe.yaml`.
public struct Recipe: Sendable, Codable, Equatable {
  /// A name for logs.
  public var name: String
  public var corpus: CorpusConfig
  /// Output dataset directory; relative to the current directory.
  public var output: String
  public var audio = AudioConfig()
  public var features = SpectrogramConfig()
  public var normalization = NormalizationConfig()
  public var shards = ShardConfig()
  public var filters = FilterConfig()
  /// Seed of every random choice (augmentation); recorded in the manifest.
  public var seed: UInt64 = 20_160_101
  /// Threads for everything the run computes (decoding, features, writing, digests), so
  /// the cores it uses; 0 = one per core, at most 1,024 (`threadCountRange`). Never
  /// changes the output.
  public var threads = 0
  /// Settings of `ds2-data augment` (ignored by `prepare`).
  public var augment: AugmentConfig?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case name, corpus, output, audio, features, normalization, shards, filters, seed, threads, augment
  }

  public init(name: String, corpus: CorpusConfig, output: String) {
    self.name = name
    self.corpus = corpus
    self.output = output
  }

  public init(from decoder: any Decoder) throws {
    try decoder.rejectUnknownKeys(CodingKeys.self)
    let c = try decoder.container(keyedBy: CodingKeys.self)
    corpus = try c.decode(CorpusConfig.self, forKey: .corpus)
    name = try c.decode(.name, default: corpus.kind.rawValue)
    output = try c.decode(.output, default: "out/" + name)
    audio = try c.decode(.audio, default: AudioConfig())
    features = try c.decode(.features, default: SpectrogramConfig())
    normalization = try c.decode(.normalization, default: NormalizationConfig())
    shards = try c.decode(.shards, default: ShardConfig())
    filters = try c.decode(.filters, default: FilterConfig())
    seed = try c.decode(.seed, default: 20_160_101)
    threads = try c.decode(.threads, default: 0)
    augment = try c.decodeIfPresent(AugmentConfig.self, forKey: .augment)
  }

  /// Loads a recipe file (within `YAMLText`'s size and nesting limits). Values are
  /// checked by `validate`, after command-line overrides.
  /// - Throws: `ConfigurationError` naming the file and the problem.
  public static func load(path: String) throws -> Recipe {
    let text = try YAMLText.read(path: path, kind: "recipe")
    do {
      return try YAMLDecoder().decode(Recipe.self, from: text)
    } catch let error as DecodingError {
      throw ConfigurationError("recipe \(path): \(error.configurationMessage)")
    } catch {
      throw ConfigurationError("recipe \(path): \(error)")
    }
  }


  /// Checks settings that need no file system access: every number finite and within
  /// its section's documented range (each section's `validate`).
  /// - Throws: `ConfigurationError` naming the field (`features.windowSeconds: …`).
  public func validate() throws {
    guard !corpus.splits.isEmpty else { throw ConfigurationError("corpus.splits is empty") }
    guard Set(corpus.splits).count == corpus.splits.count else { throw ConfigurationError("corpus.splits lists a split twice") }
    for split in corpus.splits {
      let allowed = split.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0) }
      guard allowed, !split.hasPrefix(".") else {
        throw ConfigurationError("corpus.splits: \(split) — use letters, digits, '-', '_' and '.' only")
      }
    }
    for split in corpus.trainingSplits where !corpus.splits.contains(split) {
      throw ConfigurationError("corpus.trainingSplits: \(split) is not one of corpus.splits")
    }
    if normalization.mode == .global && corpus.trainingSplits.isEmpty {
      throw ConfigurationError(
        "normalization.mode is global but no training split is set (corpus.trainingSplits, or a split named train*)")
    }
    try validatingSection("audio") { try audio.validate() }
    try validatingSection("features") { try features.validate(sampleRateHertz: audio.sampleRateHertz) }
    try validatingSection("normalization") { try normalization.validate() }
    try validatingSection("shards") { try shards.validate() }
    try validatingSection("filters") { try filters.validate() }
    try ConfigurationCheck.value(threads, in: threadCountRange, "threads", allowed: threadCountAllowed)
    if let augment {
      try validatingSection("augment") { try augment.validate() }
      for split in augment.splits ?? [] where !corpus.splits.contains(split) {
        throw ConfigurationError("augment.splits: \(split) is not one of corpus.splits")
      }
    }
  }

  /// Threads to use: `threads`, or one per core when 0.
  public var effectiveThreads: Int { threads > 0 ? threads : ProcessInfo.processInfo.activeProcessorCount }

  /// The recipe as YAML.
  public func yaml() throws -> String { try YAMLEncoder().encode(self) }

  /// The settings that determine a `prepare` dataset's content: the recipe minus where
  /// it is written, how many threads write it, and the `augment` section.
  public var contentIdentity: JSONValue { contentIdentity(augmenting: false) }

  /// The settings that determine the dataset's content; `augmenting` keeps the
  /// `augment` section (the identity of an `augment` dataset).
  public func contentIdentity(augmenting: Bool) -> JSONValue {
    var copy = self
    copy.output = ""
    copy.threads = 0
    if !augmenting { copy.augment = nil }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    // An unvalidated recipe may hold NaN or infinity; it still has an identity.
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    guard let data = try? encoder.encode(copy), var value = try? JSONDecoder().decode(JSONValue.self, from: data),
      case .object(var object) = value
    else { preconditionFailure("a recipe always encodes") }
    object.removeValue(forKey: "output")
    object.removeValue(forKey: "threads")
    value = .object(object)
    return value
  }
}
