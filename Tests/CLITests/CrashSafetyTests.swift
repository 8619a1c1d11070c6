import DS2Core
import Foundation
import Shards
import TestSupport
import XCTest

/// Kills, interrupts and reads the real binary while it writes.
final class CrashSafetyTests: XCTestCase {
  /// A corpus large enough (in a debug build) to be caught mid-run, with 1 MiB shards.
  func makeCorpus(_ directory: TemporaryDirectory) throws -> String {
    let root = directory.path + "/corpus"
    var utterances: [LibriSpeechFixture.Utterance] = []
    for (s, split) in ["train-clean-100", "dev-clean"].enumerated() {
      for i in 0..<(s == 0 ? 150 : 10) {
        utterances.append(
          .init(split: split, speaker: 10 + s, chapter: 20 + i % 3, index: i, text: "word number \(String(repeating: "x", count: 1 + i % 5))",
            seconds: 1.5 + Double((i * 7) % 10) * 0.2))
      }
    }
    try LibriSpeechFixture(root: root).write(utterances)
    let recipe = directory.path + "/recipe.yaml"
    try """
      corpus: {kind: librispeech, root: \(root), splits: [train-clean-100, dev-clean]}
      shards: {maxShardBytes: 1048576}
      """.write(toFile: recipe, atomically: true, encoding: .utf8)
    return recipe
  }

  /// Every file of a dataset except recipe.yaml (which records the output path) and the
  /// lock file (which names the process that holds it).
  func contents(of directory: String) -> [String: Data] {
    var files: [String: Data] = [:]
    let enumerator = FileManager.default.enumerator(atPath: directory)!
    while let name = enumerator.nextObject() as? String {
      var isDirectory: ObjCBool = false
      _ = FileManager.default.fileExists(atPath: directory + "/" + name, isDirectory: &isDirectory)
      if !isDirectory.boolValue && name != "recipe.yaml" && name != OutputFolder.lockName { files[name] = FileManager.default.contents(atPath: directory + "/" + name) }
    }
    return files
  }

  /// Waits until the run writing `output` has started writing its first shard (and is
  /// still going, with nearly all its work ahead); false if it ended first.
  func waitForWriting(_ output: String, of process: Process) -> Bool {
    while process.isRunning {
      let names = (try? FileManager.default.contentsOfDirectory(atPath: output + "/shards")) ?? []
      if !names.isEmpty { return process.isRunning }
      usleep(1_000)
    }
    return false
  }

  /// Starts a 1-thread run into `output` and stops it with SIGINT once it is writing;
  /// returns its exit status.
  func interruptedRun(_ recipe: String, output: String) throws -> Int32 {
    let process = try start(["prepare", recipe, "--output", output, "--threads", "1"])
    XCTAssertTrue(waitForWriting(output, of: process), "the run ended before it started writing")
    kill(process.processIdentifier, SIGINT)
    process.waitUntilExit()
    return process.terminationStatus
  }

  /// Asserts that `output` holds the same files, byte for byte, as an uninterrupted run of
  /// `recipe` into `directory/reference`.
  func assertMatchesUninterruptedRun(_ output: String, recipe: String, in directory: TemporaryDirectory) throws {
    let reference = directory.path + "/reference"
    XCTAssertEqual(try runBinary(["prepare", recipe, "--output", reference, "-q"]).status, 0)
    let expected = contents(of: reference)
    let actual = contents(of: output)
    XCTAssertEqual(Set(actual.keys), Set(expected.keys))
    for (name, data) in expected { XCTAssertEqual(actual[name], data, name) }
  }

  func start(_ arguments: [String]) throws -> Process { try startProcess(ds2DataBinary, arguments) }

