import DS2Core
import Foundation

/// Why a dataset directory cannot be read.
public struct DatasetError: Error, Sendable, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// Applies a dataset's normalization to raw stored features.
public struct FeatureNormalizer: Sendable {
  public let mode: NormalizationMode
  private let mean: [Float]
  private let inverseStd: [Float]
  private let stdFloor: Double

  public init(_ info: NormalizationInfo) {
    mode = info.mode
    stdFloor = info.stdFloor
    mean = info.mean.map { Float($0) }
    inverseStd = info.std.map { Float(1 / max($0, info.stdFloor)) }
  }

  /// Normalizes `features` in place according to `mode`.
  public func apply(_ features: inout FeatureMatrix) {
    let bins = features.bins
    switch mode {
    case .none:
      return
    case .global:
      precondition(bins == mean.count, "features do not match the statistics' bins")
      features.values.withUnsafeMutableBufferPointer { values in
        mean.withUnsafeBufferPointer { mean in
          inverseStd.withUnsafeBufferPointer { inverseStd in
            for t in 0..<features.frames {
              let row = t * bins
              for k in 0..<bins { values[row + k] = (values[row + k] - mean[k]) * inverseStd[k] }
            }
          }
        }
      }
    case .utterance:
      var statistics = FeatureStatistics(bins: bins)
      features.values.withUnsafeBufferPointer { statistics.add(frames: features.frames, values: $0) }
      let mean = statistics.mean.map { Float($0) }
      let inverseStd = statistics.standardDeviation.map { Float(1 / max($0, stdFloor)) }
      for t in 0..<features.frames {
        for k in 0..<bins { features[t, k] = (features[t, k] - mean[k]) * inverseStd[k] }
      }
    }
  }
}

/// A complete dataset on disk, opened for reading.
///
/// Opening requires `manifest.json`, which ds2-data writes last and atomically: a
/// directory still being written has none and is refused.
public final class Dataset {
  public let directory: String
  public let manifest: DatasetManifest
  public let normalizer: FeatureNormalizer
  private var environments: [String: LMDBEnvironment] = [:]

  /// - Throws: `DatasetError` when the directory holds no complete dataset or its
  ///   manifest cannot be decoded or has an unsupported version.
  public init(directory: String) throws {
    self.directory = directory
    let path = directory + "/manifest.json"
    guard let data = FileManager.default.contents(atPath: path) else {
      var isDirectory: ObjCBool = false
      if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue {
        throw DatasetError("\(directory): no manifest.json — not a ds2-data dataset, or still being written")
      }
      throw DatasetError("\(directory): no such directory")
    }
    let manifest: DatasetManifest
    do {
      manifest = try JSONDecoder().decode(DatasetManifest.self, from: data)
    } catch {
      throw DatasetError("\(path): cannot decode the manifest: \(error)")
    }
    guard manifest.format == DatasetManifest.formatName else {
      throw DatasetError("\(path): format is \(manifest.format), expected \(DatasetManifest.formatName)")
    }
    guard manifest.formatVersion == DatasetManifest.currentFormatVersion else {
      throw DatasetError(
        "\(path): format version \(manifest.formatVersion); this build reads version \(DatasetManifest.currentFormatVersion)")
    }
    self.manifest = manifest
    self.normalizer = FeatureNormalizer(manifest.normalization)
  }

  /// The split called `name`.
  /// - Throws: `DatasetError` naming the available splits.
  public func split(_ name: String) throws -> SplitInfo {
    guard let split = manifest.split(named: name) else {
      throw DatasetError(
        "\(directory): no split \(name); it has \(manifest.splits.map(\.name).joined(separator: ", "))")
    }
    return split
  }

  func environment(for shard: ShardInfo) throws -> LMDBEnvironment {
    if let environment = environments[shard.file] { return environment }
    let path = directory + "/" + shard.file
    guard FileManager.default.fileExists(atPath: path) else {
      throw DatasetError("\(path): shard listed in the manifest is missing")
    }
    let environment = try LMDBEnvironment(path: path, readOnly: true)
    environments[shard.file] = environment
    return environment
  }

  /// Visits the raw bytes of every record of `split` in stored (ascending length) order.
  /// The buffers are valid only during the call; return false to stop.
  /// - Throws: `DatasetError`, `LMDBError`, or what `body` throws.
  public func forEachRawRecord(
    split name: String, _ body: (_ shard: ShardInfo, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
  ) throws {
    let split = try split(name)
    for shard in split.shards {
      var keepGoing = true
      try environment(for: shard).forEach { key, value in
        keepGoing = try body(shard, key, value)
        return keepGoing
      }
      if !keepGoing { return }
    }
  }

  /// Visits every record of `split` in stored order, decoded and (unless `normalized`
  /// is false) normalized. Return false to stop.
  /// - Throws: `RecordDecodingError` (with the shard named), `DatasetError`, `LMDBError`.
  public func forEachRecord(
    split name: String, normalized: Bool = true, _ body: (ShardRecord) throws -> Bool
  ) throws {
    try forEachRawRecord(split: name) { shard, _, value in
      var record: ShardRecord
      do {
        record = try ShardRecord.decode(value)
      } catch let error as RecordDecodingError {
        throw DatasetError("\(directory)/\(shard.file): \(error)")
      }
      if normalized { normalizer.apply(&record.features) }
      return try body(record)
    }
  }

  /// Reads one record by its key (`RecordLayout.key(frames:id:)`) from `shard`.
  public func record(shard: ShardInfo, key: [UInt8], normalized: Bool = true) throws -> ShardRecord? {
    try environment(for: shard).withValue(forKey: key) { value in
      guard let value else { return nil }
      var record = try ShardRecord.decode(value)
      if normalized { normalizer.apply(&record.features) }
      return record
    }
  }
}
