import DS2Core
import Foundation
import Synchronization

/// A closed range of decibels, written `[low, high]` in recipes (`--snr 0:20` on the
/// command line). A value is drawn uniformly from it.
public struct DecibelRange: Sendable, Codable, Equatable, CustomStringConvertible {
  public var low: Double
  public var high: Double

  public init(_ low: Double, _ high: Double) {
    self.low = low
    self.high = high
  }

  /// Parses `low:high` (low ≤ high) or a single value; bounds are checked by `validate`.
  public init?(parsing text: String) {
    let parts = text.split(separator: ":").map { Double($0.trimmingCharacters(in: .whitespaces)) }
    guard (1...2).contains(parts.count), let low = parts.first ?? nil, let high = parts.last ?? nil, low <= high else {
      return nil
    }
    self.init(low, high)
  }

  public init(from decoder: any Decoder) throws {
    var container = try decoder.unkeyedContainer()
    let low = try container.decode(Double.self)
    let high = try container.decode(Double.self)
    guard container.isAtEnd else {
      throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "expected [low, high]"))
    }
    self.init(low, high)
  }

  /// Checks that both ends are finite and within `bounds` (dB), and low ≤ high.
  /// - Throws: `ConfigurationError` naming `field`.
  public func validate(within bounds: ClosedRange<Double>, _ field: String) throws {
    let allowed = "\(ConfigurationCheck.format(bounds.lowerBound)) … \(ConfigurationCheck.format(bounds.upperBound)) dB, low ≤ high"
    let written = "[\(ConfigurationCheck.format(low)), \(ConfigurationCheck.format(high))]"
    guard low.isFinite && high.isFinite else { throw ConfigurationError("\(field): \(written) is not a pair of finite numbers (\(allowed))") }
    guard bounds.contains(low) && bounds.contains(high) && low <= high else {
      throw ConfigurationError("\(field): \(written) is out of range (\(allowed))")
    }
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.unkeyedContainer()
    try container.encode(low)
    try container.encode(high)
  }

  public var description: String { "\(low):\(high)" }

  func draw(_ generator: inout SeededGenerator) -> Double { low + (high - low) * generator.nextUnitDouble() }
}

/// Additive noise from a noise bank.
public struct NoiseConfig: Sendable, Codable, Equatable {
  /// Folder of noise audio (any libsndfile format and rate), e.g. MUSAN; nil = no noise.
  public var bank: String?
  /// MUSAN subsets to draw noise from (`noise`, `music`, `speech`); a folder that is not
  /// MUSAN-shaped counts as subset `noise`.
  public var subsets: [String] = ["noise", "music"]
  /// Fraction of utterances (copies) that get noise (DS2: 0.4).
  public var probability = 0.4
  /// SNR range in dB, drawn uniformly (DS2-era recipes: about 0–20 dB).
  public var snrDecibels = DecibelRange(0, 20)
  /// Babble: several speech files from the `speech` subset summed at equal power,
  /// added as one more noise, with its own probability.
  public var babbleProbability = 0.0
  /// Number of babble talkers, drawn uniformly from this range (inclusive).
  public var babbleSpeakers = [3, 6]
  public var babbleSnrDecibels = DecibelRange(13, 20)

  enum CodingKeys: String, CodingKey, CaseIterable {
    case bank, subsets, probability, snrDecibels, babbleProbability, babbleSpeakers, babbleSnrDecibels
  }

  public init() {}

  public init(from decoder: any Decoder) throws {
    try decoder.rejectUnknownKeys(CodingKeys.self)
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = NoiseConfig()
    bank = try c.decodeIfPresent(String.self, forKey: .bank)
    subsets = try c.decode(.subsets, default: d.subsets)
    probability = try c.decode(.probability, default: d.probability)
    snrDecibels = try c.decode(.snrDecibels, default: d.snrDecibels)
    babbleProbability = try c.decode(.babbleProbability, default: d.babbleProbability)
    babbleSpeakers = try c.decode(.babbleSpeakers, default: d.babbleSpeakers)
    babbleSnrDecibels = try c.decode(.babbleSnrDecibels, default: d.babbleSnrDecibels)
  }