  func testSIGKILLAtRandomPointsThenResumeGivesByteIdenticalOutput() throws {
    let directory = TemporaryDirectory("kill")
    let recipe = try makeCorpus(directory)
    let reference = directory.path + "/reference"
    XCTAssertEqual(try runBinary(["prepare", recipe, "--output", reference, "-q"]).status, 0)
    let expected = contents(of: reference)
    XCTAssertGreaterThan(expected.keys.filter { $0.hasSuffix(".mdb") }.count, 4)

    var generator = SeededGenerator(seed: UInt64(Date().timeIntervalSince1970))
    var interruptedRuns = 0
    for round in 0..<3 {
      let output = directory.path + "/killed\(round)"
      // Kill three times — once as writing starts, then at random moments — then let a
      // run finish.
      for attempt in 0..<3 {
        let process = try start(["prepare", recipe, "--output", output, "-q", "--threads", "1"])
        if attempt == 0 {
          _ = waitForWriting(output, of: process)
        } else {
          usleep(UInt32(10_000 + generator.next() % 300_000))
        }
        if process.isRunning {
          kill(process.processIdentifier, SIGKILL)
          interruptedRuns += 1
        }
        process.waitUntilExit()
        // Never a manifest without every shard: either none, or a complete dataset.
        if FileManager.default.fileExists(atPath: output + "/manifest.json") {
          XCTAssertTrue(verifyDataset(directory: output).isIntact)
        }
      }
      let final = try runBinary(["prepare", recipe, "--output", output, "-q"])
      XCTAssertEqual(final.status, 0, final.stderr)
      let actual = contents(of: output)
      XCTAssertEqual(Set(actual.keys), Set(expected.keys), "round \(round)")
      for (name, data) in expected { XCTAssertEqual(actual[name], data, "\(name) differs after resume (round \(round))") }
    }
    XCTAssertGreaterThan(interruptedRuns, 0, "no run was caught mid-way; the corpus is too small for this machine")
  }

  /// Two parts of a partitioned run, started together on one output: a second task with
  /// the index of a running one is refused; part 0 killed with SIGKILL at random moments
  /// and rerun; then merge gives the bytes of one uninterrupted run.
  func testPartitionTasksKilledAndRerunMergeByteIdentical() throws {
    let directory = TemporaryDirectory("kill-parts")
    let recipe = try makeCorpus(directory)
    let reference = directory.path + "/reference"
    XCTAssertEqual(try runBinary(["prepare", recipe, "--output", reference, "-q"]).status, 0)
    let expected = contents(of: reference)
    let output = directory.path + "/parts"
    var generator = SeededGenerator(seed: UInt64(Date().timeIntervalSince1970))
    let other = try start(["prepare", recipe, "--output", output, "-q", "--threads", "1", "--partition", "1/2"])
    for attempt in 0..<3 {
      let process = try start(["prepare", recipe, "--output", output, "-q", "--threads", "1", "--partition", "0/2"])
      if attempt == 0 {
        _ = waitForWriting(output, of: process)
        let twin = try runBinary(["prepare", recipe, "--output", output, "-q", "--threads", "1", "--partition", "0/2"])
        if process.isRunning {
          XCTAssertEqual(twin.status, 1, twin.stderr)
          XCTAssertTrue(twin.stderr.contains("part 0/2") && twin.stderr.contains("another ds2-data process"), twin.stderr)
        }
      } else {
        usleep(UInt32(10_000 + generator.next() % 200_000))
      }
      if process.isRunning { kill(process.processIdentifier, SIGKILL) }
      process.waitUntilExit()
    }
    XCTAssertEqual(try runBinary(["prepare", recipe, "--output", output, "-q", "--partition", "0/2"]).status, 0)
    other.waitUntilExit()
    XCTAssertEqual(other.terminationStatus, 0)
    let merged = try runBinary(["merge", output])
    XCTAssertEqual(merged.status, 0, merged.stderr)
    let actual = contents(of: output)
    XCTAssertEqual(Set(actual.keys), Set(expected.keys))
    for (name, data) in expected { XCTAssertEqual(actual[name], data, "\(name) differs from the uninterrupted run") }
  }

