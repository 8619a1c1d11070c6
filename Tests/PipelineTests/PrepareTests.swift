import Audio
import DS2Core
import Foundation
import Shards
import TestSupport
import XCTest

@testable import Pipeline

final class PrepareTests: XCTestCase {
  func makeCorpus(_ directory: TemporaryDirectory, perSplit: Int = 6, rate: Int = 16_000) throws -> String {
    let root = directory.path + "/corpus"
    try LibriSpeechFixture(root: root).write(LibriSpeechFixture.standard(perSplit: perSplit), sampleRateHertz: rate)
    return root
  }

  func makeRecipe(root: String, output: String, threads: Int = 1) -> Recipe {
    var recipe = Recipe(
      name: "test", corpus: CorpusConfig(kind: .librispeech, root: root, splits: ["train-clean-100", "dev-clean", "test-clean"]),
      output: output)
    recipe.threads = threads
    recipe.shards.maxShardBytes = 1 << 20
    return recipe
  }

  func quietOptions(force: Bool = false) -> PrepareOptions {
    var options = PrepareOptions(force: force)
    options.logger.logLevel = .critical
    return options
  }

  /// manifest.json and the journal are exactly what `JSONEncoder` writes for them
  /// (`SortedJSONEncoder` is a faster writer of the same bytes).
  func testManifestAndJournalAreJSONEncodersText() throws {
    let directory = TemporaryDirectory("manifest-text")
    let root = try makeCorpus(directory, perSplit: 6)
    let output = directory.path + "/out"
    _ = try prepare(recipe: makeRecipe(root: root, output: output), options: quietOptions())
    let manifest = try Dataset(directory: output).manifest
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    let text = try String(contentsOfFile: output + "/manifest.json", encoding: .utf8)
    XCTAssertEqual(text, String(decoding: try encoder.encode(manifest), as: UTF8.self) + "\n")
    var journal = RunJournal(recipe: .object([:]))
    journal.splits["train"] = .init()
    journal.splits["train"]!.shards = manifest.splits.flatMap(\.shards)
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    XCTAssertEqual(try journal.text(), String(decoding: try encoder.encode(journal), as: UTF8.self))
  }

  /// Datasets of format version 2 (one record per LMDB value, 8-bit parameters in float32)
  /// are still read: the same records in the same order, by cursor walk and by key, and
  /// `verify` finds them intact (docs/FORMAT.md §8).
  func testDatasetsOfFormatTwoAreStillRead() throws {
    let directory = TemporaryDirectory("format-two")
    let root = try makeCorpus(directory, perSplit: 12)
    for dtype in [FeatureDType.uint8, .float16] {
      var recipe = makeRecipe(root: root, output: directory.path + "/\(dtype)")
      recipe.shards.dtype = dtype
      _ = try prepare(recipe: recipe, options: quietOptions())
      func everything() throws -> [ShardRecord] {
        let dataset = try Dataset(directory: recipe.output)
        var records: [ShardRecord] = []
        for split in dataset.manifest.splits {
          try dataset.forEachRecord(split: split.name) { records.append($0); return true }
          for location in try dataset.index(split: split.name).reversed() {
            XCTAssertEqual(try dataset.record(split: split.name, at: location).frames, location.frames)
          }
        }
        return records
      }
      let current = try everything()
      XCTAssertEqual(current.count, 36)
      try LegacyFormat.rewriteAsFormatTwo(directory: recipe.output)
      XCTAssertEqual(try Dataset(directory: recipe.output).manifest.formatVersion, 2)
      XCTAssertEqual(try everything(), current, "\(dtype)")
      let report = verifyDataset(directory: recipe.output)
      XCTAssertTrue(report.isIntact, "\(report.problems)")
      XCTAssertEqual(report.recordsChecked, 36)
    }
  }

