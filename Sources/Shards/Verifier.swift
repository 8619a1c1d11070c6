import DS2Core
import Foundation

/// One thing wrong with a dataset on disk.
public struct VerificationProblem: Sendable, Codable, Equatable, CustomStringConvertible {
  /// What the problem is in: `manifest.json`, a shard file, `rejected.jsonl`.
  public var file: String
  public var message: String
  public var description: String { "\(file): \(message)" }
}

/// What `verify` found.
public struct VerificationReport: Sendable {
  public var problems: [VerificationProblem] = []
  public var shardsChecked = 0
  public var recordsChecked = 0
  public var isIntact: Bool { problems.isEmpty }
}

/// Checks a dataset against its manifest (the `ds2-data verify` command).
///
/// For every shard: present, size and SHA-256 as listed (a shard failing these is not
/// opened further — LMDB trusts its pages), record count, keys ascending within and across
/// shards, every record decodable with the manifest's bins and dtype, a key matching its
/// (frames, id), at least one frame, finite values, a non-empty label sequence of valid
/// ids, and statistics recomputed from the stored values equal to the listed ones. Then
/// split totals and the merged training statistics against the manifest, and the
/// rejection count against `rejected.jsonl`.
public func verifyDataset(directory: String) -> VerificationReport {
  var report = VerificationReport()
  func problem(_ file: String, _ message: String) {
    report.problems.append(VerificationProblem(file: file, message: message))
  }
  let dataset: Dataset
  do {
    dataset = try Dataset(directory: directory)
  } catch {
    let prefix = directory + "/manifest.json: "
    let message = "\(error)"
    problem("manifest.json", message.hasPrefix(prefix) ? String(message.dropFirst(prefix.count)) : message)
    return report
  }
  let manifest = dataset.manifest
  let bins = manifest.features.bins
  let vocabularySize = manifest.vocabulary.count
  var trainingStatistics = FeatureStatistics(bins: bins)
  for message in checkAppliedParameters(manifest) { problem("manifest.json", message) }
  for message in checkShardFolder(directory: directory, manifest: manifest) { problem("shards", message) }

  for split in manifest.splits {
    var previousLastKey: [UInt8]?
    var totals = (records: 0, frames: 0, samples: 0)
    for shard in split.shards {
      let path = directory + "/" + shard.file
      report.shardsChecked += 1
      totals.records += shard.records
      totals.frames += shard.frames
      totals.samples += shard.samples
      // The manifest's own statistics: compared with its totals whatever the shard holds.
      if manifest.normalization.statisticsSplits.contains(split.name) { trainingStatistics.merge(shard.statistics) }
      var status = stat()
      guard lstat(path, &status) == 0 else {
        problem(shard.file, "missing")
        continue
      }
      guard (status.st_mode & S_IFMT) == S_IFREG else {
        problem(shard.file, "not a regular file")
        continue
      }
      guard Int(status.st_size) == shard.bytes else {
        problem(shard.file, "size \(status.st_size) bytes, manifest says \(shard.bytes) (truncated or replaced)")
        continue
      }
      do {
        let (size, digest) = try SplitWriter.sizeAndDigest(path: path)
        if size != shard.bytes {
          problem(shard.file, "size \(size) bytes, manifest says \(shard.bytes) (truncated or replaced)")
          continue
        }
        if digest != shard.sha256 {
          problem(shard.file, "SHA-256 \(digest) does not match the manifest's \(shard.sha256) (damaged)")
          continue
        }
      } catch {
        problem(shard.file, "cannot read: \(error)")
        continue
      }
      var statistics = FeatureStatistics(bins: bins)
      var count = 0
      var minFrames = Int.max
      var maxFrames = 0
      var frames = 0
      var samples = 0
      var firstKey: [UInt8]?
      var lastKey: [UInt8]?
      var recordProblems = 0
      // Records and groups that could not be decoded: the shard's totals and statistics then
      // differ from the manifest's as a consequence, and are not compared.
      var unreadable = 0
      func recordProblem(_ message: String) {
        recordProblems += 1
        if recordProblems <= 20 { problem(shard.file, message) }
      }
      // Each record is checked on its own, and a damaged group is one problem: the walk goes
      // on with the next LMDB value, so every damaged place is named.
      func check(_ keyBuffer: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
        let key = Array(keyBuffer)
        if firstKey == nil { firstKey = key }
        if let lastKey, !lastKey.lexicographicallyPrecedes(key) { recordProblem("keys out of order at record \(count)") }
        lastKey = key
        count += 1
        let record: ShardRecord
        do {
          record = try ShardRecord.decode(value)
        } catch let error as RecordDecodingError {
          unreadable += 1
          recordProblem("record \(RecordLayout.describe(key: keyBuffer)): \(error)")
          return
        } catch {
          unreadable += 1
          recordProblem("record \(count - 1): \(error)")
          return
        }
        let header = "record \(record.id)"
        if key != RecordLayout.key(frames: record.frames, id: record.id) { recordProblem("\(header): key does not match its frames and id") }
        if record.bins != bins { recordProblem("\(header): \(record.bins) bins, manifest says \(bins)") }
        if record.frames < 1 { recordProblem("\(header): no frames") }
        if record.labels.isEmpty { recordProblem("\(header): empty label sequence") }
        if record.labels.contains(where: { $0 <= 0 || Int($0) >= vocabularySize }) {
          recordProblem("\(header): label id outside 1..<\(vocabularySize)")
        }
        if let dtype = try? ShardRecord.decodeHeader(value).dtype, dtype != manifest.features.dtype {
          recordProblem("\(header): dtype \(dtype.rawValue), manifest says \(manifest.features.dtype.rawValue)")
        }
        if !record.features.values.allSatisfy(\.isFinite) { recordProblem("\(header): non-finite feature values") }
        if record.bins == bins {
          record.features.values.withUnsafeBufferPointer { statistics.add(frames: record.frames, values: $0) }
        }
        minFrames = min(minFrames, record.frames)
        maxFrames = max(maxFrames, record.frames)
        frames += record.frames
        samples += record.sampleCount
      }
      do {
        let environment = try dataset.environment(for: shard)
        try environment.forEach { key, value in
          if RecordGroup.isGroup(value) != dataset.isGrouped {
            unreadable += 1
            recordProblem(
              dataset.isGrouped
                ? "the value under \(RecordLayout.describe(key: key)) is not a record group (format 3 stores records only in groups)"
                : "a record group under \(RecordLayout.describe(key: key)) in a dataset of format 1 or 2")
          } else if dataset.isGrouped {
            do {
              try RecordGroup.forEachRecord(in: value, storedKey: key) { recordKey, record in
                check(recordKey, record)
                return true
              }
            } catch {
              unreadable += 1
              recordProblem("\(error)")
            }
          } else {
            check(key, value)
          }
          return true
        }
      } catch {
        problem(shard.file, "cannot read: \(error)")
        continue
      }
      if recordProblems > 20 { problem(shard.file, "\(recordProblems - 20) more record problems") }
      report.recordsChecked += count
      if unreadable > 0 {
        problem(
          shard.file,
          "\(unreadable) damaged record\(unreadable == 1 ? "" : "s") or group\(unreadable == 1 ? "" : "s") (above): its record "
            + "count, frames and statistics were not compared with the manifest")
      } else {
        if count != shard.records { problem(shard.file, "\(count) records, manifest says \(shard.records)") }
        if count > 0 && (minFrames != shard.minFrames || maxFrames != shard.maxFrames) {
          problem(shard.file, "frames \(minFrames)–\(maxFrames), manifest says \(shard.minFrames)–\(shard.maxFrames)")
        }
        if frames != shard.frames || samples != shard.samples {
          problem(shard.file, "frame or sample totals differ from the manifest")
        }
        if !statisticsAgree(statistics, shard.statistics) {
          problem(shard.file, "statistics recomputed from the records differ from the manifest's")
        }
      }
      if let previousLastKey, let firstKey, !previousLastKey.lexicographicallyPrecedes(firstKey) {
        problem(shard.file, "first record is not longer than the previous shard's last (length order broken)")
      }
      previousLastKey = lastKey ?? previousLastKey
    }
    if totals.records != split.records || totals.frames != split.frames {
      problem("manifest.json", "split \(split.name): totals differ from the sum of its shards")
    }
  }
  let localStatistics = manifest.normalization.statisticsSplits.allSatisfy { name in manifest.splits.contains { $0.name == name } }
  if localStatistics && !statisticsAgree(trainingStatistics, manifest.normalization.statistics) {
    problem("manifest.json", "normalization statistics differ from the merge of the training shards' statistics")
  }
  let rejectedPath = directory + "/" + manifest.rejected.file
  if let data = try? RegularFile.read(rejectedPath, maxBytes: 1 << 30) {
    let lines = data.split(separator: UInt8(ascii: "\n")).count
    if lines != manifest.rejected.count {
      problem(manifest.rejected.file, "\(lines) lines, manifest says \(manifest.rejected.count) rejected items")
    }
  } else {
    problem(manifest.rejected.file, "missing")
  }
  return report
}

