import DS2Core
import Foundation
import Shards
import TestSupport
import XCTest

struct CommandResult {
  var status: Int32
  var stdout: String
  var stderr: String
}

/// The real binary, run to completion (10-minute limit; a hung run reports status -1).
func runBinary(_ arguments: [String], in directory: String = repositoryRoot) throws -> CommandResult {
  let run = try runProcess(ds2DataBinary, arguments, in: directory)
  return CommandResult(status: run.hung ? -1 : run.status, stdout: run.stdout, stderr: run.stderr)
}

/// The real binary within `limitSeconds` (hangs and signals reported, not just statuses).
func runBinary(
  _ arguments: [String], limitSeconds: Double, in directory: String = repositoryRoot, environment: [String: String?] = [:]
) throws -> ProcessRun {
  try runProcess(ds2DataBinary, arguments, in: directory, environment: environment, limitSeconds: limitSeconds)
}

final class CLITests: XCTestCase {
  func testHelpForEveryCommand() throws {
    let top = try runBinary(["--help"])
    XCTAssertEqual(top.status, 0)
    for command in ["prepare", "augment", "merge", "inspect", "verify", "train", "evaluate", "transcribe"] {
      XCTAssertTrue(top.stdout.contains(command), top.stdout)
      let help = try runBinary([command, "--help"])
      XCTAssertEqual(help.status, 0, command)
      XCTAssertTrue(help.stdout.contains("USAGE: ds2-data \(command)"), help.stdout)
    }
  }

  /// OpenBLAS is opened when a command first needs it, so commands that multiply no
  /// matrices do not start its threads; the model commands open it at start (to check its
  /// kernels). The dynamic loader's own log (LD_DEBUG=files) says which libraries it loaded.
  func testOnlyTheModelCommandsOpenOpenBLAS() throws {
    let directory = TemporaryDirectory("cli-openblas")
    let loaderLog: [String: String?] = ["LD_DEBUG": "files", "OPENBLAS_CORETYPE": nil, "DS2_OPENBLAS_CORETYPE_SELECTED": nil]
    let prepare = try runBinary(
      ["prepare", repositoryRoot + "/recipes/mini-librispeech.yaml", "--output", directory.path + "/out", "--dry-run"],
      limitSeconds: 120, environment: loaderLog)
    XCTAssertEqual(prepare.status, 0, prepare.stderr)
    XCTAssertTrue(prepare.stderr.contains("libsndfile"), "the loader's log is missing: \(prepare.stderr.prefix(2000))")
    XCTAssertFalse(prepare.stderr.contains("libopenblas"), prepare.stderr)
    let train = try runBinary(["train", "--help"], limitSeconds: 120, environment: loaderLog)
    XCTAssertEqual(train.status, 0, train.stderr)
    XCTAssertTrue(train.stderr.contains("libopenblas"), String(train.stderr.prefix(2000)))
  }

  /// The README's main job, end to end on the bundled corpus.
  func testPrepareAndInspectTheBundledCorpus() throws {
    let directory = TemporaryDirectory("cli")
    let output = directory.path + "/mini"
    let result = try runBinary(["prepare", "recipes/mini-librispeech.yaml", "--output", output])
    XCTAssertEqual(result.status, 0, result.stderr)
    XCTAssertTrue(result.stdout.contains("prepared \(output)"), result.stdout)
    XCTAssertTrue(result.stdout.contains("rejected 0"), result.stdout)

    let dataset = try Dataset(directory: output)
    XCTAssertEqual(dataset.manifest.splits.map(\.name), ["train-clean-100", "dev-clean", "test-clean"])
    XCTAssertGreaterThan(dataset.manifest.split(named: "train-clean-100")!.records, 40)

    let again = try runBinary(["prepare", "recipes/mini-librispeech.yaml", "--output", output, "--threads", "1"])
    XCTAssertEqual(again.status, 0)
    XCTAssertTrue(again.stdout.contains("already complete"), again.stdout)

    let summary = try runBinary(["inspect", output])
    XCTAssertEqual(summary.status, 0, summary.stderr)
    for expected in ["train-clean-100", "dev-clean", "test-clean", "161 bins", "float16", "normalization: global"] {
      XCTAssertTrue(summary.stdout.contains(expected), summary.stdout)
    }

    let records = try runBinary(["inspect", output, "--records", "3", "--json", "--split", "dev-clean", "--features"])
    XCTAssertEqual(records.status, 0, records.stderr)
    let lines = records.stdout.split(separator: "\n")
    XCTAssertEqual(lines.count, 3)
    var previousFrames = 0
    for line in lines {
      let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
      for key in ["id", "split", "frames", "bins", "transcript", "labels", "features"] { XCTAssertNotNil(object[key], key) }
      let frames = object["frames"] as! Int
      XCTAssertGreaterThanOrEqual(frames, previousFrames)
      previousFrames = frames
      XCTAssertEqual((object["features"] as! [[Double]]).count, frames)
    }
  }

