import Foundation
import Synchronization

/// The `orderedMap` running on a pool, if any, which takes the pool's submitted jobs.
struct JobQueue: ~Copyable {
  var running: OrderedMapState?
}

extension WorkerPool {
  /// Runs `job`, CPU work such as a closed shard's digest, on a thread of the running
  /// `orderedMap` (ahead of new items, so that it overlaps them and the run stays within
  /// its thread count), or on the calling thread at once when no map runs.
  public func submit(_ job: @escaping @Sendable () -> Void) {
    let map = jobs.withLock { $0.running }
    if let map, map.enqueue(job) { return }
    job()
  }

  /// Runs `produce` for items `0..<count` and `consume` for each result in index order, on
  /// up to `threadCount` threads: the calling thread and others (`onThreads`).
  ///
  /// Each thread loops over three kinds of work, in this priority: write (call `consume`
  /// for the next result in order, if it is ready and no other thread is writing), run a
  /// submitted job (`submit`), produce the next item. `consume` therefore runs serially
  /// and in index order, but on whichever thread is free, so the writing never needs a
  /// core of its own and the run uses at most `threadCount` cores.
  ///
  /// At most `window` results are in flight (produced or being produced, not yet
  /// consumed), so memory is bounded whatever `count` is. Output order, and therefore
  /// anything `consume` writes, does not depend on the number of threads or on
  /// scheduling. If `consume` throws, no new item starts, the jobs already submitted still
  /// run, and the error is rethrown once every thread has stopped.
  ///
  /// - Parameters:
  ///   - produce: called with the item index and the worker index (`0..<threadCount`), so
  ///     that each worker can own state that is not thread-safe, such as an FFTW plan
  ///     (`PerWorker`).
  ///   - consume: called serially, in index order, on any of the threads.
  /// - Precondition: no other `orderedMap` runs on this pool.
  public func orderedMap<Output: Sendable>(
    count: Int, window: Int,
    produce: @escaping @Sendable (_ index: Int, _ worker: Int) -> Output,
    consume: (_ index: Int, _ output: Output) throws -> Void
  ) throws {
    precondition(window >= 1, "need a window of at least one")
    guard count > 0 else { return }
    try withoutActuallyEscaping(consume) { consume in
      let state = OrderedMapState(count: count, window: window)
      jobs.withLock { queue in
        precondition(queue.running == nil, "one orderedMap at a time per pool")
        queue.running = state
      }
      // `consume` is not Sendable (it writes the caller's state), but it runs under the
      // map's writing flag: never on two threads at once, and each call happens-after the last.
      nonisolated(unsafe) let serialConsume = consume
      onThreads(min(threadCount, count)) { worker in
        state.work(worker: worker, produce: produce, consume: serialConsume)
      }
      jobs.withLock { $0.running = nil }
      // Jobs that came from outside the map's threads after the last one left.
      for job in state.detach() { job() }
      if let failure = state.failure { throw failure }
    }
  }
}

/// The shared state of one `orderedMap`.
final class OrderedMapState: @unchecked Sendable {  // every stored var is guarded by `condition`
  private let condition = NSCondition()
  private let count: Int
  private let window: Int
  private var nextIndex = 0
  private var consumed = 0
  private var writing = false
  private var detached = false
  private var pending: [@Sendable () -> Void] = []
  private var results: [Int: Any] = [:]
  private(set) var failure: Error?

  init(count: Int, window: Int) {
    self.count = count
    self.window = window
  }

  /// Queues `job` for the map's threads; false when the map is over.
  func enqueue(_ job: @escaping @Sendable () -> Void) -> Bool {
    condition.lock()
    defer { condition.unlock() }
    guard !detached else { return false }
    pending.append(job)
    condition.broadcast()
    return true
  }

  /// Ends the map: no job is queued from now on; returns those left.
  func detach() -> [@Sendable () -> Void] {
    condition.lock()
    defer { condition.unlock() }
    detached = true
    let left = pending
    pending.removeAll()
    return left
  }

  /// One thread's loop (see `WorkerPool.orderedMap`).
  func work<Output>(
    worker: Int, produce: (Int, Int) -> Output, consume: (Int, Output) throws -> Void
  ) {
    condition.lock()
    while true {
      if !writing && failure == nil, let output = results.removeValue(forKey: consumed) {
        writing = true
        let index = consumed
        condition.unlock()
        var error: Error?
        do { try consume(index, output as! Output) } catch let thrown { error = thrown }
        condition.lock()
        writing = false
        consumed = index + 1
        if let error { failure = error }
        condition.broadcast()
        continue
      }
      if !pending.isEmpty {
        let job = pending.removeFirst()
        condition.unlock()
        job()
        condition.lock()
        continue
      }
      if failure != nil || consumed == count { break }
      if nextIndex < count && nextIndex < consumed + window {
        let index = nextIndex
        nextIndex += 1
        condition.unlock()
        let output = produce(index, worker)
        condition.lock()
        results[index] = output
        condition.broadcast()
        continue
      }
      condition.wait()
    }
    // Wake the others: the map is over for all of them.
    condition.broadcast()
    condition.unlock()
  }
}

/// One value per worker of a pool operation (an FFTW plan, scratch buffers), for state
/// that is not thread-safe: worker `i` uses only element `i`.
public final class PerWorker<Value>: @unchecked Sendable {  // element i is touched only by worker i
  private var values: [Value]

  /// One value per worker, made by `make(worker)`.
  public init(count: Int, _ make: (_ worker: Int) throws -> Value) rethrows {
    values = try (0..<count).map(make)
  }

  public init(_ values: [Value]) { self.values = values }

  /// Worker `worker`'s value.
  public subscript(worker: Int) -> Value {
    get { values[worker] }
    set { values[worker] = newValue }
  }

  public var count: Int { values.count }
}
