import DS2Core
import Foundation
import Shards

/// Which part of a partitioned `prepare` or `augment` a task runs: part `index` of
/// `count` (`--partition K/N`, or `--partition auto/N` with K from the scheduler).
///
/// N is always given: a scheduler's own task count is not the partition count (Slurm's
/// `SLURM_ARRAY_TASK_COUNT` is 2 when only two failed tasks are resubmitted with
/// `--array=5,17`). K is 0-based; an array numbered from 1 (`--array=1-64`) is refused
/// with the fix rather than shifted, since a resubmission of some tasks leaves no way to
/// tell the offset.
public struct Partition: Sendable, Equatable, CustomStringConvertible {
  /// K, in `0..<count`.
  public let index: Int
  /// N, at least 1.
  public let count: Int

  /// Most partitions accepted.
  public static let maximumCount = 100_000

  /// - Throws: `ConfigurationError` when `index` is not in `0..<count` or `count` is out
  ///   of range.
  public init(index: Int, count: Int) throws {
    guard (1...Self.maximumCount).contains(count) else {
      throw ConfigurationError("--partition: the partition count \(count) must be 1 … \(Self.maximumCount)")
    }
    guard (0..<count).contains(index) else {
      throw ConfigurationError(
        "--partition: index \(index) is outside 0 … \(count - 1) for \(count) partition(s) (indices start at 0)")
    }
    self.index = index
    self.count = count
  }

  /// The scheduler variables that carry a task's index, in the order they are looked up:
  /// Slurm job arrays, then Kubernetes Indexed Jobs.
  public static let indexVariables = ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"]

  /// Parses `K/N` or `auto/N`; `auto` takes K from `environment` (`indexVariables`).
  /// - Throws: `ConfigurationError` naming what is wrong and how to fix it.
  public static func parse(_ text: String, environment: [String: String]) throws -> Partition {
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 2, !parts[1].isEmpty, parts[1].allSatisfy({ $0.isASCII && $0.isNumber }) else {
      throw ConfigurationError("--partition \(text): expected K/N or auto/N, such as 3/8 or auto/8 (N, the number of parts, is always given)")
    }
    guard let count = Int(parts[1]), (1...maximumCount).contains(count) else {
      throw ConfigurationError("--partition \(text): the partition count \(parts[1]) must be 1 … \(maximumCount)")
    }
    guard parts[0] == "auto" else {
      guard !parts[0].isEmpty, parts[0].allSatisfy({ $0.isASCII && $0.isNumber }), let index = Int(parts[0]) else {
        throw ConfigurationError("--partition \(text): \(parts[0]) is neither an index (0 … \(count - 1)) nor auto")
      }
      return try Partition(index: index, count: count)
    }
    guard let (name, value) = indexVariables.lazy.compactMap({ name in environment[name].map { (name, $0) } }).first else {
      throw ConfigurationError(
        "--partition auto/\(count): none of \(indexVariables.joined(separator: ", ")) is set; run it as a Slurm array task "
          + "or a Kubernetes Indexed Job, or give the index: --partition K/\(count)")
    }
    let digits = value.trimmingCharacters(in: .whitespaces)
    guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let index = Int(digits) else {
      throw ConfigurationError("--partition auto/\(count): \(name)=\(value) is not an index")
    }
    let slurmFix =
      "submit the array as --array=0-\(count - 1) (indices start at 0), or pass --partition $((SLURM_ARRAY_TASK_ID - 1))/\(count) for an array numbered from 1"
    // An array whose indices reach N (numbered from 1: --array=1-N) is refused by every
    // task, not only by its last: its tasks 1 … N−1 would otherwise write parts that
    // leave part 0 missing.
    if name == "SLURM_ARRAY_TASK_ID", let maximum = environment["SLURM_ARRAY_TASK_MAX"].flatMap({ Int($0) }), maximum >= count {
      throw ConfigurationError(
        "--partition auto/\(count): this array's indices reach SLURM_ARRAY_TASK_MAX=\(maximum), but the \(count) parts are "
          + "numbered 0 … \(count - 1), so every task of it refuses; \(slurmFix)")
    }
    do {
      return try Partition(index: index, count: count)
    } catch {
      let fix = name == "SLURM_ARRAY_TASK_ID" ? slurmFix : "the Job's completions must equal the partition count \(count)"
      throw ConfigurationError("--partition auto/\(count): \(name)=\(index) is outside 0 … \(count - 1); \(fix)")
    }
  }

  public var description: String { "\(index)/\(count)" }
}

