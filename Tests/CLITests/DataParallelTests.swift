import DS2Core
import Foundation
import TestSupport
import Trainer
import Training
import XCTest

/// `mpirun -np R ds2-data train …` (OpenMPI from Debian, installed by scripts/bootstrap.sh):
/// the same losses as one process, stops and failures of the whole job, and the start-up
/// checks. Runs the real binary under the real launcher.
final class DataParallelTests: XCTestCase {
  /// The launcher's settings for tests: as root (CI) OpenMPI needs both variables; three
  /// ranks on two cores need oversubscription.
  let launcherEnvironment: [String: String?] = [
    "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_rmaps_base_oversubscribe": "1",
  ]

  func mpirun(_ ranks: Int, _ arguments: [String], limitSeconds: Double = 300) throws -> ProcessRun {
    try runProcess(
      try mpirunPath(), ["-np", "\(ranks)", ds2DataBinary] + arguments, environment: launcherEnvironment,
      limitSeconds: limitSeconds)
  }

  func mpirunPath() throws -> String {
    let path = "/usr/bin/mpirun"
    guard FileManager.default.isExecutableFile(atPath: path) else {
      throw ToolFailure(message: "mpirun is missing: scripts/bootstrap.sh installs openmpi-bin")
    }
    return path
  }

  /// The bundled corpus prepared into `directory` (58 training utterances), and a model
  /// YAML with every kind of batch normalization (conv, recurrent input, output).
  func makeDataset(_ directory: TemporaryDirectory, batchSize: Int = 4) throws -> (data: String, model: String) {
    let data = directory.path + "/data"
    let prepared = try runBinary(
      ["prepare", repositoryRoot + "/recipes/mini-librispeech.yaml", "--output", data, "--corpus-root",
       repositoryRoot + "/corpora/mini-librispeech", "-q"])
    XCTAssertTrue([0, 3].contains(prepared.status), prepared.stderr)
    let model = directory.file("model.yaml")
    try """
      model:
        convolutions: [{channels: 4, kernelTime: 5, kernelFrequency: 21, strideTime: 2, strideFrequency: 4}]
        recurrentLayers: 2
        hidden: 32
      training: {epochs: 5, batchSize: \(batchSize), optimizer: adam, learningRate: 1.0e-3, threads: 1}
      """.write(toFile: model, atomically: true, encoding: .utf8)
    return (data, model)
  }