  func testCtrlCStopsCleanlyWithStatus130AndResumes() throws {
    let directory = TemporaryDirectory("sigint")
    let recipe = try makeCorpus(directory)
    let output = directory.path + "/out"
    XCTAssertEqual(try interruptedRun(recipe, output: output), 130)
    XCTAssertFalse(FileManager.default.fileExists(atPath: output + "/manifest.json"))
    XCTAssertTrue(FileManager.default.fileExists(atPath: output + "/progress.json"))
    let partials = try FileManager.default.contentsOfDirectory(atPath: output + "/shards").filter { $0.hasSuffix(".partial") }
    XCTAssertEqual(partials, [], "the shard in flight is rolled back")
    let journal = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: output + "/progress.json"))) as? [String: Any]
    let completed = ((journal?["splits"] as? [String: [String: Any]]) ?? [:]).values.reduce(0) {
      $0 + (($1["shards"] as? [Any])?.count ?? 0)
    }
    let resumed = try runBinary(["prepare", recipe, "--output", output])
    XCTAssertEqual(resumed.status, 0, resumed.stderr)
    if completed > 0 { XCTAssertTrue(resumed.stdout.contains("resumed:"), resumed.stdout) }
    XCTAssertTrue(verifyDataset(directory: output).isIntact)
    try assertMatchesUninterruptedRun(output, recipe: recipe, in: directory)
  }

  /// An unfinished run begun by a writer with other shard rules (here: a journal without
  /// the layout field, as versions before it wrote) is started over, not resumed: its
  /// shards would not be those of an uninterrupted run.
  func testAnUnfinishedRunOfAnotherShardLayoutStartsOver() throws {
    let directory = TemporaryDirectory("layout")
    let recipe = try makeCorpus(directory)
    let output = directory.path + "/out"
    XCTAssertEqual(try interruptedRun(recipe, output: output), 130)
    let journalURL = URL(fileURLWithPath: output + "/progress.json")
    var journal = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: journalURL)) as? [String: Any])
    XCTAssertEqual(journal["layout"] as? Int, SplitWriter.layoutVersion)
    journal.removeValue(forKey: "layout")
    try JSONSerialization.data(withJSONObject: journal).write(to: journalURL)
    let rerun = try runBinary(["prepare", recipe, "--output", output])
    XCTAssertEqual(rerun.status, 0, rerun.stderr)
    XCTAssertTrue(rerun.stderr.contains("begun by another ds2-data version (shard layout 1, now \(SplitWriter.layoutVersion)); starting it over"), rerun.stderr)
    XCTAssertFalse(rerun.stdout.contains("resumed:"), rerun.stdout)
    try assertMatchesUninterruptedRun(output, recipe: recipe, in: directory)
  }

  func testChangedRecipeRefusesToMixWithAnUnfinishedRun() throws {
    let directory = TemporaryDirectory("mix")
    let recipe = try makeCorpus(directory)
    let output = directory.path + "/out"
    let process = try start(["prepare", recipe, "--output", output, "--threads", "1"])
    XCTAssertTrue(waitForWriting(output, of: process), "the run ended before it started writing")
    kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
    var changed = try String(contentsOfFile: recipe, encoding: .utf8)
    changed += "\nfeatures: {windowSeconds: 0.025}\n"
    try changed.write(toFile: recipe, atomically: true, encoding: .utf8)
    let refused = try runBinary(["prepare", recipe, "--output", output])
    XCTAssertEqual(refused.status, 1)
    XCTAssertTrue(refused.stderr.contains("unfinished run of a different recipe (differs in: features.windowSeconds 0.02 → 0.025)"), refused.stderr)
    XCTAssertEqual(try runBinary(["prepare", recipe, "--output", output, "--force", "-q"]).status, 0)
  }

  /// A full disk (a small tmpfs in a private mount namespace): a clear error naming the
  /// shard, completed shards kept, and after freeing space the rerun resumes to the same
  /// bytes as an uninterrupted run.
  func testDiskFullKeepsCommittedShardsAndResumesAfterFreeingSpace() throws {
    let directory = TemporaryDirectory("diskfull")
    let recipe = try makeCorpus(directory)
    let reference = directory.path + "/reference"
    XCTAssertEqual(try runBinary(["prepare", recipe, "--output", reference, "-q"]).status, 0)
    let mount = directory.path + "/mnt"
    try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
    let binary = Bundle.main.bundleURL.appendingPathComponent("ds2-data").path
    let d = directory.path
    let script = """
      mount -t tmpfs -o size=3m tmpfs \(mount) || exit 77
      \(binary) prepare \(recipe) --output \(mount)/out -q 2> \(d)/refused.log; echo $? > \(d)/refused.status
      \(binary) prepare \(recipe) --output \(mount)/out -q --ignore-free-space 2> \(d)/first.log; echo $? > \(d)/first.status
      cp \(mount)/out/progress.json \(d)/progress-after-failure.json 2>/dev/null
      mount -o remount,size=256m \(mount)
      \(binary) prepare \(recipe) --output \(mount)/out 2> \(d)/second.log > \(d)/second.out; echo $? > \(d)/second.status
      cp -r \(mount)/out \(d)/final
      """
    let run = try runProcess("/usr/bin/unshare", ["-m", "/bin/sh", "-c", script])
    if run.status == 77 || !FileManager.default.fileExists(atPath: d + "/first.status") {
      throw XCTSkip("cannot mount a tmpfs in a private mount namespace here")
    }
    func read(_ name: String) -> String { (try? String(contentsOfFile: d + "/" + name, encoding: .utf8)) ?? "" }
    // Without --ignore-free-space the run refuses before writing a shard, naming both sizes.
    XCTAssertEqual(read("refused.status").trimmingCharacters(in: .whitespacesAndNewlines), "1")
    XCTAssertTrue(read("refused.log").contains("the shards need") && read("refused.log").contains("free"), read("refused.log"))
    XCTAssertEqual(read("first.status").trimmingCharacters(in: .whitespacesAndNewlines), "1")
    XCTAssertTrue(read("first.log").contains("disk is full"), read("first.log"))
    XCTAssertTrue(read("first.log").contains(".mdb"), "the shard is named: \(read("first.log"))")
    let journal = try JSONSerialization.jsonObject(with: Data(read("progress-after-failure.json").utf8)) as? [String: Any]
    let splits = journal?["splits"] as? [String: [String: Any]]
    XCTAssertGreaterThan((splits?["train-clean-100"]?["shards"] as? [Any])?.count ?? 0, 0, "completed shards are kept")
    XCTAssertEqual(read("second.status").trimmingCharacters(in: .whitespacesAndNewlines), "0", read("second.log"))
    XCTAssertTrue(read("second.out").contains("resumed:"), read("second.out"))
    let expected = contents(of: reference)
    let actual = contents(of: d + "/final")
    XCTAssertEqual(Set(actual.keys), Set(expected.keys))
    for (name, data) in expected { XCTAssertEqual(actual[name], data, name) }
  }

  func testReadersDuringWritesSeeNothingOrACompleteDataset() throws {
    let directory = TemporaryDirectory("readers")
    let recipe = try makeCorpus(directory)
    let output = directory.path + "/out"
    let process = try start(["prepare", recipe, "--output", output, "-q"])
    var sawNothing = 0
    var sawComplete = 0
    while process.isRunning || sawComplete == 0 {
      do {
        let dataset = try Dataset(directory: output)
        var records = 0
        for split in dataset.manifest.splits {
          try dataset.forEachRecord(split: split.name) { _ in records += 1; return true }
        }
        XCTAssertEqual(records, dataset.manifest.splits.reduce(0) { $0 + $1.records })
        sawComplete += 1
      } catch let error as DatasetError {
        XCTAssertTrue(error.message.contains("no manifest.json") || error.message.contains("no such directory"), error.message)
        sawNothing += 1
      }
      if !process.isRunning && sawComplete > 0 { break }
      usleep(20_000)
    }
    process.waitUntilExit()
    XCTAssertGreaterThan(sawNothing, 0)
    XCTAssertGreaterThan(sawComplete, 0)
  }
}