  func testRejectionsGiveExitStatusThreeAndErrorsExitOne() throws {
    let directory = TemporaryDirectory("cli-bad")
    let root = directory.path + "/corpus"
    let fixture = LibriSpeechFixture(root: root)
    try fixture.write(LibriSpeechFixture.standard(perSplit: 2))
    let first = LibriSpeechFixture.standard(perSplit: 2)[0]
    try appendLine("\(first.speaker)-\(first.chapter)-0999 NO SUCH AUDIO", to: fixture.transcriptPath(first))
    let recipe = directory.path + "/r.yaml"
    try "corpus: {kind: librispeech, root: \(root), splits: [train-clean-100, dev-clean]}\noutput: \(directory.path)/out\n"
      .write(toFile: recipe, atomically: true, encoding: .utf8)
    let result = try runBinary(["prepare", recipe])
    XCTAssertEqual(result.status, 3, result.stderr)
    XCTAssertTrue(result.stdout.contains("rejected 1: missing_audio 1"), result.stdout)
    XCTAssertTrue(result.stderr.contains("0999"), "the rejected item is named on stderr: \(result.stderr)")

    let missing = try runBinary(["prepare", directory.path + "/nope.yaml"])
    XCTAssertEqual(missing.status, 1)
    XCTAssertTrue(missing.stderr.contains("nope.yaml"), missing.stderr)

    let notDataset = try runBinary(["inspect", directory.path])
    XCTAssertEqual(notDataset.status, 1)
    XCTAssertTrue(notDataset.stderr.contains("no manifest.json"), notDataset.stderr)
  }
}

final class AugmentCLITests: XCTestCase {
  /// The README's augment command on the bundled corpus and noise bank.
  /// The bundled corpus and noise bank through the command line, with the augmentation
  /// flags (two speed copies rather than the recipe's three, to keep a debug build quick).
  func testAugmentTheBundledCorpusWithTheBundledBank() throws {
    let directory = TemporaryDirectory("cli-augment")
    let output = directory.path + "/mini-aug"
    let result = try runBinary([
      "augment", "recipes/mini-librispeech.yaml", "--noise-bank", "corpora/mini-musan", "--speed", "0.9,1.1", "--snr", "5:10",
      "--noise-probability", "1", "--output", output,
    ])
    XCTAssertEqual(result.status, 0, result.stderr)
    XCTAssertTrue(result.stdout.contains("noise bank: 10 usable file(s)"), result.stdout)
    let dataset = try Dataset(directory: output)
    let clean = try runBinary(["prepare", "recipes/mini-librispeech.yaml", "--output", directory.path + "/clean", "-q"])
    XCTAssertEqual(clean.status, 0)
    let cleanTrain = try Dataset(directory: directory.path + "/clean").manifest.split(named: "train-clean-100")!.records
    XCTAssertEqual(dataset.manifest.split(named: "train-clean-100")?.records, 2 * cleanTrain)
    let records = try runBinary(["inspect", output, "--records", "2", "--json", "--split", "train-clean-100"])
    XCTAssertTrue(records.stdout.contains("\"augmentation\""), records.stdout)
    XCTAssertTrue(records.stdout.contains("\"speed\""), records.stdout)
    XCTAssertTrue(records.stdout.contains("\"snrDecibels\""), records.stdout)
    XCTAssertEqual(try runBinary(["verify", output]).status, 0)
  }

