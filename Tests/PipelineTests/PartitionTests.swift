import DS2Core
import XCTest

@testable import Pipeline

/// `--partition K/N` and `auto/N`: the index from Slurm or Kubernetes, bad values refused
/// with the fix.
final class PartitionTests: XCTestCase {
  func message(_ text: String, _ environment: [String: String] = [:]) -> String {
    do {
      let partition = try Partition.parse(text, environment: environment)
      return "accepted \(partition)"
    } catch {
      return "\(error)"
    }
  }

  func testExplicitIndices() throws {
    XCTAssertEqual(try Partition.parse("3/8", environment: [:]), try Partition(index: 3, count: 8))
    XCTAssertEqual(try Partition.parse("0/1", environment: [:]).description, "0/1")
    XCTAssertTrue(message("3/2").contains("index 3 is outside 0 … 1"), message("3/2"))
    XCTAssertTrue(message("-1/4").contains("-1 is neither an index (0 … 3) nor auto"), message("-1/4"))
    XCTAssertTrue(message("+1/4").contains("+1 is neither an index"), message("+1/4"))
    XCTAssertTrue(message("1/99999999999999999999").contains("partition count 99999999999999999999 must be 1"))
    XCTAssertTrue(message("auto/0").contains("partition count 0 must be 1"), message("auto/0"))
    XCTAssertTrue(message("0/0").contains("partition count 0 must be 1"), message("0/0"))
    XCTAssertTrue(message("a/b").contains("expected K/N or auto/N"), message("a/b"))
    XCTAssertTrue(message("a/4").contains("a is neither an index (0 … 3) nor auto"), message("a/4"))
    XCTAssertTrue(message("3").contains("expected K/N"), message("3"))
    XCTAssertTrue(message("1/2/3").contains("expected K/N"), message("1/2/3"))
  }

  func testIndexFromTheScheduler() throws {
    XCTAssertEqual(try Partition.parse("auto/4", environment: ["SLURM_ARRAY_TASK_ID": "2"]).index, 2)
    XCTAssertEqual(try Partition.parse("auto/4", environment: ["JOB_COMPLETION_INDEX": "3"]).index, 3)
    // Slurm first; the task count of a partial resubmission plays no part.
    let slurm = ["SLURM_ARRAY_TASK_ID": "1", "JOB_COMPLETION_INDEX": "0", "SLURM_ARRAY_TASK_COUNT": "2"]
    XCTAssertEqual(try Partition.parse("auto/64", environment: slurm), try Partition(index: 1, count: 64))
    // An array numbered from 1: the last task is refused, with the fix.
    let last = message("auto/64", ["SLURM_ARRAY_TASK_ID": "64"])
    XCTAssertTrue(last.contains("SLURM_ARRAY_TASK_ID=64 is outside 0 … 63") && last.contains("--array=0-63"), last)
    // … and so is every other task of it: SLURM_ARRAY_TASK_MAX reaches N.
    let first = message("auto/64", ["SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "64"])
    XCTAssertTrue(first.contains("SLURM_ARRAY_TASK_MAX=64") && first.contains("every task of it refuses"), first)
    // A resubmission of some tasks (--array=5,17) runs.
    let again = ["SLURM_ARRAY_TASK_ID": "17", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_MAX": "17", "SLURM_ARRAY_TASK_COUNT": "2"]
    XCTAssertEqual(try Partition.parse("auto/64", environment: again), try Partition(index: 17, count: 64))
    let pod = message("auto/4", ["JOB_COMPLETION_INDEX": "4"])
    XCTAssertTrue(pod.contains("JOB_COMPLETION_INDEX=4 is outside 0 … 3") && pod.contains("completions"), pod)
    XCTAssertTrue(message("auto/4").contains("none of SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX is set"), message("auto/4"))
    XCTAssertTrue(message("auto/4", ["SLURM_ARRAY_TASK_ID": "x"]).contains("SLURM_ARRAY_TASK_ID=x is not an index"))
  }
}