  /// SNRs accepted, dB.
  public static let snrDecibelsRange = -50.0...100.0
  /// Babble talkers accepted.
  public static let babbleSpeakersRange = 1...64

  /// Checks probabilities, SNR ranges and the babble talker range (`AugmentConfig`
  /// checks that a bank is named).
  /// - Throws: `ConfigurationError` naming the field (relative to this section).
  public func validate() throws {
    try ConfigurationCheck.value(probability, in: 0...1, "probability")
    try snrDecibels.validate(within: Self.snrDecibelsRange, "snrDecibels")
    try ConfigurationCheck.value(babbleProbability, in: 0...1, "babbleProbability")
    guard babbleSpeakers.count == 2, babbleSpeakers[0] <= babbleSpeakers[1],
      babbleSpeakers.allSatisfy(Self.babbleSpeakersRange.contains)
    else {
      throw ConfigurationError(
        "babbleSpeakers: \(babbleSpeakers) is out of range ([min, max] with \(Self.babbleSpeakersRange.lowerBound) ≤ min ≤ max ≤ "
          + "\(Self.babbleSpeakersRange.upperBound))")
    }
    try babbleSnrDecibels.validate(within: Self.snrDecibelsRange, "babbleSnrDecibels")
  }
}

/// Random gain.
public struct VolumeConfig: Sendable, Codable, Equatable {
  public var probability = 0.0
  public var gainDecibels = DecibelRange(-6, 6)

  enum CodingKeys: String, CodingKey, CaseIterable { case probability, gainDecibels }

  public init() {}

  public init(from decoder: any Decoder) throws {
    try decoder.rejectUnknownKeys(CodingKeys.self)
    let c = try decoder.container(keyedBy: CodingKeys.self)
    probability = try c.decode(.probability, default: 0.0)
    gainDecibels = try c.decode(.gainDecibels, default: DecibelRange(-6, 6))
  }

  /// Gains accepted, dB.
  public static let gainDecibelsRange = -60.0...60.0

  /// - Throws: `ConfigurationError` naming the field (relative to this section).
  public func validate() throws {
    try ConfigurationCheck.value(probability, in: 0...1, "probability")
    try gainDecibels.validate(within: Self.gainDecibelsRange, "gainDecibels")
  }
}

/// Reverberation by convolution with room impulse responses.
public struct ReverbConfig: Sendable, Codable, Equatable {
  /// Folder of impulse responses (any libsndfile format); nil = no reverberation.
  public var impulseResponses: String?
  public var probability = 0.0

  enum CodingKeys: String, CodingKey, CaseIterable { case impulseResponses, probability }

  public init() {}

  public init(from decoder: any Decoder) throws {
    try decoder.rejectUnknownKeys(CodingKeys.self)
    let c = try decoder.container(keyedBy: CodingKeys.self)
    impulseResponses = try c.decodeIfPresent(String.self, forKey: .impulseResponses)
    probability = try c.decode(.probability, default: 0.0)
  }

  /// - Throws: `ConfigurationError` naming the field (relative to this section).
  public func validate() throws {
    try ConfigurationCheck.value(probability, in: 0...1, "probability")
  }
}

