import DS2Core
import Foundation
import Shards
import TestSupport
import XCTest

/// Issue 11: the tool owns and locks its output, never deletes what it did not write, and
/// no reader dies by a signal or hangs on damaged, replaced or hostile data.
final class HostileInputTests: XCTestCase {
  /// A prepared copy of the bundled corpus in `directory/name`.
  func prepared(_ directory: TemporaryDirectory, _ name: String = "data") throws -> String {
    let output = directory.path + "/" + name
    let result = try runBinary(["prepare", "recipes/mini-librispeech.yaml", "--output", output, "-q"], limitSeconds: 120)
    XCTAssertEqual(result.status, 0, result.stderr)
    return output
  }

  func tinyModel(_ directory: TemporaryDirectory) throws -> String {
    try writeTinyModel(
      to: directory.file("model.yaml"), hidden: 8,
      training: "{epochs: 1, batchSize: 4, optimizer: adam, learningRate: 1.0e-3, threads: 1, "
        + "trainSplits: [train-clean-100], evaluationSplit: dev-clean}")
  }

  func testPrepareNeverTouchesAFolderItDidNotWrite() throws {
    let directory = TemporaryDirectory("hostile")
    let user = directory.path + "/user"
    try FileManager.default.createDirectory(atPath: user + "/shards", withIntermediateDirectories: true)
    try Data("mine".utf8).write(to: URL(fileURLWithPath: user + "/shards/thesis.tex"))
    try Data("my recipe".utf8).write(to: URL(fileURLWithPath: user + "/recipe.yaml"))
    for flags in [[String](), ["--force"]] {
      let result = try runBinary(["prepare", "recipes/mini-librispeech.yaml", "--output", user] + flags, limitSeconds: 60)
      XCTAssertEqual(result.status, 1, result.stderr)
      XCTAssertTrue(result.stderr.contains("recipe.yaml, shards"), result.stderr)
    }
    XCTAssertEqual(try String(contentsOfFile: user + "/shards/thesis.tex", encoding: .utf8), "mine")
    XCTAssertEqual(try String(contentsOfFile: user + "/recipe.yaml", encoding: .utf8), "my recipe")
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: user).sorted(), ["recipe.yaml", "shards"])

    let empty = try runBinary(["prepare", "recipes/mini-librispeech.yaml", "--output", ""], limitSeconds: 60)
    XCTAssertEqual(empty.status, 1)
    XCTAssertTrue(empty.stderr.contains("output path is empty"), empty.stderr)
    for (output, reason) in [("corpora", "contains the input"), ("corpora/mini-librispeech", "is the input")] {
      let result = try runBinary(["prepare", "recipes/mini-librispeech.yaml", "--output", output], limitSeconds: 60)
      XCTAssertEqual(result.status, 1, output)
      XCTAssertTrue(result.stderr.contains(reason), result.stderr)
    }
  }

  /// `--force` replaces an earlier ds2-data dataset but leaves a file a user put beside it.
  func testForceReplacesOnlyWhatDS2DataWrote() throws {
    let directory = TemporaryDirectory("hostile")
    let output = try prepared(directory)
    try Data("keep".utf8).write(to: URL(fileURLWithPath: output + "/NOTES.md"))
    try Data("keep".utf8).write(to: URL(fileURLWithPath: output + "/shards/README"))
    let recipe = directory.file("other.yaml")
    let text = try String(contentsOfFile: repositoryRoot + "/recipes/mini-librispeech.yaml", encoding: .utf8)
      .replacingOccurrences(of: "root: corpora/mini-librispeech", with: "root: \(repositoryRoot)/corpora/mini-librispeech")
    try (text + "\nshards: {maxShardBytes: 4194304}\n").write(toFile: recipe, atomically: true, encoding: .utf8)
    let refused = try runBinary(["prepare", recipe, "--output", output, "-q"], limitSeconds: 60)
    XCTAssertEqual(refused.status, 1)
    XCTAssertTrue(refused.stderr.contains("different recipe"), refused.stderr)
    let forced = try runBinary(["prepare", recipe, "--output", output, "--force", "-q"], limitSeconds: 120)
    XCTAssertEqual(forced.status, 0, forced.stderr)
    XCTAssertEqual(try String(contentsOfFile: output + "/NOTES.md", encoding: .utf8), "keep")
    XCTAssertEqual(try String(contentsOfFile: output + "/shards/README", encoding: .utf8), "keep")
    XCTAssertEqual(try runBinary(["verify", output], limitSeconds: 60).status, 0)
  }

  /// Readers running while `--force` replaces the dataset under them finish on the old
  /// files or stop with an error; none dies by a signal.
  func testReadersSurviveAForcedReplacement() throws {
    let directory = TemporaryDirectory("hostile")
    let output = try prepared(directory)
    let recipes = try [4_194_304, 2_097_152].map { bytes -> String in
      let recipe = directory.file("r\(bytes).yaml")
      let text = try String(contentsOfFile: repositoryRoot + "/recipes/mini-librispeech.yaml", encoding: .utf8)
      try (text + "\nshards: {maxShardBytes: \(bytes)}\n").write(toFile: recipe, atomically: true, encoding: .utf8)
      return recipe
    }
    final class Outcomes: @unchecked Sendable {  // appended under `lock` by the reader threads
      let lock = NSLock()
      var runs: [ProcessRun] = []
      var stop = false
    }
    let outcomes = Outcomes()
    let readers = DispatchGroup()
    for command in [["inspect", output, "--records", "30", "--features"], ["verify", output]] {
      DispatchQueue.global().async(group: readers) {
        while !outcomes.lock.withLock({ outcomes.stop }) {
          guard let run = try? runBinary(command, limitSeconds: 60) else { continue }
          outcomes.lock.withLock { outcomes.runs.append(run) }
        }
      }
    }
    for round in 0..<2 {
      let result = try runBinary(["prepare", recipes[round % 2], "--output", output, "--force", "-q"], limitSeconds: 120)
      XCTAssertEqual(result.status, 0, result.stderr)
    }
    outcomes.lock.withLock { outcomes.stop = true }
    readers.wait()
    XCTAssertGreaterThan(outcomes.runs.count, 2)
    for run in outcomes.runs {
      XCTAssertNil(run.signal, run.stderr)
      XCTAssertFalse(run.hung)
      XCTAssertTrue([0, 1].contains(run.status), "\(run.status): \(run.stderr)")
      if run.status == 1 { XCTAssertFalse(run.stderr.isEmpty && run.stdout.isEmpty) }
    }
  }

  /// A second writer is refused at once and told which process holds the output.
  func testASecondWriterIsRefusedAndToldWhoHoldsTheOutput() throws {
    let directory = TemporaryDirectory("hostile")
    let output = directory.path + "/data"
    let holder = try OutputFolder(path: output, kind: .dataset)
    for command in ["prepare", "augment"] {
      let started = Date()
      let result = try runBinary([command, "recipes/mini-librispeech.yaml", "--output", output, "-q"], limitSeconds: 60)
      XCTAssertEqual(result.status, 1, result.stderr)
      XCTAssertTrue(result.stderr.contains("another ds2-data process is writing this output"), result.stderr)
      XCTAssertTrue(result.stderr.contains("pid \(getpid())"), result.stderr)
      XCTAssertLessThan(Date().timeIntervalSince(started), 30)
    }
    let run = try OutputFolder(path: directory.path + "/run", kind: .trainingRun)
    let train = try runBinary(
      ["train", try prepared(directory, "clean"), "--model", try tinyModel(directory), "--output", run.path], limitSeconds: 60)
    XCTAssertEqual(train.status, 1, train.stderr)
    XCTAssertTrue(train.stderr.contains("another ds2-data process"), train.stderr)
    withExtendedLifetime(holder) {}
  }

  /// Damaged, replaced and hostile shards: every reader exits 1 naming the shard — no
  /// signal, no hang.
  func testReadersStopWithAnErrorOnDamagedShards() throws {
    let directory = TemporaryDirectory("hostile")
    let clean = try prepared(directory, "clean")
    let model = try tinyModel(directory)
    let shard = "shards/train-clean-100-00000.mdb"
    let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: clean + "/" + shard)))
    let firstRecord = bytes.firstRange(of: RecordLayout.magic)!.lowerBound
    let damages: [(String, (String) throws -> Void)] = [
      ("truncated", { try Data(bytes.prefix(bytes.count / 3)).write(to: URL(fileURLWithPath: $0)) }),
      ("empty", { try Data().write(to: URL(fileURLWithPath: $0)) }),
      ("garbage", { path in
        var generator = SeededGenerator(seed: 5)
        try Data((0..<bytes.count).map { _ in UInt8(truncatingIfNeeded: generator.next()) }).write(to: URL(fileURLWithPath: path))
      }),
      ("a folder", { path in
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
      }),
      ("a FIFO", { path in
        try FileManager.default.removeItem(atPath: path)
        XCTAssertEqual(mkfifo(path, 0o644), 0)
      }),
      ("a link to /dev/zero", { path in
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: "/dev/zero")
      }),
      ("a flipped feature byte", { path in
        var damaged = bytes
        damaged[firstRecord + 900] ^= 0x04
        try Data(damaged).write(to: URL(fileURLWithPath: path))
      }),
      // LMDB's meta pages: main root 1 (LMDB asserts root > 1), a page size of 2^31 (a read
      // past the map), a branch or leaf page's bounds (meta page 0, offsets 16 + 112 and 16 + 24).
      ("a meta page naming root page 1", { path in
        var damaged = bytes
        for meta in [0, 4096] {
          for i in 0..<8 { damaged[meta + 16 + 112 + i] = i == 0 ? 1 : 0 }
        }
        try Data(damaged).write(to: URL(fileURLWithPath: path))
      }),
      ("a meta page giving a page size of 2^31", { path in
        var damaged = bytes
        damaged[16 + 24 + 3] = 0x80
        damaged[16 + 24 + 1] = 0
        try Data(damaged).write(to: URL(fileURLWithPath: path))
      }),
      ("a flipped header byte", { path in
        var damaged = bytes
        damaged[firstRecord + 12] ^= 0x01  // bins
        try Data(damaged).write(to: URL(fileURLWithPath: path))
      }),
    ]
    for (name, damage) in damages {
      let dataset = directory.path + "/damaged"
      try? FileManager.default.removeItem(atPath: dataset)
      try FileManager.default.copyItem(atPath: clean, toPath: dataset)
      try damage(dataset + "/" + shard)
      let commands: [[String]] = [
        ["inspect", dataset, "--records", "1000", "--features"],
        ["verify", dataset],
        ["train", dataset, "--model", model, "--output", directory.path + "/run-\(UUID().uuidString)", "--max-steps", "3"],
      ]
      for command in commands {
        let result = try runBinary(command, limitSeconds: 120)
        XCTAssertFalse(result.hung, "\(command[0]) hung on a shard that is \(name)")
        XCTAssertNil(result.signal, "\(command[0]) died by signal \(result.signal ?? 0) on a shard that is \(name)")
        XCTAssertEqual(result.status, 1, "\(command[0]) on a shard that is \(name): \(result.stdout) \(result.stderr)")
        XCTAssertTrue((result.stderr + result.stdout).contains("train-clean-100-00000.mdb"), "\(command[0]), \(name): \(result.stderr)")
      }
    }
  }

  /// `verify` checks what readers apply and confines shard paths; readers refuse such
  /// manifests at once.
  func testVerifyAndReadersRefuseAlteredManifests() throws {
    let directory = TemporaryDirectory("hostile")
    let clean = try prepared(directory, "clean")
    let edits: [(String, String, ([String: Any]) -> [String: Any])] = [
      ("mean", "normalization.mean", { m in
        var m = m
        var n = m["normalization"] as! [String: Any]
        var mean = n["mean"] as! [Double]
        mean[7] += 0.25
        n["mean"] = mean
        m["normalization"] = n
        return m
      }),
      ("split removed", "is not listed in the manifest", { m in
        var m = m
        var splits = m["splits"] as! [[String: Any]]
        splits.remove(at: 1)
        m["splits"] = splits
        return m
      }),
      ("../ path", "not a plain relative path", { m in Self.editFirstShard(m) { $0["file"] = "../clean/shards/dev-clean-00000.mdb" } }),
      ("/dev/zero", "not a plain relative path", { m in Self.editFirstShard(m) { $0["file"] = "../../../../../../dev/zero" } }),
      ("absolute", "not a plain relative path", { m in Self.editFirstShard(m) { $0["file"] = "/etc/passwd" } }),
      ("huge bins", "features.bins", { m in
        var m = m
        var f = m["features"] as! [String: Any]
        f["bins"] = 1_000_000_000
        m["features"] = f
        return m
      }),
    ]
    for (name, expected, edit) in edits {
      let dataset = directory.path + "/edited"
      try? FileManager.default.removeItem(atPath: dataset)
      try FileManager.default.copyItem(atPath: clean, toPath: dataset)
      let path = dataset + "/manifest.json"
      let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
      try JSONSerialization.data(withJSONObject: edit(manifest)).write(to: URL(fileURLWithPath: path))
      let verify = try runBinary(["verify", dataset], limitSeconds: 60)
      XCTAssertFalse(verify.hung, name)
      XCTAssertEqual(verify.status, 1, "\(name): \(verify.stdout)")
      XCTAssertTrue(verify.stdout.contains(expected) || verify.stderr.contains(expected), "\(name): \(verify.stdout)")
      if name != "split removed" {
        let inspect = try runBinary(["inspect", dataset, "--records", "100"], limitSeconds: 60)
        XCTAssertNil(inspect.signal, name)
        XCTAssertEqual(inspect.status, 1, "\(name): \(inspect.stdout)")
      }
    }
  }

  static func editFirstShard(_ manifest: [String: Any], _ edit: (inout [String: Any]) -> Void) -> [String: Any] {
    var manifest = manifest
    var splits = manifest["splits"] as! [[String: Any]]
    var shards = splits[1]["shards"] as! [[String: Any]]
    edit(&shards[0])
    splits[1]["shards"] = shards
    manifest["splits"] = splits
    return manifest
  }

  /// A FIFO under a Fisher audio name (where the reader looks into SPHERE headers for the
  /// compression) and a FIFO given as the recipe are refused by name, never waited on.
  func testFIFOsUnderFisherAudioOrRecipeNamesAreNeverWaitedOn() throws {
    let directory = TemporaryDirectory("hostile-fisher")
    let root = directory.path + "/fisher"
    try FileManager.default.copyItem(atPath: repositoryRoot + "/corpora/mini-fisher", toPath: root)
    let audio = root + "/LDC2004S13/fe_03_p1_sph1/audio/001/fe_03_00101.sph"
    try FileManager.default.removeItem(atPath: audio)
    XCTAssertEqual(mkfifo(audio, 0o644), 0)
    let recipe = try String(contentsOfFile: repositoryRoot + "/recipes/mini-fisher.yaml", encoding: .utf8)
      .replacingOccurrences(of: "corpora/mini-fisher", with: root)
    try recipe.write(toFile: directory.file("fisher.yaml"), atomically: true, encoding: .utf8)
    let run = try runBinary(["prepare", directory.file("fisher.yaml"), "--output", directory.path + "/out", "-q"], limitSeconds: 60)
    XCTAssertFalse(run.hung, "prepare waited on the FIFO")
    XCTAssertNil(run.signal)
    XCTAssertEqual(run.status, 3, run.stderr)
    let rejected = try String(contentsOfFile: directory.path + "/out/rejected.jsonl", encoding: .utf8)
    XCTAssertTrue(rejected.contains("\"file\":\"\(audio)\"") && rejected.contains("not a regular file (a FIFO)"), rejected)

    let fifoRecipe = directory.file("recipe-fifo.yaml")
    XCTAssertEqual(mkfifo(fifoRecipe, 0o644), 0)
    let refused = try runBinary(["prepare", fifoRecipe], limitSeconds: 30)
    XCTAssertFalse(refused.hung, "prepare waited on the FIFO recipe")
    XCTAssertEqual(refused.status, 1, refused.stderr)
    XCTAssertTrue(refused.stderr.contains("recipe \(fifoRecipe): not a regular file (a FIFO)"), refused.stderr)
  }

  /// A Kaldi training split whose wav.scp is a folder: the file is named (not the split
  /// called absent), and since the training splits then list nothing, global normalization
  /// has no frames and prepare stops saying why; with per-utterance normalization the
  /// other splits are prepared and the file is a named rejection (exit 3).
  func testAnUnreadableTrainingListFileIsNamed() throws {
    let directory = TemporaryDirectory("hostile-kaldi")
    for folder in ["corpora/kaldi-example", "corpora/mini-librispeech"] {
      try FileManager.default.createDirectory(
        atPath: directory.path + "/" + (folder as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
      try FileManager.default.copyItem(atPath: repositoryRoot + "/" + folder, toPath: directory.path + "/" + folder)
    }
    let wavList = directory.path + "/corpora/kaldi-example/train/wav.scp"
    try FileManager.default.removeItem(atPath: wavList)
    try FileManager.default.createDirectory(atPath: wavList, withIntermediateDirectories: false)
    let recipe = try String(contentsOfFile: repositoryRoot + "/recipes/kaldi-example.yaml", encoding: .utf8)
    try recipe.write(toFile: directory.file("global.yaml"), atomically: true, encoding: .utf8)
    let refused = try runBinary(["prepare", directory.file("global.yaml"), "--output", directory.path + "/global", "-q"], in: directory.path)
    XCTAssertEqual(refused.status, 1, refused.stderr)
    XCTAssertTrue(refused.stderr.contains("list no utterance") && refused.stderr.contains("train/wav.scp"), refused.stderr)
    XCTAssertTrue(refused.stderr.contains("not a regular file (a folder)"), refused.stderr)

    try (recipe + "\nnormalization: {mode: utterance}\n").write(toFile: directory.file("utterance.yaml"), atomically: true, encoding: .utf8)
    let prepared = try runBinary(["prepare", directory.file("utterance.yaml"), "--output", directory.path + "/utterance", "-q"], in: directory.path)
    XCTAssertEqual(prepared.status, 3, prepared.stderr)
    let rejected = try String(contentsOfFile: directory.path + "/utterance/rejected.jsonl", encoding: .utf8)
    XCTAssertTrue(rejected.contains("\"reason\":\"unreadable_file\"") && rejected.contains("train/wav.scp"), rejected)
  }

  /// FIFOs named like audio or transcripts are rejected by name, never waited on; a FLAC
  /// whose header declares no length is decoded to find it; one declaring days of audio is
  /// rejected before decoding. No item is lost: each is in the dataset or in rejected.jsonl.
  func testHostileCorpusItemsAreRejectedNeverFatal() throws {
    let directory = TemporaryDirectory("hostile")
    let root = directory.path + "/corpus"
    let fixture = LibriSpeechFixture(root: root)
    let utterances = LibriSpeechFixture.standard(perSplit: 5)
    try fixture.write(utterances)
    let train = utterances.filter { $0.split == "train-clean-100" }
    // 1: a FIFO in place of the audio.
    try FileManager.default.removeItem(atPath: fixture.audioPath(train[1]))
    XCTAssertEqual(mkfifo(fixture.audioPath(train[1]), 0o644), 0)
    // 2: a FLAC streamed with no length in its header (flac writing to a pipe).
    let streamed = try makeFLACWithoutLength(seconds: 1.5, in: directory)
    try FileManager.default.removeItem(atPath: fixture.audioPath(train[2]))
    try FileManager.default.copyItem(atPath: streamed, toPath: fixture.audioPath(train[2]))
    // 3: a FLAC whose header claims 2^34 samples (12 days at 16 kHz).
    var claimed = try Array(Data(contentsOf: URL(fileURLWithPath: streamed)))
    setFLACTotalSamples(&claimed, 1 << 34)
    try Data(claimed).write(to: URL(fileURLWithPath: fixture.audioPath(train[3])))
    // 4: a FIFO in place of a dev transcript.
    let dev = utterances.first { $0.split == "dev-clean" }!
    try FileManager.default.removeItem(atPath: fixture.transcriptPath(dev))
    XCTAssertEqual(mkfifo(fixture.transcriptPath(dev), 0o644), 0)

    let recipe = directory.file("recipe.yaml")
    try """
      corpus: {kind: librispeech, root: \(root), splits: [train-clean-100, dev-clean, test-clean]}
      output: \(directory.path)/data
      filters: {minDurationSeconds: 0.1}
      threads: 2
      """.write(toFile: recipe, atomically: true, encoding: .utf8)
    let result = try runBinary(["prepare", recipe, "-q"], limitSeconds: 120)
    XCTAssertFalse(result.hung, "prepare waited on a FIFO")
    XCTAssertEqual(result.status, 3, result.stderr)
    let rejected = try String(contentsOfFile: directory.path + "/data/rejected.jsonl", encoding: .utf8)
      .split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    func reason(_ file: String) -> String? { rejected.first { $0["file"] as? String == file }?["reason"] as? String }
    XCTAssertEqual(reason(fixture.audioPath(train[1])), "unreadable_audio")
    let fifo = rejected.first { $0["file"] as? String == fixture.audioPath(train[1]) }?["message"] as? String
    XCTAssertTrue(fifo?.contains("a FIFO") ?? false, fifo ?? "")
    XCTAssertEqual(reason(fixture.audioPath(train[3])), "too_long")
    XCTAssertEqual(reason(fixture.transcriptPath(dev)), "unreadable_file")

    let dataset = try Dataset(directory: directory.path + "/data")
    var stored: [String: ShardRecord] = [:]
    for split in dataset.manifest.splits {
      try dataset.forEachRecord(split: split.name, normalized: false) { stored[$0.id] = $0; return true }
    }
    XCTAssertEqual(stored[train[2].id]?.sampleCount, 24_000, "the streamed FLAC's length is found by decoding")
    // Nothing lost: every utterance is stored or named in rejected.jsonl (by id or by its
    // transcript file, for the dev chapter whose transcript is a FIFO).
    let rejectedIds = Set(rejected.compactMap { $0["utteranceId"] as? String })
    for u in utterances {
      XCTAssertTrue(
        stored[u.id] != nil || rejectedIds.contains(u.id) || (u.split == "dev-clean" && u.chapter == dev.chapter),
        "\(u.id) is neither stored nor rejected")
    }
  }

  /// A 2-second tone written as FLAC by `flac` reading raw samples from a pipe and writing
  /// to stdout, so its STREAMINFO cannot be completed (total samples 0 = unknown); made
  /// with sox and flac here, not committed.
  func makeFLACWithoutLength(seconds: Double, in directory: TemporaryDirectory) throws -> String {
    let output = directory.path + "/streamed.flac"
    try runTool(
      "/bin/sh",
      [
        "-c",
        "sox -n -r 16000 -b 16 -c 1 -e signed -t raw - synth \(seconds) sine 300 2>/dev/null | flac -s --force-raw-format "
          + "--endian=little --sign=signed --channels=1 --bps=16 --sample-rate=16000 - -c > '\(output)'",
      ], in: directory.path)
    let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: output)))
    XCTAssertEqual(flacTotalSamples(bytes), 0, "the FLAC should declare no length")
    return output
  }

  /// STREAMINFO's 36-bit total-samples field (bytes 8 + 13.5 … 8 + 18 of the file).
  func flacTotalSamples(_ bytes: [UInt8]) -> UInt64 {
    let base = 8 + 13
    var value = UInt64(bytes[base] & 0x0F)
    for i in 1...4 { value = value << 8 | UInt64(bytes[base + i]) }
    return value
  }

  func setFLACTotalSamples(_ bytes: inout [UInt8], _ total: UInt64) {
    let base = 8 + 13
    bytes[base] = (bytes[base] & 0xF0) | UInt8((total >> 32) & 0x0F)
    for i in 1...4 { bytes[base + i] = UInt8((total >> (8 * (4 - i))) & 0xFF) }
  }
}