final class VerifyTests: XCTestCase {
  func prepared(_ directory: TemporaryDirectory) throws -> String {
    let root = directory.path + "/corpus"
    try LibriSpeechFixture(root: root).write(LibriSpeechFixture.standard(perSplit: 8))
    let recipe = directory.path + "/r.yaml"
    try "corpus: {kind: librispeech, root: \(root), splits: [train-clean-100, dev-clean]}\nshards: {maxShardBytes: 1048576}\n"
      .write(toFile: recipe, atomically: true, encoding: .utf8)
    let output = directory.path + "/out"
    XCTAssertEqual(try runBinary(["prepare", recipe, "--output", output, "-q"]).status, 0)
    return output
  }

  func firstShard(_ output: String) throws -> String {
    let manifest = try Dataset(directory: output).manifest
    return output + "/" + manifest.splits[0].shards[0].file
  }

  func assertVerifyFails(_ output: String, mentioning expected: String, file: StaticString = #filePath, line: UInt = #line) throws {
    let result = try runBinary(["verify", output])
    XCTAssertEqual(result.status, 1, file: file, line: line)
    XCTAssertTrue(result.stdout.contains(expected), "expected '\(expected)' in: \(result.stdout)", file: file, line: line)
  }

  func testIntactDatasetPasses() throws {
    let directory = TemporaryDirectory("verify-ok")
    let output = try prepared(directory)
    let result = try runBinary(["verify", output])
    XCTAssertEqual(result.status, 0, result.stdout)
    XCTAssertTrue(result.stdout.contains("intact"))
  }

