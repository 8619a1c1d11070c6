import Foundation
import XCTest

@testable import Pipeline

/// The ordered map behind prepare and augment: order, the in-flight bound, the single
/// writer, jobs and errors, for several thread counts.
final class OrderedParallelMapTests: XCTestCase {
  /// A lock-protected log of what the map's threads did.
  final class Log: @unchecked Sendable {
    let lock = NSLock()
    var inFlight = 0
    var maxInFlight = 0
    var writers = 0
    var maxWriters = 0
    var threadsThatWrote = Set<Int>()
    var jobsRun = 0

    func with<R>(_ body: (Log) -> R) -> R {
      lock.lock()
      defer { lock.unlock() }
      return body(self)
    }
  }

  func testConsumesEveryResultOnceInOrderWithinTheWindow() throws {
    for threads in [1, 2, 3, 8] {
      let log = Log()
      var consumed: [Int] = []
      let window = 5
      try orderedParallelMap(
        count: 300, threads: threads, window: window,
        produce: { index, worker -> (Int, Int) in
          log.with {
            $0.inFlight += 1
            $0.maxInFlight = max($0.maxInFlight, $0.inFlight)
          }
          // Uneven work, so that later items often finish before earlier ones.
          if index % 7 == 0 { usleep(200) }
          return (index * index, worker)
        },
        consume: { index, output in
          log.with {
            $0.writers += 1
            $0.maxWriters = max($0.maxWriters, $0.writers)
            $0.threadsThatWrote.insert(Int(bitPattern: pthread_self()))
          }
          XCTAssertEqual(output.0, index * index)
          XCTAssertTrue((0..<threads).contains(output.1), "worker index \(output.1) outside 0..<\(threads)")
          consumed.append(index)
          usleep(index % 11 == 0 ? 300 : 0)
          log.with {
            $0.writers -= 1
            $0.inFlight -= 1
          }
        })
      XCTAssertEqual(consumed, Array(0..<300), "\(threads) threads")
      XCTAssertEqual(log.maxWriters, 1, "consume ran concurrently with \(threads) threads")
      XCTAssertLessThanOrEqual(log.maxInFlight, window, "\(threads) threads")
      if threads == 1 {
        XCTAssertEqual(log.threadsThatWrote, [Int(bitPattern: pthread_self())], "one thread: everything on the caller")
      }
    }
  }

  func testJobsSubmittedWhileConsumingRunBeforeTheMapReturns() throws {
    for threads in [1, 2, 4] {
      let log = Log()
      let jobs = CPUJobs()
      try orderedParallelMap(
        count: 50, threads: threads, window: 4, jobs: jobs,
        produce: { index, _ in index },
        consume: { index, _ in
          // Items 4, 9, …, 49: the last one submits from the very last consume.
          if index % 5 == 4 {
            jobs.submit {
              usleep(500)
              log.with { $0.jobsRun += 1 }
            }
          }
        })
      XCTAssertEqual(log.jobsRun, 10, "\(threads) threads")
    }
  }

  func testJobsSubmittedOutsideAMapStillRun() {
    let jobs = CPUJobs()
    let done = DispatchSemaphore(value: 0)
    jobs.submit { done.signal() }
    XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
  }

  func testAConsumeErrorStopsTheMapAfterRunningSubmittedJobs() {
    struct Stop: Error {}
    for threads in [1, 2] {
      let log = Log()
      let jobs = CPUJobs()
      var consumed = 0
      XCTAssertThrowsError(
        try orderedParallelMap(
          count: 1000, threads: threads, window: 8, jobs: jobs,
          produce: { index, _ in index },
          consume: { index, _ in
            consumed += 1
            if index == 20 {
              jobs.submit { log.with { $0.jobsRun += 1 } }
              throw Stop()
            }
          })
      ) { error in XCTAssertTrue(error is Stop) }
      XCTAssertEqual(consumed, 21, "no result is consumed after the error (\(threads) threads)")
      XCTAssertEqual(log.jobsRun, 1, "the job handed over before the error still ran")
    }
  }
}