  func testPrepareWritesLengthSortedShardsWithExactStatistics() throws {
    let directory = TemporaryDirectory("prepare")
    let root = try makeCorpus(directory, perSplit: 12)
    let output = directory.path + "/out"
    let report = try prepare(recipe: makeRecipe(root: root, output: output), options: quietOptions())
    XCTAssertEqual(report.records, 36)
    XCTAssertEqual(report.rejectedCount, 0)

    let dataset = try Dataset(directory: output)
    XCTAssertEqual(dataset.manifest.splits.map(\.name), ["train-clean-100", "dev-clean", "test-clean"])
    XCTAssertEqual(dataset.manifest.features.bins, 161)
    XCTAssertEqual(dataset.manifest.vocabulary, .english)
    for split in dataset.manifest.splits {
      var previous: (Int, [UInt8])?
      var count = 0
      try dataset.forEachRecord(split: split.name, normalized: false) { record in
        let key = (record.frames, Array(record.id.utf8))
        if let previous {
          XCTAssertTrue(previous.0 < key.0 || (previous.0 == key.0 && previous.1.lexicographicallyPrecedes(key.1)))
        }
        previous = key
        XCTAssertGreaterThan(record.frames, 0)
        XCTAssertFalse(record.labels.isEmpty)
        XCTAssertEqual(Vocabulary.english.decode(record.labels), record.transcript)
        XCTAssertEqual(record.frames, 1 + (record.sampleCount - 320) / 160)
        XCTAssertTrue(record.features.values.allSatisfy(\.isFinite))
        count += 1
        return true
      }
      XCTAssertEqual(count, split.records)
    }

    // Exact global statistics against a two-pass Double computation over the stored values.
    var raw: [[Float]] = []
    try dataset.forEachRecord(split: "train-clean-100", normalized: false) { raw.append($0.features.values); return true }
    let bins = 161
    let (mean, variance, frames) = twoPassStatistics(raw, bins: bins)
    let stats = dataset.manifest.normalization
    XCTAssertEqual(stats.statistics.count, frames)
    XCTAssertEqual(stats.statisticsSplits, ["train-clean-100"])
    for k in 0..<bins {
      XCTAssertEqual(stats.mean[k], mean[k], accuracy: 1e-9 * max(1, abs(mean[k])))
      XCTAssertEqual(stats.std[k], variance[k].squareRoot(), accuracy: 1e-9 * max(1, variance[k]))
    }

    // Normalized training features: per-bin mean 0 and std 1.
    var normalized = FeatureStatistics(bins: bins)
    try dataset.forEachRecord(split: "train-clean-100") { record in
      record.features.values.withUnsafeBufferPointer { normalized.add(frames: record.frames, values: $0) }
      return true
    }
    for k in 0..<bins {
      XCTAssertEqual(normalized.mean[k], 0, accuracy: 1e-4)
      XCTAssertEqual(normalized.standardDeviation[k], 1, accuracy: 1e-3)
    }
    XCTAssertTrue(FileManager.default.fileExists(atPath: output + "/recipe.yaml"))
    let resolved = try Recipe.load(path: output + "/recipe.yaml")
    XCTAssertEqual(resolved.contentIdentity, makeRecipe(root: root, output: output).contentIdentity)
  }