  func stepLosses(_ run: String) throws -> [Double] {
    try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").compactMap { line in
      let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
      return object?["type"] as? String == "step" ? object?["loss"] as? Double : nil
    }
  }

  /// Two ranks (each half of every batch of 4, with the batch-normalization statistics
  /// summed over both) log the losses one process logs, within float summation error, over
  /// 20 steps — across an epoch boundary into a shuffled epoch — and end with nearly the
  /// same weights (Adam: each step moves a weight by about the learning rate, so rounding
  /// differences of 1e-6 in the gradients stay small; `CollectiveTests` checks one step's
  /// gradients to 2e-5). Rank 0 alone writes the run folder.
  func testTwoRanksTrainAsOneProcess() throws {
    let directory = TemporaryDirectory("mpi-equivalence")
    let (data, model) = try makeDataset(directory)
    let single = directory.path + "/single"
    let one = try runBinary(["train", data, "--model", model, "--output", single, "--max-steps", "20", "-q"])
    XCTAssertEqual(one.status, 0, one.stderr)
    let parallel = directory.path + "/parallel"
    let two = try mpirun(2, ["train", data, "--model", model, "--output", parallel, "--max-steps", "20", "-q"])
    XCTAssertEqual(two.status, 0, two.stderr)
    XCTAssertEqual(two.stdout.components(separatedBy: "trained ").count, 2, "one summary, from rank 0: \(two.stdout)")
    XCTAssertTrue(two.stdout.contains("2 ranks, communication"), two.stdout)

    let expected = try stepLosses(single)
    let got = try stepLosses(parallel)
    XCTAssertEqual(expected.count, 20)
    XCTAssertEqual(got.count, 20)
    for (step, (a, b)) in zip(expected, got).enumerated() {
      XCTAssertLessThanOrEqual(abs(a - b) / abs(a), 1e-4, "step \(step + 1): one process \(a), two ranks \(b)")
    }
    let weights = try Checkpoint.read(path: single + "/checkpoints/latest.ckpt").tensors
    let parallelWeights = try Checkpoint.read(path: parallel + "/checkpoints/latest.ckpt").tensors
    XCTAssertEqual(Set(weights.keys), Set(parallelWeights.keys))
    for (name, tensor) in weights where !name.hasPrefix("optimizer.") {
      let other = try XCTUnwrap(parallelWeights[name])
      let scale = max(tensor.scalars.map(abs).max() ?? 0, 1e-3)
      let difference = zip(tensor.scalars, other.scalars).map { abs($0 - $1) }.max() ?? 0
      XCTAssertLessThanOrEqual(difference / scale, 1e-2, "\(name) differs after 20 steps")
    }
    let files = try FileManager.default.contentsOfDirectory(atPath: parallel).sorted()
    XCTAssertEqual(files, try FileManager.default.contentsOfDirectory(atPath: single).sorted(), "the same run folder")
  }

  /// SIGTERM to the launcher (what Slurm sends at the time limit) stops both ranks at the
  /// same step with one checkpoint; the run resumes with another rank count (1, then 2).
  /// A rank killed with SIGKILL ends the job within seconds with a message naming it.
  func testStopsResumesAndFailsTogether() throws {
    let directory = TemporaryDirectory("mpi-faults")
    let (data, model) = try makeDataset(directory)
    let run = directory.path + "/run"
    let launcher = try startProcess(
      try mpirunPath(), ["-np", "2", ds2DataBinary, "train", data, "--model", model, "--output", run, "--epochs", "1000", "-q"],
      environment: launcherEnvironment)
    let metrics = run + "/metrics.jsonl"
    let deadline = Date().addingTimeInterval(120)
    while Date() < deadline && ((try? String(contentsOfFile: metrics, encoding: .utf8)) ?? "").count < 2000 { usleep(50_000) }
    kill(launcher.processIdentifier, SIGTERM)
    launcher.waitUntilExit()
    let checkpoint = try Checkpoint.read(path: run + "/checkpoints/latest.ckpt")
    let steps = try stepLosses(run).count
    XCTAssertGreaterThan(steps, 0)
    XCTAssertEqual(checkpoint.header.progress.step, steps, "the checkpoint is of the last step logged")
    let resumed = try runBinary(["train", "--resume", run, "--max-steps", "2", "-q"])
    XCTAssertEqual(resumed.status, 0, resumed.stderr)
    XCTAssertTrue(resumed.stdout.contains("step \(steps + 2) (stopped"), resumed.stdout)
    let resumedTwice = try mpirun(2, ["train", "--resume", run, "--max-steps", "2", "-q"])
    XCTAssertEqual(resumedTwice.status, 0, resumedTwice.stderr)
    XCTAssertTrue(resumedTwice.stdout.contains("step \(steps + 4) (stopped"), resumedTwice.stdout)

    // One rank dies: the job ends, bounded, and says which rank.
    let doomed = directory.path + "/doomed"
    let started = Date()
    let job = try startProcess(
      try mpirunPath(), ["-np", "2", ds2DataBinary, "train", data, "--model", model, "--output", doomed, "--epochs", "1000", "-q"],
      environment: launcherEnvironment)
    while Date() < started.addingTimeInterval(120)
      && ((try? String(contentsOfFile: doomed + "/metrics.jsonl", encoding: .utf8)) ?? "").isEmpty
    {
      usleep(50_000)
    }
    let ranks = try runProcess("/usr/bin/pgrep", ["-P", "\(job.processIdentifier)", "ds2-data"]).stdout
      .split(separator: "\n").compactMap { Int32($0) }
    XCTAssertEqual(ranks.count, 2, "the launcher's children")
    let killed = Date()
    kill(try XCTUnwrap(ranks.last), SIGKILL)
    job.waitUntilExit()
    XCTAssertNotEqual(job.terminationStatus, 0)
    XCTAssertLessThan(Date().timeIntervalSince(killed), 30, "the job ends within the launcher's teardown, not a timeout")
  }

  /// Ranks started with different model YAMLs are refused at start by every rank, naming
  /// what differs; an epoch with fewer batches than ranks is refused; nothing is written.
  func testStartUpChecks() throws {
    let directory = TemporaryDirectory("mpi-checks")
    let (data, model) = try makeDataset(directory, batchSize: 32)
    let other = directory.file("other.yaml")
    try String(contentsOfFile: model, encoding: .utf8).replacingOccurrences(of: "hidden: 32", with: "hidden: 16")
      .write(toFile: other, atomically: true, encoding: .utf8)
    let mixed = try runProcess(
      try mpirunPath(),
      ["-np", "1", ds2DataBinary, "train", data, "--model", model, "--output", directory.path + "/mixed", ":",
       "-np", "1", ds2DataBinary, "train", data, "--model", other, "--output", directory.path + "/mixed"],
      environment: launcherEnvironment, limitSeconds: 120)
    XCTAssertNotEqual(mixed.status, 0)
    XCTAssertTrue(mixed.stderr.contains("rank 1 of 2 was started with other settings than rank 0 (differ: model)"), mixed.stderr)
    XCTAssertFalse(FileManager.default.fileExists(atPath: directory.path + "/mixed/model.yaml"), "nothing written")

    // 58 utterances in batches of 32: 2 batches, fewer than 3 ranks.
    let crowded = try mpirun(3, ["train", data, "--model", model, "--output", directory.path + "/crowded"], limitSeconds: 120)
    XCTAssertNotEqual(crowded.status, 0)
    XCTAssertTrue(crowded.stderr.contains("an epoch has 2 batch(es), fewer than the 3 ranks"), crowded.stderr)
  }

  /// A rank that fails on its own (a damaged record in its share) ends the whole job at
  /// once with its error, naming the rank, the shard and the record — not after the other
  /// rank's collective timeout.
  func testARanksOwnFailureEndsTheJob() throws {
    let directory = TemporaryDirectory("mpi-damaged")
    let (data, model) = try makeDataset(directory)
    let shards = try FileManager.default.contentsOfDirectory(atPath: data + "/shards").filter { $0.hasPrefix("train") }.sorted()
    let path = data + "/shards/" + shards.last!
    var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
    bytes[bytes.count / 2] ^= 0xFF
    try bytes.write(to: URL(fileURLWithPath: path))
    let started = Date()
    let run = try mpirun(2, ["train", data, "--model", model, "--output", directory.path + "/run", "--epochs", "2", "-q"], limitSeconds: 120)
    XCTAssertNotEqual(run.status, 0)
    XCTAssertFalse(run.hung)
    XCTAssertLessThan(Date().timeIntervalSince(started), 60)
    XCTAssertTrue(run.stderr.contains("of 2: ") && run.stderr.contains(shards.last!) && run.stderr.contains("checksum mismatch"), run.stderr)
  }
}
