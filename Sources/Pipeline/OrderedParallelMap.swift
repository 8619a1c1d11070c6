import DS2Core
import Dispatch
import Foundation

/// CPU work handed to the threads of a running `orderedParallelMap` (a closed shard's
/// digest, say), which run it ahead of new items. A run therefore keeps every CPU task
/// within its thread count, and such work overlaps the next items instead of waiting
/// for a helper thread.
///
/// Work submitted while no map runs goes to a Dispatch global queue.
final class CPUJobs: @unchecked Sendable {
  fileprivate let condition = NSCondition()
  fileprivate var pending: [@Sendable () -> Void] = []
  fileprivate var attached = false

  init() {}

  /// Runs `job` on one of the map's threads (or on a global queue when no map runs).
  func submit(_ job: @escaping @Sendable () -> Void) {
    condition.lock()
    guard attached else {
      condition.unlock()
      DispatchQueue.global(qos: .userInitiated).async(execute: job)
      return
    }
    pending.append(job)
    condition.broadcast()
    condition.unlock()
  }
}

/// Runs `produce` for items `0..<count` and `consume` for each result in index order, on
/// `threads` threads: the calling thread and `threads − 1` others (`runConcurrently`).
///
/// Each thread loops over three kinds of work, in this priority: write (call `consume`
/// for the next result in order, if it is ready and no other thread is writing), run a
/// job from `jobs`, produce the next item. `consume` therefore runs serially and in
/// index order, but on whichever thread is free, so the writing never needs a core of
/// its own and the run uses at most `threads` cores.
///
/// At most `window` results are in flight (produced or being produced, not yet
/// consumed), so memory is bounded whatever `count` is. Output order — and therefore
/// anything `consume` writes — does not depend on the number of threads or on
/// scheduling. If `consume` throws, no new item starts, the jobs already submitted still
/// run, and the error is rethrown once every thread has stopped.
///
/// - Parameters:
///   - produce: called with the item index and the thread index (`0..<threads`), so
///     each thread can own non-thread-safe state such as an FFTW plan.
///   - jobs: where `consume` may submit CPU work (it runs before the map returns).
func orderedParallelMap<Output>(
  count: Int, threads: Int, window: Int, jobs: CPUJobs = CPUJobs(),
  produce: @escaping (_ index: Int, _ worker: Int) -> Output,
  consume: (_ index: Int, _ output: Output) throws -> Void
) throws {
  precondition(threads >= 1 && window >= 1, "need at least one thread and a window of one")
  guard count > 0 else { return }
  try withoutActuallyEscaping(consume) { consume in
    let state = MapState<Output>(jobs: jobs)
    jobs.condition.lock()
    precondition(!jobs.attached, "a CPUJobs serves one map at a time")
    jobs.attached = true
    jobs.condition.unlock()

    func work(_ worker: Int) {
      let condition = jobs.condition
      condition.lock()
      while true {
        if !state.writing && state.failure == nil, let output = state.results.removeValue(forKey: state.consumed) {
          state.writing = true
          let index = state.consumed
          condition.unlock()
          var failure: Error?
          do { try consume(index, output) } catch { failure = error }
          condition.lock()
          state.writing = false
          state.consumed = index + 1
          if let failure { state.failure = failure }
          condition.broadcast()
          continue
        }
        if !jobs.pending.isEmpty {
          let job = jobs.pending.removeFirst()
          condition.unlock()
          job()
          condition.lock()
          continue
        }
        if state.failure != nil || state.consumed == count { break }
        if state.nextIndex < count && state.nextIndex < state.consumed + window {
          let index = state.nextIndex
          state.nextIndex += 1
          condition.unlock()
          let output = produce(index, worker)
          condition.lock()
          state.results[index] = output
          condition.broadcast()
          continue
        }
        condition.wait()
      }
      // Wake the others: the map is over for all of them.
      condition.broadcast()
      condition.unlock()
    }

    // The closures are shared by the threads on purpose: `consume` runs under the
    // writing flag, `produce` on per-thread state, everything else under the condition.
    let shared = UncheckedSendable(work)
    runConcurrently(min(threads, count)) { worker in shared.value(worker) }

    jobs.condition.lock()
    // A thread leaves only when no job is pending, so this is empty unless a job came from
    // outside the map's threads after the last one left; the caller runs those.
    let leftovers = jobs.pending
    jobs.pending.removeAll()
    jobs.attached = false
    let failure = state.failure
    jobs.condition.unlock()
    for job in leftovers { job() }
    if let failure { throw failure }
  }
}

private struct UncheckedSendable<Value>: @unchecked Sendable {
  let value: Value
  init(_ value: Value) { self.value = value }
}

/// The shared state of one map, guarded by its jobs' condition.
private final class MapState<Output>: @unchecked Sendable {
  let jobs: CPUJobs
  var nextIndex = 0
  var consumed = 0
  var writing = false
  var failure: Error?
  var results: [Int: Output] = [:]

  init(jobs: CPUJobs) { self.jobs = jobs }
}