  func testOutputIsByteIdenticalForOneAndTwoThreads() throws {
    let directory = TemporaryDirectory("threads")
    let root = try makeCorpus(directory, perSplit: 10)
    var files: [[String: Data]] = []
    for threads in [1, 2] {
      let output = directory.path + "/out\(threads)"
      var recipe = makeRecipe(root: root, output: output, threads: threads)
      recipe.shards.maxShardBytes = 1 << 20
      _ = try prepare(recipe: recipe, options: quietOptions())
      var contents: [String: Data] = [:]
      let enumerator = FileManager.default.enumerator(atPath: output)!
      while let name = enumerator.nextObject() as? String {
        var isDirectory: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: output + "/" + name, isDirectory: &isDirectory)
        // The lock file records who held it and when: not dataset content.
        if !isDirectory.boolValue && name != "recipe.yaml" && name != OutputFolder.lockName {
          contents[name] = FileManager.default.contents(atPath: output + "/" + name)
        }
      }
      files.append(contents)
    }
    XCTAssertEqual(Set(files[0].keys), Set(files[1].keys))
    XCTAssertTrue(files[0].keys.contains("manifest.json"))
    for (name, data) in files[0] { XCTAssertEqual(data, files[1][name], "\(name) differs between 1 and 2 threads") }
  }

  /// Shard boundaries come from the plan: an utterance whose header is fine but whose audio
  /// fails to decode is rejected and leaves its planned room unused, so every other shard
  /// of the split keeps its name, records and bytes.
  func testARecordThatFailsToDecodeMovesNoLaterShardBoundary() throws {
    let directory = TemporaryDirectory("boundaries")
    let root = try makeCorpus(directory, perSplit: 72)
    func shards(_ output: String) throws -> [ShardInfo] {
      let recipe = makeRecipe(root: root, output: output)  // 1 MiB shards
      _ = try prepare(recipe: recipe, options: quietOptions())
      return try Dataset(directory: output).manifest.split(named: "train-clean-100")!.shards
    }
    let before = try shards(directory.path + "/before")
    XCTAssertGreaterThanOrEqual(before.count, 3)
    // Truncate the audio of a record of the first shard: its header still gives the length.
    let dataset = try Dataset(directory: directory.path + "/before")
    var victim: String?
    try dataset.forEachRecord(split: "train-clean-100") { record in
      victim = record.id
      return false
    }
    let id = try XCTUnwrap(victim)
    let parts = id.split(separator: "-")
    let path = "\(root)/LibriSpeech/train-clean-100/\(parts[0])/\(parts[1])/\(id).flac"
    let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
    try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: path))

    let after = try shards(directory.path + "/after")
    XCTAssertEqual(after.map(\.file), before.map(\.file))
    XCTAssertEqual(after[0].records, before[0].records - 1)
    XCTAssertEqual(Array(after.dropFirst()), Array(before.dropFirst()), "a later shard changed")
  }

  func testResampledCorpusHasExactLengths() throws {
    let directory = TemporaryDirectory("resample")
    let root = try makeCorpus(directory, perSplit: 3, rate: 22_050)
    let output = directory.path + "/out"
    _ = try prepare(recipe: makeRecipe(root: root, output: output), options: quietOptions())
    let dataset = try Dataset(directory: output)
    try dataset.forEachRecord(split: "dev-clean") { record in
      // The fixture's durations are exact at 22.05 kHz; lengths follow floor(n·16000/22050).
      XCTAssertEqual(record.frames, record.sampleCount < 320 ? 0 : 1 + (record.sampleCount - 320) / 160)
      return true
    }
    XCTAssertEqual(dataset.manifest.features.sampleRateHertz, 16_000)
  }

  func testEveryBadInputIsRejectedNamedAndCountedWhileGoodOnesLand() throws {
    let directory = TemporaryDirectory("bad")
    let root = try makeCorpus(directory, perSplit: 6)
    let fixture = LibriSpeechFixture(root: root)
    let chapter = fixture.chapterPath(LibriSpeechFixture.standard()[0])  // train-clean-100/100/200
    let transcript = chapter + "/100-200.trans.txt"
    func audio(_ name: String, _ samples: [Float], channels: Int = 1) throws {
      try AudioEncoder.write(interleaved: samples, channels: channels, sampleRateHertz: 16_000, format: .flac16, to: chapter + "/" + name + ".flac")
    }
    // unreadable: bytes that are not audio
    try Data("not a flac file".utf8).write(to: URL(fileURLWithPath: chapter + "/100-200-0901.flac"))
    try appendLine("100-200-0901 GARBAGE AUDIO", to: transcript)
    // empty: a zero-byte file
    _ = FileManager.default.createFile(atPath: chapter + "/100-200-0902.flac", contents: nil)
    try appendLine("100-200-0902 EMPTY FILE", to: transcript)
    // too short: 10 ms, less than one window
    try audio("100-200-0903", Signals.sine(frequencyHertz: 300, seconds: 0.01, sampleRateHertz: 16_000))
    try appendLine("100-200-0903 TOO SHORT", to: transcript)
    // stereo under the mono rule
    try audio("100-200-0904", Signals.noise(count: 16_000, seed: 4), channels: 2)
    try appendLine("100-200-0904 TWO CHANNELS", to: transcript)
    // out of vocabulary
    try audio("100-200-0905", Signals.voiced(seconds: 1, sampleRateHertz: 16_000, seed: 5))
    try appendLine("100-200-0905 ROOM 101 CAFÉ", to: transcript)
    // non-UTF-8 transcript line
    try audio("100-200-0906", Signals.voiced(seconds: 1, sampleRateHertz: 16_000, seed: 6))
    try appendBytes(Array("100-200-0906 BAD ".utf8) + [0xFF, 0xFE] + Array(" BYTES\n".utf8), to: transcript)
    // transcript line without audio
    try appendLine("100-200-0907 NO AUDIO FILE", to: transcript)
    // audio without transcript
    try audio("100-200-0908", Signals.voiced(seconds: 1, sampleRateHertz: 16_000, seed: 8))
    // a duplicated line
    try audio("100-200-0909", Signals.voiced(seconds: 1.2, sampleRateHertz: 16_000, seed: 9))
    try appendLine("100-200-0909 FIRST COPY", to: transcript)
    try appendLine("100-200-0909 SECOND COPY", to: transcript)
    // a line with an id and no text
    try appendLine("100-200-0910", to: transcript)
    // a valid file with no samples
    try AudioEncoder.write(interleaved: [], sampleRateHertz: 16_000, format: .wavPCM16, to: chapter + "/100-200-0912.flac")
    try appendLine("100-200-0912 NO SAMPLES", to: transcript)
    // float samples that are not finite
    var nan = Signals.voiced(seconds: 1, sampleRateHertz: 16_000, seed: 13)
    nan[100] = .nan
    try AudioEncoder.write(interleaved: nan, sampleRateHertz: 16_000, format: .wavFloat, to: chapter + "/100-200-0913.flac")
    try appendLine("100-200-0913 NOT A NUMBER", to: transcript)
    // a good extra utterance after all the bad ones
    try audio("100-200-0911", Signals.voiced(seconds: 1.1, sampleRateHertz: 16_000, seed: 11))
    try appendLine("100-200-0911 STILL LANDS", to: transcript)

    let output = directory.path + "/out"
    var recipe = makeRecipe(root: root, output: output)
    recipe.filters.minDurationSeconds = 0
    let report = try prepare(recipe: recipe, options: quietOptions())
    let expected: [RejectionReason: Int] = [
      .unreadableAudio: 2, .tooShort: 1, .badChannels: 1, .outOfVocabulary: 1, .nonUTF8Transcript: 1, .missingAudio: 1,
      .missingTranscript: 1, .duplicateId: 1, .malformedTranscript: 1, .emptyAudio: 1, .nonFiniteAudio: 1,
    ]
    XCTAssertEqual(report.rejectionsByReason, expected)
    XCTAssertEqual(report.records, 18 + 2)  // the standard 18, plus 0909 (first copy) and 0911

    let lines = try String(contentsOfFile: output + "/rejected.jsonl", encoding: .utf8).split(separator: "\n")
    XCTAssertEqual(lines.count, 12)
    let items = try lines.map { try JSONDecoder().decode(ItemError.self, from: Data($0.utf8)) }
    let byReason = Dictionary(grouping: items, by: \.reason)
    XCTAssertEqual(byReason[.nonUTF8Transcript]?.first?.file, transcript)
    XCTAssertEqual(byReason[.nonUTF8Transcript]?.first?.line, 9)
    XCTAssertEqual(byReason[.nonUTF8Transcript]?.first?.utteranceId, "100-200-0906")
    XCTAssertTrue(byReason[.outOfVocabulary]!.first!.message.contains("'1'"))
    XCTAssertTrue(byReason[.outOfVocabulary]!.first!.message.contains("'É'"))
    XCTAssertEqual(byReason[.outOfVocabulary]?.first?.line, 8)
    XCTAssertEqual(byReason[.duplicateId]?.first?.line, 12)
    XCTAssertEqual(byReason[.badChannels]?.first?.file, chapter + "/100-200-0904.flac")
    XCTAssertEqual(byReason[.missingTranscript]?.first?.utteranceId, "100-200-0908")

    let dataset = try Dataset(directory: output)
    XCTAssertEqual(dataset.manifest.rejected.count, 12)
    var ids: [String] = []
    try dataset.forEachRecord(split: "train-clean-100") { ids.append($0.id); return true }
    XCTAssertTrue(ids.contains("100-200-0911"))
    XCTAssertTrue(ids.contains("100-200-0909"))
  }

  func testMissingSplitsAreSkippedAndARootWithNoneIsAnError() throws {
    let directory = TemporaryDirectory("splits")
    let root = try makeCorpus(directory, perSplit: 2)
    var recipe = makeRecipe(root: root, output: directory.path + "/out")
    recipe.corpus.splits.append("train-other-500")
    let report = try prepare(recipe: recipe, options: quietOptions())
    XCTAssertEqual(report.missingSplits, ["train-other-500"])
    XCTAssertEqual(report.splits.map(\.name), ["train-clean-100", "dev-clean", "test-clean"])

    var none = makeRecipe(root: root, output: directory.path + "/none")
    none.corpus = CorpusConfig(kind: .librispeech, root: root, splits: ["dev-other"], trainingSplits: [])
    none.normalization.mode = .none
    XCTAssertThrowsError(try prepare(recipe: none, options: quietOptions())) { error in
      XCTAssertTrue("\(error)".contains("holds none of the splits dev-other"), "\(error)")
    }
    var absentRoot = makeRecipe(root: directory.path + "/nope", output: directory.path + "/none")
    absentRoot.corpus.root = directory.path + "/nope"
    XCTAssertThrowsError(try prepare(recipe: absentRoot, options: quietOptions())) { error in
      XCTAssertTrue("\(error)".contains("/nope does not exist"), "\(error)")
    }
  }

  func testRerunIsANoOpAndAChangedRecipeIsRefusedUnlessForced() throws {
    let directory = TemporaryDirectory("rerun")
    let root = try makeCorpus(directory, perSplit: 2)
    let output = directory.path + "/out"
    let recipe = makeRecipe(root: root, output: output)
    _ = try prepare(recipe: recipe, options: quietOptions())
    let manifest = try Data(contentsOf: URL(fileURLWithPath: output + "/manifest.json"))
    var again = recipe
    again.threads = 2  // execution settings do not change the dataset
    XCTAssertTrue(try prepare(recipe: again, options: quietOptions()).alreadyComplete)

    var changed = recipe
    changed.shards.dtype = .float32
    XCTAssertThrowsError(try prepare(recipe: changed, options: quietOptions())) { error in
      XCTAssertTrue("\(error)".contains("differs in: shards.dtype float16 → float32"), "\(error)")
      XCTAssertTrue("\(error)".contains("--force"), "\(error)")
    }
    XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: output + "/manifest.json")), manifest)
    let forced = try prepare(recipe: changed, options: quietOptions(force: true))
    XCTAssertFalse(forced.alreadyComplete)
    XCTAssertEqual(try Dataset(directory: output).manifest.features.dtype, .float32)
  }

  func testUtteranceAndNoNormalization() throws {
    let directory = TemporaryDirectory("modes")
    let root = try makeCorpus(directory, perSplit: 2)
    for mode in [NormalizationMode.utterance, .none] {
      var recipe = makeRecipe(root: root, output: directory.path + "/\(mode)")
      recipe.normalization.mode = mode
      _ = try prepare(recipe: recipe, options: quietOptions())
      let dataset = try Dataset(directory: recipe.output)
      try dataset.forEachRecord(split: "dev-clean") { record in
        var raw: ShardRecord?
        try dataset.forEachRecord(split: "dev-clean", normalized: false) { candidate in
          if candidate.id == record.id { raw = candidate }
          return raw == nil
        }
        var statistics = FeatureStatistics(bins: record.bins)
        record.features.values.withUnsafeBufferPointer { statistics.add(frames: record.frames, values: $0) }
        if mode == .utterance {
          for k in 0..<record.bins { XCTAssertEqual(statistics.mean[k], 0, accuracy: 1e-4) }
        } else {
          XCTAssertEqual(record.features, raw?.features)
        }
        return true
      }
    }
  }
}