/// The `augment:` section of a recipe.
public struct AugmentConfig: Sendable, Codable, Equatable {
  /// One labelled copy per factor (Ko et al. 2015: 0.9, 1.0, 1.1); 1.0 keeps the id,
  /// others are `sp<factor>-<id>` (Kaldi's convention).
  public var speedFactors: [Double] = [0.9, 1.0, 1.1]
  public var noise = NoiseConfig()
  public var volume = VolumeConfig()
  public var reverb = ReverbConfig()
  /// Splits to augment; nil = the recipe's training splits. Other splits are written clean.
  public var splits: [String]?
  /// A prepared dataset whose normalization statistics to use; nil = the exact statistics
  /// of the augmented training records themselves (what the network is trained on).
  public var statisticsFrom: String?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case speedFactors, noise, volume, reverb, splits, statisticsFrom
  }

  public init() {}

  public init(from decoder: any Decoder) throws {
    try decoder.rejectUnknownKeys(CodingKeys.self)
    let c = try decoder.container(keyedBy: CodingKeys.self)
    speedFactors = try c.decode(.speedFactors, default: [0.9, 1.0, 1.1])
    noise = try c.decode(.noise, default: NoiseConfig())
    volume = try c.decode(.volume, default: VolumeConfig())
    reverb = try c.decode(.reverb, default: ReverbConfig())
    splits = try c.decodeIfPresent([String].self, forKey: .splits)
    statisticsFrom = try c.decodeIfPresent(String.self, forKey: .statisticsFrom)
  }

  /// Speed factors accepted: above `speedFactorBounds.above`, at most `.atMost` (the
  /// range `SpeedPerturber` implements).
  public static let speedFactorBounds = (above: 0.5, atMost: 2.0)
  /// Most speed factors (copies per utterance).
  public static let maximumSpeedFactors = 32

  /// Checks every field: speed factors, probabilities, SNR and gain ranges, babble talkers;
  /// then that a noise bank and an impulse-response folder are named where needed.
  /// - Throws: `ConfigurationError` naming the field relative to the section
  ///   (`noise.probability: …`; the recipe puts `augment.` in front).
  public func validate() throws {
    try Self.validate(speedFactors: speedFactors, "speedFactors")
    try validatingSection("noise") { try noise.validate() }
    try validatingSection("volume") { try volume.validate() }
    try validatingSection("reverb") { try reverb.validate() }
    if (noise.probability > 0 || noise.babbleProbability > 0) && noise.bank == nil {
      throw ConfigurationError("noise.bank: needed when noise.probability or noise.babbleProbability is above 0 (or --noise-bank)")
    }
    if reverb.probability > 0 && reverb.impulseResponses == nil {
      throw ConfigurationError("reverb.impulseResponses: needed when reverb.probability is above 0")
    }
  }

  /// Checks a list of speed factors: 1 … `maximumSpeedFactors` distinct factors, each
  /// finite and within `speedFactorBounds`.
  /// - Throws: `ConfigurationError` naming `field` (`speedFactors`, or a flag).
  public static func validate(speedFactors: [Double], _ field: String) throws {
    guard (1...maximumSpeedFactors).contains(speedFactors.count) else {
      throw ConfigurationError("\(field): \(speedFactors.count) factors; give 1 … \(maximumSpeedFactors)")
    }
    for (index, factor) in speedFactors.enumerated() {
      try ConfigurationCheck.value(factor, above: speedFactorBounds.above, atMost: speedFactorBounds.atMost, "\(field)[\(index)]")
    }
    let labels = speedFactors.map(label)
    guard Set(labels).count == labels.count else { throw ConfigurationError("\(field): lists a factor twice") }
  }

  /// `0.9` → `"0.9"`, `1.05` → `"1.05"`: the factor as written in ids.
  public static func label(_ factor: Double) -> String {
    // A run uses a few factors for millions of copies: each is formatted once.
    if let known = labels.withLock({ $0[factor] }) { return known }
    var text = String(format: "%.3f", factor)
    while text.hasSuffix("0") { text.removeLast() }
    if text.hasSuffix(".") { text += "0" }
    if factor.isFinite { labels.withLock { $0[factor] = text } }
    return text
  }

  private static let labels = Mutex<[Double: String]>([:])

  /// The id of the copy of `id` at `factor`.
  public static func copyId(_ id: String, factor: Double) -> String {
    let label = label(factor)
    return label == "1.0" ? id : "sp\(label)-\(id)"
  }
}