  func testFlippedByteIsDetectedAndNamed() throws {
    let directory = TemporaryDirectory("verify-flip")
    let output = try prepared(directory)
    let shard = try firstShard(output)
    var data = try Data(contentsOf: URL(fileURLWithPath: shard))
    data[data.count / 2] ^= 0x40
    try data.write(to: URL(fileURLWithPath: shard))
    try assertVerifyFails(output, mentioning: "\((shard as NSString).lastPathComponent): SHA-256")
  }

  /// A record damaged under a shard digest that matches (the manifest rewritten with it):
  /// verify names the record's checksum mismatch and says that the shard's totals and
  /// statistics were not compared, instead of listing the differences that follow.
  func testDamagedRecordUnderAMatchingDigestIsNamedWithoutItsConsequences() throws {
    let directory = TemporaryDirectory("verify-record")
    let output = try prepared(directory)
    let dataset = try Dataset(directory: output)
    let shard = dataset.manifest.splits[0].shards[0]
    var firstId = ""
    try dataset.forEachRecord(split: dataset.manifest.splits[0].name) { record in
      firstId = record.id
      return false
    }
    // The record's id in its CRC-covered header: the id's last place in the file (before
    // it come the LMDB key and the group directory's key).
    let path = output + "/" + shard.file
    var data = try Data(contentsOf: URL(fileURLWithPath: path))
    let offset = try XCTUnwrap(data.range(of: Data(firstId.utf8), options: .backwards)).lowerBound
    data[offset] ^= 0x01
    try data.write(to: URL(fileURLWithPath: path))
    var manifest = dataset.manifest
    manifest.splits[0].shards[0].sha256 = try SplitWriter.sizeAndDigest(path: path).1
    try JSONEncoder().encode(manifest).write(to: URL(fileURLWithPath: output + "/manifest.json"))
    let result = try runBinary(["verify", output])
    XCTAssertEqual(result.status, 1)
    let name = (shard.file as NSString).lastPathComponent
    XCTAssertTrue(result.stdout.contains("checksum mismatch"), result.stdout)
    XCTAssertTrue(result.stdout.contains("\(name): 1 damaged record or group (above)"), result.stdout)
    for consequence in ["statistics recomputed", "records, manifest says", "frame or sample totals"] {
      XCTAssertFalse(result.stdout.contains(consequence), result.stdout)
    }
  }

  func testTruncatedShardIsDetectedAndNamed() throws {
    let directory = TemporaryDirectory("verify-trunc")
    let output = try prepared(directory)
    let shard = try firstShard(output)
    let data = try Data(contentsOf: URL(fileURLWithPath: shard))
    try data.prefix(data.count - 4096).write(to: URL(fileURLWithPath: shard))
    try assertVerifyFails(output, mentioning: "truncated")
  }

  func testMissingShardIsDetectedAndNamed() throws {
    let directory = TemporaryDirectory("verify-missing")
    let output = try prepared(directory)
    let shard = try firstShard(output)
    try FileManager.default.removeItem(atPath: shard)
    try assertVerifyFails(output, mentioning: "\((shard as NSString).lastPathComponent): missing")
  }

  func testManifestThatDisagreesWithTheShardsIsDetected() throws {
    let directory = TemporaryDirectory("verify-manifest")
    let output = try prepared(directory)
    let path = output + "/manifest.json"
    var manifest = try Dataset(directory: output).manifest
    let records = manifest.splits[0].shards[0].records
    manifest.splits[0].shards[0].records += 1
    try JSONEncoder().encode(manifest).write(to: URL(fileURLWithPath: path))
    try assertVerifyFails(output, mentioning: "records, manifest says \(records + 1)")
  }

  func testNotADatasetFails() throws {
    let directory = TemporaryDirectory("verify-none")
    let result = try runBinary(["verify", directory.path])
    XCTAssertEqual(result.status, 1)
    XCTAssertTrue(result.stdout.contains("no manifest.json"), result.stdout)
  }
}
