import Audio
import Augmentation
import Corpus
import DS2Core
import Features
import Foundation
import Logging
import Shards

// The output directory: existing datasets, the resume journal, borrowed statistics.
extension Preparer {
  /// The normalization statistics of another (clean) dataset made with the same features.
  /// - Throws: `ConfigurationError` when it cannot be read or its features differ.
  func borrowedStatistics(from directory: String, features: FeatureParameters) throws -> (FeatureStatistics, [String]) {
    let dataset: Dataset
    do { dataset = try Dataset(directory: directory) } catch {
      throw ConfigurationError("augment.statisticsFrom: \(error)")
    }
    var theirs = dataset.manifest.features
    theirs.dtype = features.dtype
    guard theirs == features else {
      throw ConfigurationError("augment.statisticsFrom: \(directory) was made with different feature settings")
    }
    let normalization = dataset.manifest.normalization
    return (normalization.statistics, normalization.statisticsSplits.map { "\(directory):\($0)" })
  }

  // MARK: Output directory

  /// Claims the output folder: refuses unsafe paths and folders holding anything but a
  /// ds2-data dataset, and locks it for this run (`OutputFolder`).
  /// - Throws: `ConfigurationError` with the reason (and the holder of the lock).
  func claimOutput() throws -> OutputFolder {
    var inputs = [recipe.corpus.root]
    if augmenting, let config = recipe.augment {
      inputs += [config.noise.bank, config.reverb.impulseResponses, config.statisticsFrom].compactMap { $0 }
    }
    do {
      return try OutputFolder(
        path: output, kind: .dataset, protectedPaths: inputs, legacyEvidence: ["manifest.json", RunJournal.fileName])
    } catch let error as OutputFolderError {
      throw ConfigurationError(error.message)
    }
  }

  /// True when `output` already holds the dataset of this recipe. Throws when it holds
  /// another one (unless forced, in which case the old dataset is removed).
  func existingDatasetMatches() throws -> Bool {
    let manifestPath = output + "/manifest.json"
    if RegularFile.exists(manifestPath) {
      let data = (try? RegularFile.read(manifestPath, maxBytes: DatasetManifest.maxBytes)).map { Data($0) } ?? Data()
      if let existing = try? JSONDecoder().decode(DatasetManifest.self, from: data),
        existing.recipe == identity, !options.force
      {
        return true
      }
      if !options.force {
        let existing = try? JSONDecoder().decode(DatasetManifest.self, from: data)
        let changed = existing.map { differingKeys($0.recipe, identity) } ?? ["manifest unreadable"]
        throw ConfigurationError(
          "\(output) already holds a dataset made from a different recipe (differs in: "
            + "\(changed.joined(separator: ", "))); rerun with --force to replace it, or choose another --output")
      }
      // The manifest goes first: from here on no reader opens the old dataset.
      do { try ownedFolder.removeOwnedFiles(["manifest.json"]) } catch let error as OutputFolderError {
        throw ConfigurationError(error.message)
      }
      try wipeOutput(ownedFolder)
    }
    return false
  }

  /// Returns true to resume the journaled run of this recipe, false to start a new one
  /// (the caller then wipes the output while the headers are probed); refuses to mix with
  /// an unfinished run of another recipe unless forced. A run begun by a writer with other
  /// shard rules (`SplitWriter.layoutVersion`) starts over: resuming it would not give the
  /// bytes of an uninterrupted run.
  func openJournal() throws -> Bool {
    if let existing = RunJournal.load(directory: output) {
      if existing.recipe == journal.recipe && existing.layout != journal.layout && !options.force {
        let layouts = "shard layout \(existing.layout.map(String.init) ?? "1"), now \(SplitWriter.layoutVersion)"
        logger.warning("\(output) holds an unfinished run of this recipe begun by another ds2-data version (\(layouts)); starting it over")
        return false
      }
      if existing.recipe == journal.recipe && !options.force {
        journal = existing
        let shards = existing.splits.values.reduce(0) { $0 + $1.shards.count }
        let records = existing.splits.values.reduce(0) { $0 + $1.shards.reduce(0) { $0 + $1.records } }
        logger.notice("resuming \(output): \(shards) shard(s), \(records) record(s) already written")
        return true
      }
      if !options.force {
        throw ConfigurationError(
          "\(output) holds an unfinished run of a different recipe (differs in: "
            + "\(differingKeys(existing.recipe, journal.recipe).joined(separator: ", "))); rerun that recipe to "
            + "finish it, or use --force to discard it")
      }
    }
    return false
  }
}

/// The top-level files a dataset folder holds (besides the marker and the lock).
let datasetFileNames = ["manifest.json", "recipe.yaml", "rejected.jsonl", RunJournal.fileName]

/// True for the names of shard files ds2-data writes (`<split>-NNNNN.mdb`, its
/// `.partial`, and the temporary files of atomic writes).
func isShardFileName(_ name: String) -> Bool {
  name.hasSuffix(".mdb") || name.hasSuffix(".mdb.partial") || name.hasSuffix(".mdb.tmp")
}

/// Removes what ds2-data writes in the dataset folder (never other files: a foreign file in
/// `shards/` stays, and so does the folder) and creates `shards/`.
/// - Throws: `ConfigurationError` naming the file that cannot be removed or created.
func wipeOutput(_ folder: OutputFolder) throws {
  do {
    try folder.removeOwnedFiles(datasetFileNames + datasetFileNames.map { $0 + ".tmp" })
    try folder.removeOwnedFiles(inFolder: "shards", where: isShardFileName)
  } catch let error as OutputFolderError {
    throw ConfigurationError(error.message)
  }
  do {
    try FileManager.default.createDirectory(atPath: folder.path + "/shards", withIntermediateDirectories: true)
  } catch {
    throw ConfigurationError("cannot create output directory \(folder.path)/shards: \(error.localizedDescription)")
  }
}
