import Augmentation
import DS2Core
import Foundation
import Shards
import TestSupport
import XCTest

@testable import Pipeline

/// `prepare --partition K/N` by N tasks, then `merge`: the same bytes as one run.
final class PartitionedPrepareTests: XCTestCase {
  func quiet(_ partition: Partition? = nil) -> PrepareOptions {
    var options = PrepareOptions()
    options.logger.logLevel = .critical
    options.partition = partition
    return options
  }

  /// The dataset files that must be identical (recipe.yaml records the output path).
  func contents(_ output: String) throws -> [String: Data] {
    var files: [String: Data] = [:]
    let enumerator = FileManager.default.enumerator(atPath: output)!
    while let name = enumerator.nextObject() as? String {
      var isDirectory: ObjCBool = false
      _ = FileManager.default.fileExists(atPath: output + "/" + name, isDirectory: &isDirectory)
      if !isDirectory.boolValue && !["recipe.yaml", OutputFolder.lockName].contains(name) {
        files[name] = FileManager.default.contents(atPath: output + "/" + name)
      }
    }
    return files
  }

  /// A corpus with a rejection at planning (a transcript line without audio) and one while
  /// featurizing (audio truncated behind a readable header), 1 MiB shards: for N = 1, 2, 3,
  /// 7 and more parts than shards, tasks run in reverse order and merged give the
  /// single run's manifest, rejections and shards byte for byte; a second merge does
  /// nothing; `verify` passes.
  func testMergedPartsAreByteIdenticalToOneRun() throws {
    let directory = TemporaryDirectory("partitions")
    let root = directory.path + "/corpus"
    try LibriSpeechFixture(root: root).write(LibriSpeechFixture.standard(perSplit: 30))
    let chapter = root + "/LibriSpeech/train-clean-100"
    let speakers = try FileManager.default.contentsOfDirectory(atPath: chapter).sorted()
    let chapters = try FileManager.default.contentsOfDirectory(atPath: chapter + "/" + speakers[0]).sorted()
    let folder = chapter + "/" + speakers[0] + "/" + chapters[0]
    let audio = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".flac") }.sorted()
    let bytes = try Data(contentsOf: URL(fileURLWithPath: folder + "/" + audio[0]))
    try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: folder + "/" + audio[0]))
    let transcript = try FileManager.default.contentsOfDirectory(atPath: folder).first { $0.hasSuffix(".trans.txt") }!
    try appendLine("\(speakers[0])-\(chapters[0])-9999 NO AUDIO HERE", to: folder + "/" + transcript)

    func recipe(_ output: String) -> Recipe {
      var recipe = Recipe(
        name: "parts", corpus: CorpusConfig(kind: .librispeech, root: root, splits: ["train-clean-100", "dev-clean", "test-clean"]),
        output: output)
      recipe.threads = 1
      recipe.shards.maxShardBytes = 1 << 20
      return recipe
    }
    let single = directory.path + "/single"
    let whole = try prepare(recipe: recipe(single), options: quiet())
    XCTAssertEqual(whole.rejectedCount, 2)
    let expected = try contents(single)
    let shardCount = try Dataset(directory: single).manifest.splits.reduce(0) { $0 + $1.shards.count }
    XCTAssertGreaterThanOrEqual(shardCount, 4)

    for count in [1, 2, 3, 7, shardCount + 3] {
      let output = directory.path + "/parts-\(count)"
      for index in (0..<count).reversed() {
        let report = try prepare(recipe: recipe(output), options: quiet(try Partition(index: index, count: count)))
        XCTAssertEqual(report.partition, try Partition(index: index, count: count))
      }
      let merged = try merge(output: output)
      XCTAssertEqual(merged.rejectedCount, 2, "N = \(count)")
      XCTAssertEqual(merged.records, whole.records, "N = \(count)")
      let got = try contents(output)
      XCTAssertEqual(Set(got.keys), Set(expected.keys), "N = \(count)")
      for (name, data) in expected { XCTAssertEqual(got[name], data, "N = \(count): \(name) differs from the single run") }
      XCTAssertFalse(FileManager.default.fileExists(atPath: output + "/partitions"), "N = \(count)")
      XCTAssertTrue(try merge(output: output).alreadyComplete, "a second merge does nothing")
      XCTAssertTrue(verifyDataset(directory: output).isIntact, "N = \(count)")
    }
  }

  /// `augment --partition`: speed copies, noise and reverberation drawn per item, so any
  /// task makes the same copy; three parts merged equal one run.
  func testAugmentedPartsMergeByteIdentical() throws {
    let directory = TemporaryDirectory("partitions-augment")
    let root = directory.path + "/corpus"
    try LibriSpeechFixture(root: root).write(LibriSpeechFixture.standard(perSplit: 12))
    var recipe = Recipe(
      name: "aug-parts", corpus: CorpusConfig(kind: .librispeech, root: root, splits: ["train-clean-100", "dev-clean"]),
      output: directory.path + "/single")
    recipe.threads = 1
    var config = AugmentConfig()
    config.noise.bank = repositoryRoot + "/corpora/mini-musan"
    config.noise.probability = 0.8
    recipe.augment = config
    _ = try augment(recipe: recipe, options: quiet())
    let expected = try contents(recipe.output)
    recipe.output = directory.path + "/parts"
    for index in 0..<3 { _ = try augment(recipe: recipe, options: quiet(try Partition(index: index, count: 3))) }
    _ = try merge(output: recipe.output)
    let got = try contents(recipe.output)
    XCTAssertEqual(Set(got.keys), Set(expected.keys))
    for (name, data) in expected { XCTAssertEqual(got[name], data, "\(name) differs from the single augment run") }
  }

  /// A missing part, a part of another recipe, another N, and a shard changed after its
  /// part finished: each refused with a message naming it; nothing written is lost.
  func testMergeNamesWhatIsMissingOrWrong() throws {
    let directory = TemporaryDirectory("partitions-bad")
    let root = directory.path + "/corpus"
    try LibriSpeechFixture(root: root).write(LibriSpeechFixture.standard(perSplit: 12))
    var recipe = Recipe(
      name: "parts", corpus: CorpusConfig(kind: .librispeech, root: root, splits: ["train-clean-100", "dev-clean"]),
      output: directory.path + "/out")
    recipe.threads = 1
    _ = try prepare(recipe: recipe, options: quiet(try Partition(index: 1, count: 2)))
    XCTAssertThrowsError(try merge(output: recipe.output)) {
      XCTAssertTrue("\($0)".contains("part 0 of 2 is missing"), "\($0)")
    }
    // A stray part of a run with another N is named beside the missing one.
    let stray = recipe.output + "/partitions/5"
    try FileManager.default.createDirectory(atPath: stray, withIntermediateDirectories: true)
    XCTAssertThrowsError(try merge(output: recipe.output)) {
      XCTAssertTrue("\($0)".contains("part 0 of 2 is missing") && "\($0)".contains("partitions/5 is beyond the 2 parts"), "\($0)")
    }
    try FileManager.default.removeItem(atPath: stray)
    var other = recipe
    other.features.windowSeconds = 0.025
    XCTAssertThrowsError(try prepare(recipe: other, options: quiet(try Partition(index: 0, count: 2)))) {
      XCTAssertTrue("\($0)".contains("different recipe") && "\($0)".contains("features.windowSeconds"), "\($0)")
    }
    XCTAssertThrowsError(try prepare(recipe: recipe, options: quiet(try Partition(index: 0, count: 3)))) {
      XCTAssertTrue("\($0)".contains("of 2 parts, but this task says 3"), "\($0)")
    }
    var forced = quiet(try Partition(index: 0, count: 2))
    forced.force = true
    XCTAssertThrowsError(try prepare(recipe: recipe, options: forced)) {
      XCTAssertTrue("\($0)".contains("--force cannot be combined with --partition"), "\($0)")
    }
    let done = try prepare(recipe: recipe, options: quiet(try Partition(index: 0, count: 2)))
    XCTAssertFalse(done.alreadyComplete)
    XCTAssertTrue(try prepare(recipe: recipe, options: quiet(try Partition(index: 0, count: 2))).alreadyComplete)
    let shards = try FileManager.default.contentsOfDirectory(atPath: recipe.output + "/shards").filter { $0.hasSuffix(".mdb") }.sorted()
    // One byte changed in place: the size is the same, the modification time is not.
    let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: recipe.output + "/shards/" + shards[0]))
    try handle.seek(toOffset: 100)
    let byte = try XCTUnwrap(handle.readData(ofLength: 1).first)
    try handle.seek(toOffset: 100)
    handle.write(Data([byte ^ 0xFF]))
    try handle.close()
    XCTAssertThrowsError(try merge(output: recipe.output)) {
      XCTAssertTrue("\($0)".contains("shards/\(shards[0])") && "\($0)".contains("changed after part"), "\($0)")
    }
    XCTAssertTrue(FileManager.default.fileExists(atPath: recipe.output + "/partitions/0/part.json"), "nothing is lost")
    // A part.json edited to point outside the dataset is refused before anything is written.
    let partPath = recipe.output + "/partitions/1/part.json"
    let text = try String(contentsOfFile: partPath, encoding: .utf8)
    try text.replacingOccurrences(of: "\"shards/", with: "\"../shards/").write(toFile: partPath, atomically: true, encoding: .utf8)
    XCTAssertThrowsError(try merge(output: recipe.output)) { XCTAssertTrue("\($0)".contains("../shards/"), "\($0)") }
    XCTAssertFalse(FileManager.default.fileExists(atPath: recipe.output + "/manifest.json"))
  }

  /// The ways out that merge and the tasks name actually work: a part whose shard changed
  /// or vanished after it finished is written again when its task reruns; a run on one
  /// machine into an unfinished partitioned output is refused (with --force it discards
  /// the parts); a damaged plan is written again by the plan step when the corpus gives the
  /// plan the finished parts were made from. Each ends byte-identical to one run. A run
  /// that fails before writing anything leaves no folder; merge of a missing folder
  /// creates none.
  func testTheNamedFixesWork() throws {
    let directory = TemporaryDirectory("partitions-fixes")
    let root = directory.path + "/corpus"
    try LibriSpeechFixture(root: root).write(LibriSpeechFixture.standard(perSplit: 30))
    func recipe(_ name: String) -> Recipe {
      var recipe = Recipe(
        name: "parts", corpus: CorpusConfig(kind: .librispeech, root: root, splits: ["train-clean-100", "dev-clean"]),
        output: directory.path + "/" + name)
      recipe.threads = 1
      recipe.shards.maxShardBytes = 1 << 20
      return recipe
    }
    _ = try prepare(recipe: recipe("single"), options: quiet())
    let expected = try contents(directory.path + "/single")

    // A changed and a vanished shard: their parts run again and the merge is whole.
    let repaired = recipe("repaired")
    for index in 0..<2 { _ = try prepare(recipe: repaired, options: quiet(try Partition(index: index, count: 2))) }
    let shards = try FileManager.default.contentsOfDirectory(atPath: repaired.output + "/shards").filter { $0.hasSuffix(".mdb") }.sorted()
    XCTAssertGreaterThan(shards.count, 2)
    let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: repaired.output + "/shards/" + shards[0]))
    try handle.seek(toOffset: 100)
    handle.write(Data([0x5A]))
    try handle.close()
    try FileManager.default.removeItem(atPath: repaired.output + "/shards/" + shards[shards.count - 1])
    XCTAssertThrowsError(try merge(output: repaired.output))
    for index in 0..<2 {
      XCTAssertFalse(try prepare(recipe: repaired, options: quiet(try Partition(index: index, count: 2))).alreadyComplete)
    }
    _ = try merge(output: repaired.output)
    XCTAssertEqual(try contents(repaired.output), expected)

    // A part written by an earlier version (its shards in another layout): merge names it,
    // and rerunning its task writes it again.
    let upgraded = recipe("upgraded")
    for index in 0..<2 { _ = try prepare(recipe: upgraded, options: quiet(try Partition(index: index, count: 2))) }
    let partPath = upgraded.output + "/partitions/1/" + PartManifest.fileName
    var old = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: partPath))) as! [String: Any]
    old.removeValue(forKey: "layout")
    try JSONSerialization.data(withJSONObject: old).write(to: URL(fileURLWithPath: partPath))
    XCTAssertThrowsError(try merge(output: upgraded.output)) {
      XCTAssertTrue("\($0)".contains("part 1's shards were written by another ds2-data version (shard layout 3 or older"), "\($0)")
    }
    XCTAssertTrue(try prepare(recipe: upgraded, options: quiet(try Partition(index: 0, count: 2))).alreadyComplete)
    XCTAssertFalse(try prepare(recipe: upgraded, options: quiet(try Partition(index: 1, count: 2))).alreadyComplete)
    _ = try merge(output: upgraded.output)
    XCTAssertEqual(try contents(upgraded.output), expected)

    // One machine into an unfinished partitioned output.
    let mixed = recipe("mixed")
    _ = try prepare(recipe: mixed, options: quiet(try Partition(index: 0, count: 2)))
    XCTAssertThrowsError(try prepare(recipe: mixed, options: quiet())) {
      XCTAssertTrue("\($0)".contains("holds the parts of an unfinished partitioned run (partitions/0)"), "\($0)")
    }
    var force = quiet()
    force.force = true
    _ = try prepare(recipe: mixed, options: force)
    XCTAssertFalse(FileManager.default.fileExists(atPath: mixed.output + "/partitions"))
    XCTAssertEqual(try contents(mixed.output), expected)

    // A damaged plan after a part was made from it.
    let planned = recipe("planned")
    var planOnly = quiet()
    planOnly.planOnly = true
    _ = try prepare(recipe: planned, options: planOnly)
    _ = try prepare(recipe: planned, options: quiet(try Partition(index: 0, count: 2)))
    let planPath = planned.output + "/partitions/plan.bin"
    var plan = try Data(contentsOf: URL(fileURLWithPath: planPath))
    plan[plan.count / 2] ^= 0xFF
    try plan.write(to: URL(fileURLWithPath: planPath))
    XCTAssertThrowsError(try prepare(recipe: planned, options: quiet(try Partition(index: 1, count: 2)))) {
      XCTAssertTrue("\($0)".contains("write it again with --plan-only"), "\($0)")
    }
    _ = try prepare(recipe: planned, options: planOnly)
    _ = try prepare(recipe: planned, options: quiet(try Partition(index: 1, count: 2)))
    _ = try merge(output: planned.output)
    XCTAssertEqual(try contents(planned.output), expected)

    // Failures before anything is written leave no folder behind.
    var nowhere = recipe("never")
    nowhere.corpus.root = directory.path + "/no-corpus"
    XCTAssertThrowsError(try prepare(recipe: nowhere, options: quiet()))
    XCTAssertFalse(FileManager.default.fileExists(atPath: nowhere.output))
    XCTAssertThrowsError(try merge(output: directory.path + "/typo/deeper")) {
      XCTAssertTrue("\($0)".contains("no such folder"), "\($0)")
    }
    XCTAssertFalse(FileManager.default.fileExists(atPath: directory.path + "/typo"))
  }

  /// The plan step: `--plan-only` lists and probes once; tasks read `partitions/plan.bin`
  /// and the merge equals one run byte for byte (also for augment). A task of another
  /// recipe, a corpus file changed after the plan, a new plan after parts ran, and a
  /// damaged plan are each refused, naming what is wrong.
  func testPlanStepGivesTheSameBytesAndGuardsItsInputs() throws {
    let directory = TemporaryDirectory("partitions-plan")
    let root = directory.path + "/corpus"
    try LibriSpeechFixture(root: root).write(LibriSpeechFixture.standard(perSplit: 16))
    var recipe = Recipe(
      name: "plan", corpus: CorpusConfig(kind: .librispeech, root: root, splits: ["train-clean-100", "dev-clean"]),
      output: directory.path + "/single")
    recipe.threads = 1
    recipe.shards.maxShardBytes = 1 << 20
    var config = AugmentConfig()
    config.noise.bank = repositoryRoot + "/corpora/mini-musan"
    config.noise.probability = 0.8
    var planOnly = quiet()
    planOnly.planOnly = true

    for augmenting in [false, true] {
      var recipe = recipe
      recipe.output = directory.path + "/single-\(augmenting)"
      if augmenting { recipe.augment = config }
      let run = augmenting ? augment : prepare
      _ = try run(recipe, quiet())
      let expected = try contents(recipe.output)
      recipe.output = directory.path + "/planned-\(augmenting)"
      let planned = try run(recipe, planOnly)
      XCTAssertEqual(planned.planFile, recipe.output + "/partitions/plan.bin")
      XCTAssertTrue(try run(recipe, planOnly).planWasCurrent, "the same plan again is a no-op")
      for index in 0..<3 { _ = try run(recipe, quiet(try Partition(index: index, count: 3))) }
      let part = try XCTUnwrap(PartFolder.readManifest(recipe.output + "/partitions/2"))
      XCTAssertEqual(part.planDigest, try StoredPlan.read(recipe.output + "/partitions/plan.bin").digest)
      _ = try merge(output: recipe.output)
      let got = try contents(recipe.output)
      XCTAssertEqual(Set(got.keys), Set(expected.keys), "augmenting: \(augmenting)")
      for (name, data) in expected { XCTAssertEqual(got[name], data, "\(name) differs from the single run (augmenting: \(augmenting))") }
    }

    // Another recipe against the plan.
    recipe.output = directory.path + "/guarded"
    _ = try prepare(recipe: recipe, options: planOnly)
    var other = recipe
    other.features.windowSeconds = 0.025
    XCTAssertThrowsError(try prepare(recipe: other, options: quiet(try Partition(index: 0, count: 2)))) {
      XCTAssertTrue("\($0)".contains("plan.bin was written for a different recipe") && "\($0)".contains("features.windowSeconds"), "\($0)")
    }
    // A corpus file touched after the plan: the task that reads it stops, naming it.
    let listing = try StoredPlan.read(recipe.output + "/partitions/plan.bin")
    let touched = listing.utterances.last!.source.audioPath
    try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 60)], ofItemAtPath: touched)
    let tasks = try (0..<2).map { try Partition(index: $0, count: 2) }
    let failures = tasks.compactMap { task -> String? in
      do { _ = try prepare(recipe: recipe, options: quiet(task)); return nil } catch { return "\(error)" }
    }
    XCTAssertEqual(failures.count, 1, "exactly the task whose part holds the file stops: \(failures)")
    XCTAssertTrue(failures.first?.contains("\(touched) changed") ?? false, "\(failures)")
    // Writing a new plan after parts ran is refused; so is a damaged plan.
    XCTAssertThrowsError(try prepare(recipe: recipe, options: planOnly)) {
      XCTAssertTrue("\($0)".contains("was made from the plan now in"), "\($0)")
    }
    let planPath = recipe.output + "/partitions/plan.bin"
    var bytes = try Data(contentsOf: URL(fileURLWithPath: planPath))
    bytes[bytes.count / 2] ^= 0x01
    try bytes.write(to: URL(fileURLWithPath: planPath))
    XCTAssertThrowsError(try prepare(recipe: recipe, options: quiet(tasks[0]))) {
      XCTAssertTrue("\($0)".contains("damaged plan (checksum mismatch)"), "\($0)")
    }
  }

  /// A task ordering from the plan (compact entries, its share decoded) plans the same
  /// order, shards, seconds and share as one given every utterance decoded — for each part
  /// of 1, 2, 3 and 9, and for both feature dtypes' record sizes.
  func testOrderingFromThePlanEqualsOrderingEveryUtterance() throws {
    let directory = TemporaryDirectory("partitions-order")
    let root = directory.path + "/corpus"
    try LibriSpeechFixture(root: root).write(LibriSpeechFixture.standard(perSplit: 60))
    var recipe = Recipe(
      name: "order", corpus: CorpusConfig(kind: .librispeech, root: root, splits: ["train-clean-100", "dev-clean"]),
      output: directory.path + "/planned")
    recipe.shards.maxShardBytes = 1 << 20
    var planOnly = quiet()
    planOnly.planOnly = true
    _ = try prepare(recipe: recipe, options: planOnly)
    let path = recipe.output + "/partitions/plan.bin"
    let whole = try StoredPlan.read(path)
    let splits = ["train-clean-100", "dev-clean"]
    for dtype in [FeatureDType.float16, .uint8] {
      recipe.shards.dtype = dtype
      for count in [1, 2, 3, 9] {
        for index in 0..<count {
          let partition = try Partition(index: index, count: count)
          let reference = SplitOrder(
            splits.map { split in
              (split, whole.utterances.filter { $0.source.split == split }.sorted {
                $0.frames != $1.frames ? $0.frames < $1.frames : utf8Precedes($0.id, $1.id)
              })
            }, partition: partition, recipe: recipe, bins: 161)
          let compact = try SplitOrder(
            plan: try StoredPlan.File(path: path), splits: splits, partition: partition, recipe: recipe, bins: 161)
          let what = "\(dtype) part \(index)/\(count)"
          XCTAssertEqual(compact.plannedShards, reference.plannedShards, what)
          XCTAssertEqual(compact.secondsBySplit, reference.secondsBySplit, what)
          XCTAssertEqual(compact.ranges, reference.ranges, what)
          XCTAssertGreaterThanOrEqual(reference.plannedShards["train-clean-100"]!.count, 2, "shards to share")
          for ((split, share), (referenceSplit, all)) in zip(compact.splitUtterances, reference.splitUtterances) {
            XCTAssertEqual(split, referenceSplit)
            let range = reference.ranges![split]!
            XCTAssertEqual(compact.firstPositions[split], range.lowerBound, what)
            let expected = Array(all[range])
            XCTAssertEqual(share.map(\.id), expected.map(\.id), what)
            XCTAssertEqual(share.map(\.labels), expected.map(\.labels), what)
            XCTAssertEqual(share.map(\.source.audioPath), expected.map(\.source.audioPath), what)
            XCTAssertEqual(share.map(\.source.transcript), expected.map(\.source.transcript), what)
            XCTAssertEqual(share.map(\.source.speaker), expected.map(\.source.speaker), what)
            XCTAssertEqual(share.map(\.samples), expected.map(\.samples), what)
          }
        }
      }
    }
  }

  /// An augment plan stores its copies' record sizes, so tasks do not encode every copy's
  /// info; a task whose share was drawn differently since (the noise bank changed after the
  /// plan step) stops, naming the copy, instead of writing shards that do not fit the plan.
  func testAugmentPlanStoresCopySizesAndGuardsThem() throws {
    let directory = TemporaryDirectory("partitions-copies")
    let root = directory.path + "/corpus"
    try LibriSpeechFixture(root: root).write(LibriSpeechFixture.standard(perSplit: 16))
    let bank = directory.path + "/bank"
    try FileManager.default.copyItem(atPath: repositoryRoot + "/corpora/mini-musan", toPath: bank)
    var recipe = Recipe(
      name: "copies", corpus: CorpusConfig(kind: .librispeech, root: root, splits: ["train-clean-100", "dev-clean"]),
      output: directory.path + "/planned")
    recipe.threads = 1
    var config = AugmentConfig()
    config.noise.bank = bank
    config.noise.probability = 1
    recipe.augment = config
    var planOnly = quiet()
    planOnly.planOnly = true
    let report = try augment(recipe: recipe, options: planOnly)
    let plan = try StoredPlan.read(try XCTUnwrap(report.planFile))
    XCTAssertTrue(plan.header.storesCopySizes)
    let sizes = try XCTUnwrap(plan.copySizes)
    XCTAssertEqual(sizes.count, plan.utterances.count)
    let trainingCopies = plan.utterances.indices.filter { plan.utterances[$0].source.split == "train-clean-100" }
      .map { sizes[$0].count }
    XCTAssertEqual(Set(trainingCopies), [config.speedFactors.count], "every training utterance has its copies stored")
    XCTAssertTrue(
      plan.utterances.indices.filter { plan.utterances[$0].source.split == "dev-clean" }.allSatisfy { sizes[$0].isEmpty },
      "utterances that are not augmented store none")
    // A noise file gone after the plan step: the copies drawn from the bank change.
    let noise = try XCTUnwrap(
      FileManager.default.enumerator(atPath: bank)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".wav") }.sorted().first)
    try FileManager.default.removeItem(atPath: bank + "/" + noise)
    let failures = try (0..<2).compactMap { index -> String? in
      do { _ = try augment(recipe: recipe, options: quiet(try Partition(index: index, count: 2))); return nil } catch {
        return "\(error)"
      }
    }
    XCTAssertFalse(failures.isEmpty, "a task notices that its copies differ from the plan")
    XCTAssertTrue(failures.allSatisfy { $0.contains("differs from the one") && $0.contains("plan.bin planned") }, "\(failures)")
  }
}