  /// `prepare --dry-run --json`: one JSON object with the totals and per split; nothing
  /// written; `--json` alone is a usage error.
  func testDryRunJSON() throws {
    let directory = TemporaryDirectory("cli-dry-run")
    let output = directory.path + "/out"
    let run = try runBinary(
      ["prepare", repositoryRoot + "/recipes/mini-librispeech.yaml", "--corpus-root", repositoryRoot + "/corpora/mini-librispeech",
       "--output", output, "--dry-run", "--json"])
    XCTAssertEqual(run.status, 0, run.stderr)
    let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
    for key in ["utterances", "audioSeconds", "outputBytes", "etaSeconds"] { XCTAssertNotNil(object[key] as? NSNumber, key) }
    let splits = try XCTUnwrap(object["splits"] as? [[String: Any]])
    XCTAssertEqual(splits.map { $0["name"] as? String }, ["train-clean-100", "dev-clean", "test-clean"])
    for split in splits {
      for key in ["utterances", "audioSeconds", "outputBytes", "etaSeconds"] { XCTAssertNotNil(split[key] as? NSNumber, key) }
      let histogram = try XCTUnwrap(split["histogram"] as? [[String: Any]])
      XCTAssertTrue(histogram.allSatisfy { $0["fromSeconds"] is NSNumber && ($0["toSeconds"] == nil || $0["toSeconds"] is NSNumber) })
    }
    XCTAssertFalse(FileManager.default.fileExists(atPath: output))
    XCTAssertEqual(try runBinary(["prepare", repositoryRoot + "/recipes/mini-librispeech.yaml", "--json"]).status, 64)
    // Flags that do not combine are usage errors.
    for flags in [["--dry-run", "--partition", "0/2"], ["--plan-only", "--partition", "0/2"], ["--force", "--plan-only"]] {
      XCTAssertEqual(try runBinary(["prepare", repositoryRoot + "/recipes/mini-librispeech.yaml", "--output", output] + flags).status, 64, "\(flags)")
    }
    // The dry run says what a real run would do with a folder that is not new.
    let foreign = directory.path + "/foreign"
    try FileManager.default.createDirectory(atPath: foreign, withIntermediateDirectories: true)
    try "mine".write(toFile: foreign + "/notes.txt", atomically: true, encoding: .utf8)
    let looked = try runBinary(
      ["prepare", repositoryRoot + "/recipes/mini-librispeech.yaml", "--corpus-root", repositoryRoot + "/corpora/mini-librispeech",
       "--output", foreign, "--dry-run", "--json"])
    let state = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(looked.stdout.utf8)) as? [String: Any])["outputState"] as? String
    XCTAssertTrue(state?.contains("did not write (notes.txt): a real run would refuse") ?? false, "\(String(describing: state))")
  }

  /// A rerun that finds the dataset complete exits as the run that made it did: 3 when it
  /// lists rejected items. A recipe value outside its choices names them.
  func testRerunOfACompleteDatasetKeepsItsExitStatus() throws {
    let directory = TemporaryDirectory("cli-rerun")
    let output = directory.path + "/out"
    let arguments = [
      "prepare", repositoryRoot + "/recipes/mini-fisher.yaml", "--corpus-root", repositoryRoot + "/corpora/mini-fisher", "--output", output, "-q",
    ]
    XCTAssertEqual(try runBinary(arguments).status, 3)
    let again = try runBinary(arguments.filter { $0 != "-q" })
    XCTAssertEqual(again.status, 3, again.stdout)
    XCTAssertTrue(again.stdout.contains("already complete") && again.stdout.contains("rejected item(s)"), again.stdout)
    let verify = try runBinary(["verify", output])
    XCTAssertTrue(verify.stdout.contains("intact"), "the verdict is on standard output: \(verify.stdout)")
    let recipe = directory.file("bad.yaml")
    let text = try String(contentsOfFile: repositoryRoot + "/recipes/mini-librispeech.yaml", encoding: .utf8)
    try text.replacingOccurrences(of: "dtype: float16", with: "dtype: int8").write(toFile: recipe, atomically: true, encoding: .utf8)
    let bad = try runBinary(["prepare", recipe, "--output", directory.path + "/bad", "--dry-run"])
    XCTAssertEqual(bad.status, 1)
    XCTAssertTrue(bad.stderr.contains("shards.dtype: \"int8\" is not one of float16, float32, uint8"), bad.stderr)
  }

  /// `shards.dtype: uint8`: prepare writes it, verify passes, inspect decodes it, and the
  /// trainer trains from it.
  func testUInt8Shards() throws {
    let directory = TemporaryDirectory("cli-uint8")
    let recipe = directory.file("recipe.yaml")
    try String(contentsOfFile: repositoryRoot + "/recipes/mini-librispeech.yaml", encoding: .utf8)
      .replacingOccurrences(of: "dtype: float16", with: "dtype: uint8")
      .replacingOccurrences(of: "root: corpora/mini-librispeech", with: "root: \(repositoryRoot)/corpora/mini-librispeech")
      .write(toFile: recipe, atomically: true, encoding: .utf8)
    let output = directory.path + "/out"
    XCTAssertEqual(try runBinary(["prepare", recipe, "--output", output, "-q"]).status, 0)
    XCTAssertEqual(try runBinary(["verify", output]).status, 0)
    let inspected = try runBinary(["inspect", output, "--records", "1", "--split", "dev-clean", "--json", "--features"])
    XCTAssertEqual(inspected.status, 0)
    XCTAssertTrue(inspected.stdout.contains("\"features\""), inspected.stdout)
    let model = try writeTinyModel(
      to: directory.file("model.yaml"), hidden: 8, training: "{epochs: 1, batchSize: 8, optimizer: adam, learningRate: 1.0e-3, threads: 1}")
    let trained = try runBinary(["train", output, "--model", model, "--output", directory.path + "/run", "--max-steps", "2", "-q"])
    XCTAssertEqual(trained.status, 0, trained.stderr)
  }
}