/// What readers apply but records do not show: the normalization vectors against the
/// statistics they are derived from, and the feature parameters against each other and
/// against the recipe recorded in the manifest.
func checkAppliedParameters(_ manifest: DatasetManifest) -> [String] {
  var problems: [String] = []
  let n = manifest.normalization
  if n.mean != n.statistics.mean { problems.append("normalization.mean differs from the mean of normalization.statistics") }
  if n.std != n.statistics.standardDeviation {
    problems.append("normalization.std differs from the standard deviation of normalization.statistics")
  }
  let f = manifest.features
  if f.bins != f.fftSize / 2 + 1 { problems.append("features.bins \(f.bins) is not fftSize/2 + 1 (fftSize \(f.fftSize))") }
  // Compared as Doubles: a damaged manifest's seconds may be beyond any Int.
  if Double(f.windowSamples) != (f.windowSeconds * Double(f.sampleRateHertz)).rounded()
    || Double(f.hopSamples) != (f.hopSeconds * Double(f.sampleRateHertz)).rounded() || f.fftSize < f.windowSamples
  {
    problems.append("features: window and hop samples do not follow from their seconds and the rate, or fftSize < window")
  }
  // The recipe the dataset was made from, as recorded: what readers apply must agree with it.
  func recipeValue(_ path: String...) -> JSONValue? {
    var value = manifest.recipe
    for key in path {
      guard case .object(let object) = value, let next = object[key] else { return nil }
      value = next
    }
    return value
  }
  func agrees(_ value: JSONValue?, _ expected: Double) -> Bool {
    guard let value else { return true }
    if case .number(let number) = value { return number == expected }
    return false
  }
  func agrees(_ value: JSONValue?, _ expected: String) -> Bool {
    guard let value else { return true }
    if case .string(let string) = value { return string == expected }
    return false
  }
  let recorded: [(String, Bool)] = [
    ("audio.sampleRateHertz", agrees(recipeValue("audio", "sampleRateHertz"), Double(f.sampleRateHertz))),
    ("features.windowSeconds", agrees(recipeValue("features", "windowSeconds"), f.windowSeconds)),
    ("features.hopSeconds", agrees(recipeValue("features", "hopSeconds"), f.hopSeconds)),
    ("features.window", agrees(recipeValue("features", "window"), f.window.rawValue)),
    ("audio.channelRule", agrees(recipeValue("audio", "channelRule"), f.channelRule.rawValue)),
    ("audio.resampleQuality", agrees(recipeValue("audio", "resampleQuality"), f.resampleQuality.rawValue)),
    ("features.epsilon", agrees(recipeValue("features", "epsilon"), f.epsilon)),
    ("shards.dtype", agrees(recipeValue("shards", "dtype"), f.dtype.rawValue)),
    ("normalization.mode", agrees(recipeValue("normalization", "mode"), n.mode.rawValue)),
    ("normalization.stdFloor", agrees(recipeValue("normalization", "stdFloor"), n.stdFloor)),
  ]
  for (field, ok) in recorded where !ok { problems.append("\(field) differs from the recipe recorded in the manifest") }
  return problems
}

/// Shard files present in `shards/` but listed by no split (a split removed from the
/// manifest, or a shard from another dataset).
func checkShardFolder(directory: String, manifest: DatasetManifest) -> [String] {
  let listed = Set(manifest.splits.flatMap { $0.shards.map(\.file) })
  guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory + "/shards") else { return [] }
  return entries.sorted().filter { $0.hasSuffix(".mdb") && !listed.contains("shards/" + $0) }.map {
    "shards/\($0) is not listed in the manifest (a split or shard removed from manifest.json?)"
  }
}

/// Equal counts, and means and M2 equal to within floating-point noise.
func statisticsAgree(_ a: FeatureStatistics, _ b: FeatureStatistics) -> Bool {
  guard a.count == b.count, a.bins == b.bins else { return false }
  for k in 0..<a.bins {
    if abs(a.mean[k] - b.mean[k]) > 1e-9 * max(1, abs(b.mean[k])) { return false }
    if abs(a.m2[k] - b.m2[k]) > 1e-9 * max(1, abs(b.m2[k])) { return false }
  }
  return true
}