final class RecipeTests: XCTestCase {
  /// Fuzzing the recipe loader (short run; `DS2_FUZZ_ITERATIONS=200000 swift test
  /// --filter RecipeTests/testFuzzed` for the long run): mutated YAML, including invalid
  /// UTF-8, loads or throws `ConfigurationError` naming the file — never a crash.
  func testFuzzedRecipesLoadOrGiveConfigurationErrors() throws {
    let directory = TemporaryDirectory("fuzz-recipe")
    var seeds: [[UInt8]] = []
    for name in try FileManager.default.contentsOfDirectory(atPath: repositoryRoot + "/recipes") where name.hasSuffix(".yaml") {
      seeds.append(Array(FileManager.default.contents(atPath: repositoryRoot + "/recipes/" + name)!))
    }
    var mutator = Mutator(seeds: seeds, seed: 7)
    let path = directory.path + "/fuzzed.yaml"
    var loaded = 0
    for _ in 0..<Mutator.iterations(short: 1500) {
      _ = FileManager.default.createFile(atPath: path, contents: Data(mutator.next()))
      do {
        let recipe = try Recipe.load(path: path)
        loaded += 1
        do { try recipe.validate() } catch is ConfigurationError {}
      } catch let error as ConfigurationError {
        XCTAssertTrue(error.message.contains(path), error.message)
      }
    }
    XCTAssertGreaterThan(loaded, 10)
  }

