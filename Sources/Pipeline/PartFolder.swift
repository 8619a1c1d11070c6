import DS2Core
import Foundation
import Shards

/// `partitions/K/` of a partitioned run: locked by the task writing part K (a second task
/// with the same index, as Kubernetes may start, is refused), holding the part's resume
/// journal and, once the part is done, `part.json`.
struct PartFolder: Sendable {
  static let folderName = "partitions"
  let owned: OutputFolder
  let partition: Partition
  var path: String { owned.path }

  /// Claims `partitions/K` of `folder` (whose whole output the caller holds with a shared
  /// lock).
  /// - Throws: `ConfigurationError` when another task writes part K, or when another part
  ///   of this output was made from a different recipe or as one of a different number of
  ///   parts (naming the part and the differing settings).
  static func claim(partition: Partition, in folder: DatasetFolder, identity: JSONValue) throws -> PartFolder {
    let root = folder.path + "/" + folderName
    do {
      try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    } catch {
      throw ConfigurationError("cannot create \(root): \(error.localizedDescription)")
    }
    for (index, other) in parts(in: root) {
      if let manifest = readManifest(other) {
        if manifest.identity != identity {
          throw ConfigurationError(
            "\(other) is part \(index) of a dataset made from a different recipe (differs in: "
              + "\(differingKeys(manifest.identity, identity).joined(separator: ", "))); every part of one output runs the same recipe")
        }
        if manifest.count != partition.count {
          throw ConfigurationError(
            "\(other) is part \(index) of \(manifest.count) parts, but this task says \(partition.count): "
              + "every task of one output gives the same N")
        }
      } else if let journal = RunJournal.load(directory: other), journal.recipe != identity {
        throw ConfigurationError(
          "\(other) holds an unfinished part of a different recipe (differs in: "
            + "\(differingKeys(journal.recipe, identity).joined(separator: ", "))); every part of one output runs the same recipe")
      }
    }
    do {
      let owned = try OutputFolder(path: root + "/\(partition.index)", kind: .dataset)
      return PartFolder(owned: owned, partition: partition)
    } catch let error as OutputFolderError {
      throw ConfigurationError("part \(partition): \(error.message)")
    }
  }

  /// Removes what ds2-data wrote under `root` (`partitions/`): each part's `part.json`,
  /// journal, marker and lock, the part folders once empty, the plan, and `root` once
  /// empty. Anything else there stays, and so do the folders holding it.
  static func removeAll(in root: String) {
    for (_, path) in parts(in: root) {
      for name in [PartManifest.fileName, RunJournal.fileName, OutputFolder.markerName, OutputFolder.lockName] {
        unlink(path + "/" + name)  // files only: a folder of that name is not ours and stays
      }
      rmdir(path)  // fails, leaving it, if it holds anything else
    }
    unlink(root + "/" + StoredPlan.fileName)
    rmdir(root)
  }

  /// The numbered part folders under `root`, by index.
  static func parts(in root: String) -> [(Int, String)] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
    return entries.compactMap { name in Int(name).map { ($0, root + "/" + name) } }.sorted { $0.0 < $1.0 }
  }

  /// The part's `part.json`, if it is there and readable.
  static func readManifest(_ directory: String) -> PartManifest? {
    guard let bytes = try? RegularFile.read(directory + "/" + PartManifest.fileName, maxBytes: DatasetManifest.maxBytes) else {
      return nil
    }
    return try? JSONDecoder().decode(PartManifest.self, from: Data(bytes))
  }

  /// True when this part is done for `identity` and `partition` (its `part.json` says so)
  /// and its shards in `output` are as it left them (size and modification time).
  /// - Parameter changed: told each shard that is missing or changed since, when the part
  ///   is otherwise done (it is then written again).
  func isComplete(identity: JSONValue, output: String, changed: (String) -> Void = { _ in }) -> Bool {
    guard let manifest = Self.readManifest(path),
      manifest.identity == identity && manifest.count == partition.count && manifest.index == partition.index
    else { return false }
    guard manifest.layout == SplitWriter.layoutVersion else {
      changed("its shards were written by another ds2-data version (shard layout \(manifest.layout.map(String.init) ?? "3 or older"), now \(SplitWriter.layoutVersion))")
      return false
    }
    var intact = true
    for shard in manifest.shards.values.joined().map(\.info) {
      let stamp = StoredPlan.FileStamp(path: output + "/" + shard.file)
      let recorded = manifest.shardStamps?[shard.file]
      if let stamp, stamp.bytes == shard.bytes, recorded == nil || recorded! == [stamp.bytes, stamp.modifiedNanoseconds] {
        continue
      }
      changed(shard.file + (stamp == nil ? " is missing" : " changed (size or modification time)") + " since the part finished")
      intact = false
    }
    return intact
  }

  /// The part's unfinished journal of this recipe and shard layout, if any.
  func resumableJournal(for fresh: RunJournal) -> RunJournal? {
    guard let existing = RunJournal.load(directory: path), existing.recipe == fresh.recipe, existing.layout == fresh.layout
    else { return nil }
    return existing
  }

  /// A fresh start: removes the part's `part.json` and journal (its shard files are
  /// rewritten when the run reaches them) and creates the dataset's `shards/`.
  func startOver(in folder: DatasetFolder) throws {
    do {
      let names = [PartManifest.fileName, RunJournal.fileName]
      try owned.removeOwnedFiles(names + names.map { $0 + ".tmp" })
    } catch let error as OutputFolderError {
      throw ConfigurationError(error.message)
    }
    do {
      try FileManager.default.createDirectory(atPath: folder.path + "/shards", withIntermediateDirectories: true)
    } catch {
      throw ConfigurationError("cannot create \(folder.path)/shards: \(error.localizedDescription)")
    }
  }

  /// Writes `part.json` (atomically): the part is complete.
  func finish(with manifest: PartManifest) throws {
    let text = String(decoding: try SortedJSONEncoder(prettyPrinted: false).encode(manifest), as: UTF8.self)
    try atomicWrite(text + "\n", to: path + "/" + PartManifest.fileName)
  }
}