extension Partition {
  /// The positions of each split this part writes: a run of whole planned shards of the
  /// stream (splits in order, shards in order). A shard goes to the part in whose share of
  /// the total planned audio seconds its midpoint falls, so parts take about equally long
  /// and each is contiguous. Splits with no shard of this part get an empty range.
  /// - Parameters:
  ///   - splits: per split in order, its planned shards and the planned seconds of each
  ///     position.
  func ranges(of splits: [(name: String, shards: [PlannedShard], seconds: [Double])]) -> [String: Range<Int>] {
    let total = splits.reduce(0.0) { $0 + $1.seconds.reduce(0, +) }
    var before = 0.0
    var ranges: [String: Range<Int>] = [:]
    for split in splits {
      var mine: Range<Int>?
      for (index, shard) in split.shards.enumerated() {
        let end = index + 1 < split.shards.count ? split.shards[index + 1].start : split.seconds.count
        let seconds = split.seconds[shard.start..<end].reduce(0, +)
        let part = total > 0 ? min(count - 1, Int(Double(count) * (before + seconds / 2) / total)) : 0
        before += seconds
        if part == self.index { mine = (mine?.lowerBound ?? shard.start)..<end }
      }
      ranges[split.name] = mine ?? 0..<0
    }
    return ranges
  }
}

/// `partitions/K/part.json`: what part K of a partitioned run made, for `merge`.
struct PartManifest: Codable, Equatable {
  static let formatName = "ds2-data.part"
  static let fileName = "part.json"
  var format = formatName
  var index: Int
  var count: Int
  /// The recipe identity (`Recipe.contentIdentity`); every part of one output has the same.
  var identity: JSONValue
  var augmenting: Bool
  /// The whole recipe, so that `merge` writes what a single run writes.
  var recipe: Recipe
  /// `recipe.yaml()`, written by the part so that `merge` need not encode it (absent in
  /// parts of earlier versions).
  var recipeYAML: String?
  var features: FeatureParameters
  var vocabulary: Vocabulary
  /// The splits present, in recipe order, and those missing.
  var splits: [String]
  var missingSplits: [String]
  var inputs: InputRoots
  var noiseFiles: Int?
  /// Rejections of listing and planning (the same in every part; merge takes part 0's).
  var planRejections: [ItemError]
  /// Rejections while featurizing this part's positions, in stream order.
  var rejections: [ItemError]
  /// This part's completed shards per split, in order.
  var shards: [String: [PartShard]]
  /// `StoredPlan.digest` of the plan the part was made from (nil: it listed and probed).
  var planDigest: String?
  /// Size and modification time of each of its shards when the part finished, by file.
  var shardStamps: [String: [Int64]]?
  /// `SplitWriter.layoutVersion` of the writer of its shards (absent: layout 3 or older).
  var layout: Int? = SplitWriter.layoutVersion
}

/// A shard as `part.json` stores it: its manifest entry, with the statistics vectors as
/// base64 of their little-endian binary64 values — exact, and read several times faster
/// than 2 × bins JSON numbers (merge reads every part's).
struct PartShard: Codable, Equatable {
  var info: ShardInfo

  init(_ info: ShardInfo) { self.info = info }

  private enum CodingKeys: String, CodingKey {
    case file, records, minFrames, maxFrames, frames, samples, bytes, sha256, count, mean, m2
  }

  func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(info.file, forKey: .file)
    try c.encode(info.records, forKey: .records)
    try c.encode(info.minFrames, forKey: .minFrames)
    try c.encode(info.maxFrames, forKey: .maxFrames)
    try c.encode(info.frames, forKey: .frames)
    try c.encode(info.samples, forKey: .samples)
    try c.encode(info.bytes, forKey: .bytes)
    try c.encode(info.sha256, forKey: .sha256)
    try c.encode(info.statistics.count, forKey: .count)
    try c.encode(Self.base64(info.statistics.mean), forKey: .mean)
    try c.encode(Self.base64(info.statistics.m2), forKey: .m2)
  }

  /// - Throws: `DecodingError` for a missing field, or vectors that are not base64 of whole
  ///   binary64 values, of one length.
  init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    func vector(_ key: CodingKeys) throws -> [Double] {
      guard let data = Data(base64Encoded: try c.decode(String.self, forKey: key)), data.count % 8 == 0 else {
        throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "not base64 of binary64 values")
      }
      return data.withUnsafeBytes { raw in
        (0..<(raw.count / 8)).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self))) }
      }
    }
    let (count, mean, m2) = (try c.decode(Int.self, forKey: .count), try vector(.mean), try vector(.m2))
    guard count >= 0, mean.count == m2.count else {
      throw DecodingError.dataCorruptedError(forKey: .m2, in: c, debugDescription: "one mean and one m2 per bin, count ≥ 0")
    }
    info = ShardInfo(
      file: try c.decode(String.self, forKey: .file), records: try c.decode(Int.self, forKey: .records),
      minFrames: try c.decode(Int.self, forKey: .minFrames), maxFrames: try c.decode(Int.self, forKey: .maxFrames),
      frames: try c.decode(Int.self, forKey: .frames), samples: try c.decode(Int.self, forKey: .samples),
      bytes: try c.decode(Int.self, forKey: .bytes), sha256: try c.decode(String.self, forKey: .sha256),
      statistics: FeatureStatistics(count: count, mean: mean, m2: m2))
  }

  private static func base64(_ values: [Double]) -> String {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(8 * values.count)
    for value in values { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
    return Data(bytes).base64EncodedString()
  }
}
