import DS2Core
import Foundation
import Shards
import TestSupport
import XCTest
import Yams

/// deploy/: the Kubernetes Indexed Job has the fields the path needs, and its command, run
/// as the kubelet runs it (JOB_COMPLETION_INDEX set per pod), gives the single run's bytes
/// once merged. (The Slurm scripts run under a real Slurm in Tests/slurm/run.sh.)
final class DeploymentTests: XCTestCase {
  func load(_ path: String) throws -> [String: Any] {
    let text = try String(contentsOfFile: repositoryRoot + "/" + path, encoding: .utf8)
    return try XCTUnwrap(try Yams.load(yaml: text) as? [String: Any], path)
  }

  func testIndexedJobManifestsAndTheirCommand() throws {
    let job = try load("deploy/kubernetes/prepare-job.yaml")
    XCTAssertEqual(job["kind"] as? String, "Job")
    let spec = try XCTUnwrap(job["spec"] as? [String: Any])
    XCTAssertEqual(spec["completionMode"] as? String, "Indexed")
    let completions = try XCTUnwrap(spec["completions"] as? Int)
    XCTAssertNotNil(spec["parallelism"] as? Int)
    XCTAssertNotNil(spec["backoffLimitPerIndex"] as? Int)
    let pod = try XCTUnwrap((spec["template"] as? [String: Any])?["spec"] as? [String: Any])
    XCTAssertEqual(pod["restartPolicy"] as? String, "Never")
    let container = try XCTUnwrap((pod["containers"] as? [[String: Any]])?.first)
    let command = try XCTUnwrap(container["command"] as? [String])
    let partition = try XCTUnwrap(command.firstIndex(of: "--partition")).advanced(by: 1)
    XCTAssertEqual(command[partition], "auto/\(completions)", "completions and auto/N must agree")
    let threads = try XCTUnwrap(command.firstIndex(of: "--threads")).advanced(by: 1)
    let limits = try XCTUnwrap((container["resources"] as? [String: Any])?["limits"] as? [String: Any])
    XCTAssertEqual(limits["cpu"] as? String, command[threads], "--threads equals the CPU limit")
    XCTAssertFalse((pod["volumes"] as? [Any] ?? []).isEmpty, "a shared volume")
    let merge = try load("deploy/kubernetes/merge-job.yaml")
    XCTAssertEqual(merge["kind"] as? String, "Job")

    // The pods of the Job, run one after another with the index the kubelet gives them,
    // the recipe and output replaced by a small corpus; then the merge Job's command.
    let directory = TemporaryDirectory("indexed-job")
    let root = directory.path + "/corpus"
    try LibriSpeechFixture(root: root).write(LibriSpeechFixture.standard(perSplit: 20))
    let recipe = directory.file("recipe.yaml")
    try "corpus: {kind: librispeech, root: \(root), splits: [train-clean-100, dev-clean]}\nshards: {maxShardBytes: 1048576}\n"
      .write(toFile: recipe, atomically: true, encoding: .utf8)
    let single = directory.path + "/single"
    XCTAssertEqual(try runBinary(["prepare", recipe, "--output", single, "-q"]).status, 0)
    let output = directory.path + "/job"
    // The plan Job first: its pod writes the plan the indexed pods read.
    let planJob = try load("deploy/kubernetes/plan-job.yaml")
    XCTAssertEqual(planJob["kind"] as? String, "Job")
    let planPod = try XCTUnwrap((planJob["spec"] as? [String: Any])?["template"] as? [String: Any])
    let planContainer = try XCTUnwrap(((planPod["spec"] as? [String: Any])?["containers"] as? [[String: Any]])?.first)
    var planArguments = Array(try XCTUnwrap(planContainer["command"] as? [String]).dropFirst())
    XCTAssertTrue(planArguments.contains("--plan-only"))
    XCTAssertEqual(planArguments[1], command[2], "the plan and the pods run one recipe")
    planArguments[1] = recipe
    planArguments[try XCTUnwrap(planArguments.firstIndex(of: "--output")) + 1] = output
    planArguments[try XCTUnwrap(planArguments.firstIndex(of: "--threads")) + 1] = "1"
    let planned = try runBinary(planArguments + ["-q"])
    XCTAssertEqual(planned.status, 0, planned.stderr)
    var arguments = Array(command.dropFirst())
    arguments[1] = recipe
    arguments[try XCTUnwrap(arguments.firstIndex(of: "--output")) + 1] = output
    arguments[try XCTUnwrap(arguments.firstIndex(of: "--threads")) + 1] = "1"
    for index in 0..<completions {
      let pod = try runBinary(arguments + ["-q"], limitSeconds: 120, environment: ["JOB_COMPLETION_INDEX": "\(index)", "SLURM_ARRAY_TASK_ID": nil])
      XCTAssertEqual(pod.status, 0, "index \(index): \(pod.stderr)")
      XCTAssertTrue(pod.stdout.contains("read the plan"), "index \(index): \(pod.stdout)")
    }
    XCTAssertEqual(try runBinary(["merge", output]).status, 0)
    for name in try FileManager.default.contentsOfDirectory(atPath: single + "/shards") + ["manifest.json", "rejected.jsonl"] {
      let path = name.hasSuffix(".mdb") ? "shards/" + name : name
      XCTAssertEqual(
        FileManager.default.contents(atPath: output + "/" + path), FileManager.default.contents(atPath: single + "/" + path), path)
    }
  }
}
