import DS2Core
import Foundation
import Logging
import Shards

/// Joins the parts of a partitioned `prepare` or `augment` (the `ds2-data merge` command):
/// checks that every part `0..<N` is complete, made from one recipe, and that its shards
/// are there with their recorded sizes; concatenates the shards of each split in part
/// order, merges the statistics in shard order and the rejections in plan order, and
/// writes `rejected.jsonl`, `recipe.yaml` and, last and atomically, `manifest.json`: the
/// same bytes a single run of the recipe writes. Then removes `partitions/` (the parts and
/// the plan). A merged
/// output is left as it is (a second merge does nothing).
/// - Throws: `ConfigurationError` naming a missing, unfinished or foreign part, or a
///   missing or changed shard.
public func merge(output: String, logger: Logger = Logger(label: "ds2-data.merge")) throws -> PrepareReport {
  let started = DispatchTime.now()
  var status = stat()
  guard stat(output, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR else {
    throw ConfigurationError("\(output): no such folder; give the output the --partition tasks wrote")
  }
  let folder = try DatasetFolder.claim(output, protecting: [], logger: logger)
  // The lock is held until the merge returns, not only until the folder's last use.
  defer { withExtendedLifetime(folder) {} }
  let root = output + "/" + PartFolder.folderName
  let parts = PartFolder.parts(in: root)
  var report = PrepareReport(outputDirectory: output)
  guard let (firstIndex, firstPath) = parts.first else {
    if RegularFile.exists(output + "/manifest.json") {
      report.alreadyComplete = true
      report.countExistingRejections(in: output)
      return report
    }
    throw ConfigurationError("\(output): no parts to merge (no \(PartFolder.folderName)/K folders); run prepare --partition K/N first")
  }
  guard let first = PartFolder.readManifest(firstPath) else {
    throw ConfigurationError("\(firstPath): part \(firstIndex) is unfinished (no \(PartManifest.fileName)); rerun prepare --partition \(firstIndex)/N")
  }
  let count = first.count
  var manifests: [PartManifest] = []
  for index in 0..<count {
    let path = root + "/\(index)"
    guard let manifest = index == firstIndex ? first : PartFolder.readManifest(path) else {
      let state =
        RegularFile.exists(path + "/" + PartManifest.fileName)
        ? "is damaged (its \(PartManifest.fileName) cannot be read)"
        : RunJournal.load(directory: path) != nil ? "is unfinished" : "is missing"
      let beyond = parts.filter { $0.0 >= count }.map { "partitions/\($0.0)" }
      throw ConfigurationError(
        "\(output): part \(index) of \(count) \(state); run prepare --partition \(index)/\(count) (same recipe) and merge again"
          + (beyond.isEmpty ? "" : " (\(beyond.joined(separator: ", ")) is beyond the \(count) parts: a run with another N?)"))
    }
    guard manifest.identity == first.identity, manifest.count == count, manifest.index == index else {
      throw ConfigurationError(
        "\(path): part \(index) was made from another recipe or as part of another split (differs in: "
          + "\(differingKeys(manifest.identity, first.identity).joined(separator: ", ")); parts \(count))")
    }
    guard manifest.planDigest == first.planDigest else {
      throw ConfigurationError(
        "\(path): part \(index) was made "
          + (manifest.planDigest == nil ? "by listing the corpus itself" : "from the plan with digest \(manifest.planDigest!)")
          + ", part \(firstIndex) " + (first.planDigest == nil ? "by listing the corpus itself" : "from the plan with digest \(first.planDigest!)")
          + " (the plan was written after some parts ran, or the corpus changed); rerun the parts that differ")
    }
    guard manifest.layout == SplitWriter.layoutVersion else {
      throw ConfigurationError(
        "\(path): part \(index)'s shards were written by another ds2-data version (shard layout "
          + "\(manifest.layout.map(String.init) ?? "3 or older"), this one writes \(SplitWriter.layoutVersion)); "
          + "rerun prepare --partition \(index)/\(count) (same recipe) with this version, then merge again")
    }
    manifests.append(manifest)
  }
  if let extra = parts.first(where: { $0.0 >= count }) {
    throw ConfigurationError("\(extra.1): a part beyond the \(count) parts the others name; remove it or rerun with N = \(extra.0 + 1)")
  }
  var shardsBySplit: [String: [ShardInfo]] = [:]
  for split in first.splits {
    shardsBySplit[split] = manifests.flatMap { ($0.shards[split] ?? []).map(\.info) }
  }
  for (index, manifest) in manifests.enumerated() {
    for shard in manifest.shards.values.joined().map(\.info) {
      do { try DatasetManifest.checkShardPath(shard.file, manifest: root + "/\(index)/" + PartManifest.fileName) } catch {
        throw ConfigurationError("\(error)")
      }
    }
  }
  for (index, manifest) in manifests.enumerated() {
    for shard in manifest.shards.values.joined().map(\.info) {
      let path = output + "/" + shard.file
      let stamp = StoredPlan.FileStamp(path: path)
      let recorded = manifest.shardStamps?[shard.file]
      guard let stamp, stamp.bytes == shard.bytes,
        recorded == nil || recorded! == [stamp.bytes, stamp.modifiedNanoseconds]
      else {
        throw ConfigurationError(
          "\(path): " + (stamp == nil ? "missing" : "changed after part \(index) finished (its size or modification time differs)")
            + "; rerun part \(index): prepare --partition \(index)/\(count) (same recipe), then merge again")
      }
    }
  }

  var options = PrepareOptions()
  options.logger = logger
  let preparer = Preparer(recipe: first.recipe, options: options, augmenting: first.augmenting)
  preparer.rejections = first.planRejections + manifests.flatMap(\.rejections)
  let (manifest, splitInfos) = try preparer.assembleManifest(
    features: first.features, vocabulary: first.vocabulary, splits: first.splits, shardsBySplit: shardsBySplit,
    missingSplits: first.missingSplits, inputs: first.inputs)
  // What readers will check, checked before anything is written.
  do { try manifest.validate(path: output + "/manifest.json") } catch { throw ConfigurationError("merge: \(error)") }
  let encoder = JSONEncoder()
  encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
  var rejected = ""
  for rejection in preparer.rejections {
    rejected += String(decoding: try encoder.encode(rejection), as: UTF8.self) + "\n"
  }
  try atomicWrite(rejected, to: output + "/rejected.jsonl")
  try atomicWrite(first.recipeYAML ?? first.recipe.yaml(), to: output + "/recipe.yaml")
  try atomicWrite(preparer.encodeManifest(manifest), to: output + "/manifest.json")
  // The parts are merged: their folders are ours to remove.
  PartFolder.removeAll(in: root)

  report.verb = first.augmenting ? "augmented" : "prepared"
  report.mergedParts = count
  report.noiseFiles = first.noiseFiles
  report.missingSplits = first.missingSplits
  report.addSplits(splitInfos)
  report.countRejections(preparer.rejections)
  report.wallSeconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
  report.peakMemoryBytes = peakResidentBytes()
  return report
}
