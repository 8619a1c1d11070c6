import DS2Core
import Foundation
import TestSupport
import XCTest

/// `train`, `evaluate` and `transcribe` through the real binary.
final class TrainCLITests: XCTestCase {
  func testHelpForTrainingCommands() throws {
    for command in ["train", "evaluate", "transcribe"] {
      let help = try runBinary([command, "--help"])
      XCTAssertEqual(help.status, 0, command)
      XCTAssertTrue(help.stdout.contains("USAGE: ds2-data \(command)"), help.stdout)
    }
    let bad = try runBinary(["train"])
    XCTAssertEqual(bad.status, 64, "no dataset is a usage error")
    XCTAssertTrue(bad.stderr.contains("name a dataset"), bad.stderr)
  }

  /// A tiny prepared dataset (4 utterances per split) and a tiny model YAML.
  private func makeDatasetAndModel(_ directory: TemporaryDirectory) throws -> (root: String, utterances: [LibriSpeechFixture.Utterance], data: String, model: String) {
    let root = directory.path + "/corpus"
    let utterances = LibriSpeechFixture.standard(perSplit: 4)
    try LibriSpeechFixture(root: root).write(utterances)
    let recipe = directory.file("recipe.yaml")
    try """
      corpus: {kind: librispeech, root: \(root), splits: [train-clean-100, dev-clean, test-clean]}
      output: \(directory.path)/data
      threads: 1
      """.write(toFile: recipe, atomically: true, encoding: .utf8)
    XCTAssertEqual(try runBinary(["prepare", recipe, "-q"]).status, 0)
    let model = try writeTinyModel(
      to: directory.file("model.yaml"), hidden: 16,
      training: "{epochs: 1, batchSize: 1, optimizer: adam, learningRate: 1.0e-3, threads: 1}", decoding: "{beamWidth: 4}")
    return (root, utterances, directory.path + "/data", model)
  }

  /// Train two steps on a tiny prepared dataset, resume to the end of the epoch, score it and
  /// transcribe one of its audio files; a missing file is named and makes the exit status 1.
  func testTrainResumeEvaluateTranscribe() throws {
    let directory = TemporaryDirectory("cli-train")
    let (root, utterances, data, model) = try makeDatasetAndModel(directory)
    let run = directory.path + "/run"
    let first = try runBinary(["train", data, "--model", model, "--output", run, "--max-steps", "2"])
    XCTAssertEqual(first.status, 0, first.stderr)
    XCTAssertTrue(first.stdout.contains("step 2 (stopped; resume with --resume)"), first.stdout)
    let second = try runBinary(["train", "--resume", run])
    XCTAssertEqual(second.status, 0, second.stderr)
    XCTAssertTrue(second.stdout.contains("epoch 1: dev-clean loss"), second.stdout)
    XCTAssertTrue(second.stdout.contains("epoch 1/1, step 4"), second.stdout)

    let scored = try runBinary(["evaluate", run, "--split", "test-clean", "--json"])
    XCTAssertEqual(scored.status, 0, scored.stderr)
    let result = try JSONSerialization.jsonObject(with: Data(scored.stdout.utf8)) as! [String: Any]
    XCTAssertEqual(result["utterances"] as? Int, 4)
    XCTAssertNotNil(result["beamCER"] as? Double)

    let audio = LibriSpeechFixture(root: root).audioPath(utterances[0])
    let transcribed = try runBinary(["transcribe", run, audio, directory.path + "/missing.flac"])
    XCTAssertEqual(transcribed.status, 1)
    XCTAssertTrue(transcribed.stdout.hasPrefix(audio + "\t"), transcribed.stdout)
    XCTAssertTrue(transcribed.stderr.contains("missing.flac"), transcribed.stderr)
  }

  /// Ctrl-C during training writes a checkpoint, exits with 130, and the run resumes from it.
  func testCtrlCWritesACheckpointAndResumes() throws {
    let directory = TemporaryDirectory("cli-sigint")
    let (_, _, data, model) = try makeDatasetAndModel(directory)
    let run = directory.path + "/run"
    let process = try startProcess(ds2DataBinary, ["train", data, "--model", model, "--output", run, "--epochs", "1000"])
    let metrics = run + "/metrics.jsonl"
    let deadline = Date().addingTimeInterval(60)
    while Date() < deadline && ((try? String(contentsOfFile: metrics, encoding: .utf8)) ?? "").isEmpty { usleep(50_000) }
    kill(process.processIdentifier, SIGINT)
    process.waitUntilExit()
    XCTAssertEqual(process.terminationStatus, 130)
    XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/checkpoints/latest.ckpt"))
    let steps = try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n").filter { $0.contains(#""type":"step""#) }.count
    let resumed = try runBinary(["train", "--resume", run, "--max-steps", "1"])
    XCTAssertEqual(resumed.status, 0, resumed.stderr)
    XCTAssertTrue(resumed.stdout.contains("step \(steps + 1) (stopped"), "\(steps) steps before: " + resumed.stdout)
  }
}

/// The OpenBLAS kernel choice through the real binary: a library fallback is replaced by
/// re-executing with `OPENBLAS_CORETYPE`, a user's own value wins, `-v` says which runs.
final class BLASKernelSelectionTests: XCTestCase {
  func run(_ environment: [String: String?]) throws -> String {
    var environment = environment
    if environment["OPENBLAS_CORETYPE"] == nil { environment["OPENBLAS_CORETYPE"] = .some(nil) }
    let result = try runBinary(
      ["train", "/nonexistent-dataset", "--output", NSTemporaryDirectory() + "unused-run", "-v"], limitSeconds: 120,
      environment: environment)
    XCTAssertEqual(result.status, 1, result.stderr)
    return result.stderr
  }


  func testAFallbackIsReplacedAndTheUsersChoiceWins() throws {
    let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    guard cpuinfo.contains(" avx2") else { throw XCTSkip("needs an x86-64 CPU with AVX2") }
    let library = try run([:])
    XCTAssertTrue(library.contains("chosen by the library"), library)
    // Stand in for a CPU the library does not recognize: it "chose" Prescott.
    let replaced = try run(["DS2_TEST_OPENBLAS_LIBRARY_CORE": "Prescott"])
    XCTAssertTrue(replaced.contains("selected by ds2-data for this CPU (the library's own choice was Prescott)"), replaced)
    XCTAssertFalse(replaced.contains("OpenBLAS core Prescott"), replaced)
    let user = try run(["OPENBLAS_CORETYPE": "Prescott", "DS2_TEST_OPENBLAS_LIBRARY_CORE": "Prescott"])
    XCTAssertTrue(user.contains("OpenBLAS core Prescott, set by OPENBLAS_CORETYPE"), user)
  }
}
