import ArgumentParser
import DS2Core
import Foundation
import Pipeline
import Shards

struct Inspect: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "inspect",
    abstract: "Summarize a dataset, or print its records.",
    discussion: """
      Without --records: splits, record counts, hours, frame range, shards, sizes, \
      normalization statistics and rejections. With --records N: the first N records of \
      each split (or of --split) in stored order — the SortaGrad first-epoch order.
      """)

  @Argument(help: "Dataset directory (holding manifest.json).")
  var dataset: String

  @Option(help: "Print the first N records of each split (0 or more).")
  var records: Int?

  @Option(help: "Only this split.")
  var split: String?

  @Flag(help: "JSON output: one object per record with --records, else the summary as one object.")
  var json = false

  @Flag(help: "With --records: include the feature values (normalized as the trainer sees them).")
  var features = false

  @Flag(help: "With --features: the raw stored values instead of normalized ones.")
  var raw = false

  func validate() throws {
    if let records { try checkFlags { try ConfigurationCheck.value(records, in: 0...Int.max, "--records", allowed: "0 or more") } }
  }

  func run() throws {
    let dataset = try Dataset(directory: self.dataset)
    let manifest = dataset.manifest
    let splits = try split.map { [try dataset.split($0)] } ?? manifest.splits
    if let records {
      try printRecords(dataset, splits: splits, limit: records)
    } else if json {
      try printJSONSummary(manifest, splits: splits)
    } else {
      printSummary(manifest, splits: splits)
    }
  }

  func printSummary(_ m: DatasetManifest, splits: [SplitInfo]) {
    let f = m.features
    print("dataset \(self.dataset) — \(m.format) v\(m.formatVersion), written by ds2-data \(m.toolVersion), seed \(m.seed)")
    print(
      "features: \(f.kind) \(f.sampleRateHertz) Hz, window \(f.windowSamples) (\(f.window)), hop \(f.hopSamples), "
        + "\(f.bins) bins, \(f.dtype.rawValue)")
    let stats = m.normalization
    let meanOfMeans = stats.mean.isEmpty ? 0 : stats.mean.reduce(0, +) / Double(stats.mean.count)
    let meanOfStd = stats.std.isEmpty ? 0 : stats.std.reduce(0, +) / Double(stats.std.count)
    print(
      "normalization: \(stats.mode.rawValue), statistics over \(stats.statistics.count) frames of "
        + "\(stats.statisticsSplits.joined(separator: ", ")) (mean of bin means \(fmt(meanOfMeans)), mean bin std \(fmt(meanOfStd)))")
    print("vocabulary: \(m.vocabulary.count) symbols (blank = 0)")
    print("split                 records      hours   frames min–max  shards        size")
    for s in splits {
      let bytes = s.shards.reduce(0) { $0 + $1.bytes }
      print(
        s.name.padding(toLength: 20, withPad: " ", startingAt: 0)
          + String(format: " %8d %10.3f %8d–%-8d %6d %11@", s.records, s.audioSeconds / 3600, s.minFrames, s.maxFrames,
            s.shards.count, formatBytes(bytes)))
    }
    print("rejected: \(m.rejected.count)" + (m.rejected.count > 0 ? " (\(m.rejected.byReason.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")); see \(m.rejected.file))" : ""))
  }

  func printJSONSummary(_ m: DatasetManifest, splits: [SplitInfo]) throws {
    struct Summary: Encodable {
      var format: String
      var formatVersion: Int
      var toolVersion: String
      var features: FeatureParameters
      var normalization: String
      var vocabularySize: Int
      var splits: [SplitLine]
      var rejected: RejectionSummary
    }
    struct SplitLine: Encodable {
      var name: String, records: Int, hours: Double, minFrames: Int, maxFrames: Int, shards: Int, bytes: Int
    }
    let summary = Summary(
      format: m.format, formatVersion: m.formatVersion, toolVersion: m.toolVersion, features: m.features,
      normalization: m.normalization.mode.rawValue, vocabularySize: m.vocabulary.count,
      splits: splits.map {
        SplitLine(name: $0.name, records: $0.records, hours: $0.audioSeconds / 3600, minFrames: $0.minFrames,
          maxFrames: $0.maxFrames, shards: $0.shards.count, bytes: $0.shards.reduce(0) { $0 + $1.bytes })
      },
      rejected: m.rejected)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(summary), as: UTF8.self))
  }

  func printRecords(_ dataset: Dataset, splits: [SplitInfo], limit: Int) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    for split in splits {
      var printed = 0
      guard limit > 0 else { continue }
      try dataset.forEachRecord(split: split.name, normalized: !raw) { record in
        if json {
          if features, let bad = record.features.values.firstIndex(where: { !$0.isFinite }) {
            // JSON has no infinities or NaN; a record without a checksum (format 1) can hold them.
            throw DatasetError(
              "\(dataset.directory): split \(split.name), record \(record.id): feature value "
                + "\(record.features.values[bad]) at frame \(bad / record.bins), bin \(bad % record.bins) is not finite")
          }
          let line = RecordLine(
            id: record.id, split: split.name, frames: record.frames, bins: record.bins, samples: record.sampleCount,
            transcript: record.transcript, labels: record.labels,
            info: record.infoJSON.isEmpty ? nil : (try? JSONDecoder().decode(JSONValue.self, from: Data(record.infoJSON.utf8))),
            features: features ? stride(from: 0, to: record.features.values.count, by: record.bins).map {
              Array(record.features.values[$0..<$0 + record.bins])
            } : nil)
          print(String(decoding: try encoder.encode(line), as: UTF8.self))
        } else {
          print("\(split.name)\t\(record.id)\t\(record.frames) frames\t\(record.transcript)")
          if features {
            for t in 0..<record.frames {
              print(record.features.values[t * record.bins..<(t + 1) * record.bins].map { String(format: "%.3f", $0) }.joined(separator: " "))
            }
          }
        }
        printed += 1
        return printed < limit
      }
    }
  }

  struct RecordLine: Encodable {
    var id: String
    var split: String
    var frames: Int
    var bins: Int
    var samples: Int
    var transcript: String
    var labels: [Int32]
    var info: JSONValue?
    var features: [[Float]]?
  }
}

func fmt(_ value: Double) -> String { String(format: "%.3f", value) }
