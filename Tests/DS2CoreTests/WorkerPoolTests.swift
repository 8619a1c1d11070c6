import Foundation
import XCTest

import DS2Core
import Synchronization

/// The worker pool's ordered map behind prepare and augment: order, the in-flight bound,
/// the single writer, jobs and errors, for several thread counts.
final class OrderedMapTests: XCTestCase {
  /// A lock-protected log of what the map's threads did.
  final class Log: @unchecked Sendable {  // every field is read and written under `lock`
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
      try WorkerPool(threads: threads).orderedMap(
        count: 300, window: window,
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
      let jobs = WorkerPool(threads: threads)
      try jobs.orderedMap(
        count: 50, window: 4,
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

  func testJobsSubmittedOutsideAMapRunOnTheCallingThread() {
    let ran = Mutex(false)
    WorkerPool(threads: 2).submit { ran.withLock { $0 = true } }
    XCTAssertTrue(ran.withLock { $0 })
  }

  func testAConsumeErrorStopsTheMapAfterRunningSubmittedJobs() {
    struct Stop: Error {}
    for threads in [1, 2] {
      let log = Log()
      let jobs = WorkerPool(threads: threads)
      var consumed = 0
      XCTAssertThrowsError(
        try jobs.orderedMap(
          count: 1000, window: 8,
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

final class WorkerPoolMapTests: XCTestCase {
  struct Failure: Error, Equatable { var index: Int }

  /// Results come back in element order on any thread count; the error thrown is the
  /// first in element order, and elements after it are not started.
  func testOrderFirstErrorAndEarlyStop() throws {
    for threads in [1, 2, 5] {
      XCTAssertEqual(try WorkerPool(threads: threads).map(200) { $0 * 3 }, (0..<200).map { $0 * 3 })
      let started = Counter()
      XCTAssertThrowsError(
        try WorkerPool(threads: threads).map(200) { index -> Int in
          started.increment()
          if index == 40 || index == 7 || index == 150 { throw Failure(index: index) }
          usleep(200)
          return index
        }
      ) { error in XCTAssertEqual(error as? Failure, Failure(index: 7), "\(threads) threads") }
      XCTAssertLessThanOrEqual(started.value, 8 + threads, "\(threads) threads: elements after the failure were started")
    }
  }

  final class Counter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
  }
}