  func testBundledRecipesLoadAndValidate() throws {
    for name in try FileManager.default.contentsOfDirectory(atPath: repositoryRoot + "/recipes") where name.hasSuffix(".yaml") {
      let recipe = try Recipe.load(path: repositoryRoot + "/recipes/" + name)
      XCTAssertNoThrow(try recipe.validate(), name)
    }
  }

  func testUnknownKeysAndBadValuesAreNamed() throws {
    let directory = TemporaryDirectory("recipe")
    func load(_ yaml: String) throws -> Recipe {
      let path = directory.path + "/r.yaml"
      try yaml.write(toFile: path, atomically: true, encoding: .utf8)
      return try Recipe.load(path: path)
    }
    let base = "corpus: {kind: librispeech, root: /x, splits: [train-clean-100]}\n"
    XCTAssertThrowsError(try load(base + "features: {windowSecond: 0.02}")) { error in
      XCTAssertTrue("\(error)".contains("windowSecond"), "\(error)")
      XCTAssertTrue("\(error)".contains("features"), "\(error)")
    }
    XCTAssertThrowsError(try load("corpus: {kind: timit, root: /x, splits: [a]}")) { error in
      XCTAssertTrue("\(error)".contains("corpus.kind"), "\(error)")
    }
    XCTAssertThrowsError(try load("name: x")) { error in XCTAssertTrue("\(error)".contains("corpus"), "\(error)") }
    XCTAssertThrowsError(try load(base + "shards: {maxShardBytes: 10}").validate()) { error in
      XCTAssertTrue("\(error)".contains("maxShardBytes"), "\(error)")
    }
    let defaults = try load(base)
    XCTAssertEqual(defaults.features, SpectrogramConfigDefaults.value)
    XCTAssertEqual(defaults.corpus.trainingSplits, ["train-clean-100"])
    XCTAssertEqual(defaults.shards.dtype, .float16)
    XCTAssertEqual(defaults.normalization.mode, .global)
  }
}

import Features

enum SpectrogramConfigDefaults {
  static let value = SpectrogramConfig()
}
