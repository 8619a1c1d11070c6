import Dispatch
import Foundation

/// Runs `produce` for items `0..<count` on `threads` Dispatch workers and hands the
/// results to `consume` on the calling thread in index order.
///
/// At most `window` results are in flight (produced but not consumed), so memory is
/// bounded whatever `count` is. Output order — and therefore anything `consume` writes —
/// does not depend on the number of threads or on scheduling. If `consume` throws, the
/// workers stop after their current item and the error is rethrown.
///
/// - Parameters:
///   - produce: called with the item index and the worker index (`0..<threads`), so
///     each worker can own non-thread-safe state such as an FFTW plan.
func orderedParallelMap<Output>(
  count: Int, threads: Int, window: Int,
  produce: @escaping (_ index: Int, _ worker: Int) -> Output,
  consume: (_ index: Int, _ output: Output) throws -> Void
) throws {
  precondition(threads >= 1 && window >= 1, "need at least one thread and a window of one")
  guard count > 0 else { return }
  let state = SharedState<Output>()
  let queue = DispatchQueue(label: "ds2-data.workers", qos: .userInitiated, attributes: .concurrent)
  let group = DispatchGroup()
  for worker in 0..<min(threads, count) {
    queue.async(group: group) {
      while true {
        state.condition.lock()
        while !state.stopped && state.nextIndex < count && state.nextIndex >= state.consumed + window {
          state.condition.wait()
        }
        if state.stopped || state.nextIndex >= count {
          state.condition.unlock()
          return
        }
        let index = state.nextIndex
        state.nextIndex += 1
        state.condition.unlock()

        let output = produce(index, worker)

        state.condition.lock()
        state.results[index] = output
        state.condition.broadcast()
        state.condition.unlock()
      }
    }
  }
  defer {
    state.condition.lock()
    state.stopped = true
    state.condition.broadcast()
    state.condition.unlock()
    group.wait()
  }
  for index in 0..<count {
    state.condition.lock()
    while state.results[index] == nil { state.condition.wait() }
    let output = state.results.removeValue(forKey: index)!
    state.consumed = index + 1
    state.condition.broadcast()
    state.condition.unlock()
    try consume(index, output)
  }
}

private final class SharedState<Output>: @unchecked Sendable {
  let condition = NSCondition()
  var nextIndex = 0
  var consumed = 0
  var stopped = false
  var results: [Int: Output] = [:]
}
