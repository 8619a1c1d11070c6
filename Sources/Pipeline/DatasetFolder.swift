import Audio
import Augmentation
import Corpus
import DS2Core
import Features
import Foundation
import Logging
import Shards

/// The dataset folder of a `prepare` run: claimed and locked for the run (`OutputFolder`),
/// checked for a finished dataset or an unfinished run, and emptied of what ds2-data wrote
/// there (never of anything else).
struct DatasetFolder: Sendable {
  let owned: OutputFolder
  let logger: Logger
  var path: String { owned.path }

  /// Claims `path`: refuses unsafe paths, folders holding anything but a ds2-data dataset,
  /// and any folder that is or holds one of `inputs`; locks it for this run.
  /// - Throws: `ConfigurationError` with the reason (and the holder of the lock).
  static func claim(
    _ path: String, protecting inputs: [String], lock: OutputFolder.LockMode = .exclusive, logger: Logger
  ) throws -> DatasetFolder {
    do {
      let owned = try OutputFolder(
        path: path, kind: .dataset, protectedPaths: inputs, lock: lock, legacyEvidence: ["manifest.json", RunJournal.fileName])
      return DatasetFolder(owned: owned, logger: logger)
    } catch let error as OutputFolderError {
      throw ConfigurationError(error.message)
    }
  }

  /// Removes the folder when this run created it and wrote nothing of value into it (at
  /// most an empty journal and an empty `shards/`): a run that fails before its first shard
  /// leaves nothing behind.
  func removeIfNothingWritten() {
    if let journal = RunJournal.load(directory: path), !journal.splits.values.allSatisfy({ $0.shards.isEmpty }) { return }
    owned.removeIfNothingWritten(disposable: ["shards", RunJournal.fileName, RunJournal.fileName + ".tmp"])
  }

  /// True when the folder already holds the dataset of `identity`. Throws when it holds
  /// another one, unless `force`, in which case the old dataset is removed.
  func holdsDataset(identity: JSONValue, force: Bool) throws -> Bool {
    let output = path
    let manifestPath = output + "/manifest.json"
    if RegularFile.exists(manifestPath) {
      let data = (try? RegularFile.read(manifestPath, maxBytes: DatasetManifest.maxBytes)).map { Data($0) } ?? Data()
      if let existing = try? JSONDecoder().decode(DatasetManifest.self, from: data),
        existing.recipe == identity, !force
      {
        return true
      }
      if !force {
        let existing = try? JSONDecoder().decode(DatasetManifest.self, from: data)
        let changed = existing.map { differingKeys($0.recipe, identity) } ?? ["manifest unreadable"]
        throw ConfigurationError(
          "\(output) already holds a dataset made from a different recipe (differs in: "
            + "\(changed.joined(separator: ", "))); rerun with --force to replace it, or choose another --output")
      }
      // The manifest goes first: from here on no reader opens the old dataset.
      do { try owned.removeOwnedFiles(["manifest.json"]) } catch let error as OutputFolderError {
        throw ConfigurationError(error.message)
      }
      try wipe()
    }
    return false
  }

  /// The journal of an unfinished run of this recipe to resume, or nil to start a new one
  /// from `fresh` (the caller then wipes the folder); refuses to mix with an unfinished run
  /// of another recipe unless `force`. A run begun by a writer with other shard rules
  /// (`SplitWriter.layoutVersion`) starts over: resuming it would not give the bytes of an
  /// uninterrupted run.
  func resumableJournal(for fresh: RunJournal, force: Bool) throws -> RunJournal? {
    let (output, journal) = (path, fresh)
    if let existing = RunJournal.load(directory: output) {
      if existing.recipe == journal.recipe && existing.layout != journal.layout && !force {
        let layouts = "shard layout \(existing.layout.map(String.init) ?? "1"), now \(SplitWriter.layoutVersion)"
        logger.warning("\(output) holds an unfinished run of this recipe begun by another ds2-data version (\(layouts)); starting it over")
        return nil
      }
      if existing.recipe == journal.recipe && !force {
        let shards = existing.splits.values.reduce(0) { $0 + $1.shards.count }
        let records = existing.splits.values.reduce(0) { $0 + $1.shards.reduce(0) { $0 + $1.records } }
        logger.notice("resuming \(output): \(shards) shard(s), \(records) record(s) already written")
        return existing
      }
      if !force {
        throw ConfigurationError(
          "\(output) holds an unfinished run of a different recipe (differs in: "
            + "\(differingKeys(existing.recipe, journal.recipe).joined(separator: ", "))); rerun that recipe to "
            + "finish it, or use --force to discard it")
      }
    }
    return nil
  }

  /// Removes what ds2-data writes in the folder (never other files: a foreign file in
  /// `shards/` stays, and so does the folder) and creates `shards/`.
  /// - Throws: `ConfigurationError` naming the file that cannot be removed or created.
  func wipe() throws {
    do {
      try owned.removeOwnedFiles(datasetFileNames + datasetFileNames.map { $0 + ".tmp" })
      try owned.removeOwnedFiles(inFolder: "shards", where: isShardFileName)
    } catch let error as OutputFolderError {
      throw ConfigurationError(error.message)
    }
    do {
      try FileManager.default.createDirectory(atPath: path + "/shards", withIntermediateDirectories: true)
    } catch {
      throw ConfigurationError("cannot create output directory \(path)/shards: \(error.localizedDescription)")
    }
  }
}

/// The top-level files a dataset folder holds (besides the marker and the lock).
let datasetFileNames = ["manifest.json", "recipe.yaml", "rejected.jsonl", RunJournal.fileName]

/// True for the names of shard files ds2-data writes (`<split>-NNNNN.mdb`, its
/// `.partial`, and the temporary files of atomic writes).
func isShardFileName(_ name: String) -> Bool {
  name.hasSuffix(".mdb") || name.hasSuffix(".mdb.partial") || name.hasSuffix(".mdb.tmp")
}
