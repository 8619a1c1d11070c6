import Dispatch
import Synchronization

/// The compute threads of a run: the one place where ds2-data runs work in parallel.
///
/// A pool is a thread budget (`--threads N`, `threads:` in a recipe) handed to every stage
/// that computes: corpus listing, header probing, noise-bank indexing, archive unpacking,
/// featurization and shard digests in `prepare`; matrix products, batch normalization,
/// CTC and the two recurrent directions in `train`. Each of its operations runs on at most
/// `threadCount` threads, the calling thread included, and one started inside another of
/// the same pool's operations runs serially, so nested work never multiplies threads. With
/// one thread, everything runs on the calling thread. Threads that only wait (fsync, the
/// finished-shard queue) are not compute threads and are not counted.
///
/// Results never depend on the thread count: every operation gives each index its own
/// output, and ordered operations deliver results in index order.
public final class WorkerPool: Sendable {
  /// The most threads an operation of this pool computes on (at least 1).
  public let threadCount: Int
  /// Set while an operation of this pool runs on more than one thread.
  private let busy = Atomic<Bool>(false)
  /// CPU jobs handed to the threads of a running `orderedMap` (see `submit`).
  let jobs = Mutex(JobQueue())

  /// A pool of `threads` threads.
  /// - Precondition: `threads >= 1` (the command line and recipes check it first).
  public init(threads: Int) {
    precondition(threads >= 1, "a worker pool needs at least one thread")
    threadCount = threads
  }

  /// Into how many parts to split work of `size` (any unit) so that each part is at least
  /// `minimumPartSize`: `threadCount` when that holds and no operation of this pool is
  /// running, else 1.
  public func parts(for size: Double, minimumPartSize: Double) -> Int {
    threadCount > 1 && !busy.load(ordering: .relaxed) && size >= minimumPartSize ? threadCount : 1
  }

  /// Runs `body(i)` for every `i` in `0..<iterations`, on up to `threadCount` threads (the
  /// caller's and Dispatch's), each taking the next index; returns when all have returned.
  /// Serial inside another operation of this pool.
  public func forEach(_ iterations: Int, _ body: @Sendable (_ index: Int) -> Void) {
    let workers = min(threadCount, iterations)
    guard workers > 1, claim() else {
      for index in 0..<iterations { body(index) }
      return
    }
    defer { release() }
    if workers == iterations {
      DispatchQueue.concurrentPerform(iterations: iterations, execute: body)
      return
    }
    let next = Atomic<Int>(0)
    DispatchQueue.concurrentPerform(iterations: workers) { _ in
      while true {
        let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
        guard index < iterations else { return }
        body(index)
      }
    }
  }

  /// `transform` of every index in `0..<count`, computed on up to `threadCount` threads,
  /// in index order.
  /// - Throws: the error of the first index (in order) whose transform threw; indices after
  ///   one that threw are not started.
  public func map<Value: Sendable>(_ count: Int, _ transform: @escaping @Sendable (_ index: Int) throws -> Value) throws
    -> [Value]
  {
    let slots = MapSlots<Value>(count: count)
    onThreads(min(threadCount, count)) { _ in
      while let index = slots.claim() {
        slots.store(Result { try transform(index) }, at: index)
      }
    }
    return try slots.values()
  }

  /// Runs `body(0)` … `body(workers − 1)` at the same time and returns when all have
  /// returned: `body(0)` on the calling thread, each other one on a thread of its own.
  /// Serial (in index order) inside another operation of this pool.
  ///
  /// The other threads come from serial Dispatch queues, which get a thread at once even
  /// when Dispatch's shared pool (as wide as the machine has cores) is busy; its
  /// `concurrentPerform` would wait for a free pool thread, so long-running workers could
  /// end up on fewer threads than asked.
  /// - Precondition: `workers <= threadCount`.
  func onThreads(_ workers: Int, _ body: @escaping @Sendable (_ worker: Int) -> Void) {
    precondition(workers <= max(1, threadCount), "more workers than the pool has threads")
    guard workers > 1, claim() else {
      for worker in 0..<max(1, workers) { body(worker) }
      return
    }
    defer { release() }
    let group = DispatchGroup()
    for worker in 1..<workers {
      DispatchQueue(label: "ds2-data.worker-\(worker)", qos: .userInitiated).async(group: group) { body(worker) }
    }
    body(0)
    group.wait()
  }

  /// Starts `body` now on a thread of its own when the pool has more than one thread (it
  /// then overlaps the caller's work); with one thread, it runs when its value is first
  /// asked for, on the asking thread. For CPU work that the caller needs later, such as
  /// FFTW plans made while a corpus is listed.
  public func later<Value: Sendable>(_ body: @escaping @Sendable () throws -> Value) -> Later<Value> {
    Later(body, now: threadCount > 1)
  }

  private func claim() -> Bool {
    busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
  }

  private func release() { busy.store(false, ordering: .releasing) }
}

/// A value being computed for later (`WorkerPool.later`).
public final class Later<Value: Sendable>: Sendable {
  private let state: Mutex<State>
  private let done = DispatchSemaphore(value: 0)

  private enum State {
    case waiting(@Sendable () throws -> Value)
    case running
    case finished(Result<Value, Error>)
  }

  /// Starts `body` now on a thread of its own, beside the pool: for work that mostly waits
  /// (writing and fsyncing a file) and should overlap the run's computing. CPU work goes
  /// through `WorkerPool.later` instead, which respects the thread budget.
  public convenience init(waitingWork body: @escaping @Sendable () throws -> Value) {
    self.init(body, now: true)
  }

  init(_ body: @escaping @Sendable () throws -> Value, now: Bool) {
    state = Mutex(.waiting(body))
    if now {
      DispatchQueue(label: "ds2-data.later", qos: .userInitiated).async { [self] in run() }
    }
  }

  /// Runs the body if nobody has started it yet.
  private func run() {
    let body: (@Sendable () throws -> Value)? = state.withLock { state in
      guard case .waiting(let body) = state else { return nil }
      state = .running
      return body
    }
    guard let body else { return }
    let result = Result { try body() }
    state.withLock { $0 = .finished(result) }
    done.signal()
  }

  /// The value, computed on this thread if it has not started yet; waits for it otherwise.
  /// - Throws: the body's error.
  public func value() throws -> Value {
    run()
    while true {
      let finished: Result<Value, Error>? = state.withLock { state in
        if case .finished(let result) = state { return result }
        return nil
      }
      if let finished { return try finished.get() }
      done.wait()
      done.signal()  // later callers of value() also get through
    }
  }
}

/// The slots of a `WorkerPool.map`.
private final class MapSlots<Value: Sendable>: Sendable {
  private struct State {
    var next = 0
    /// Indices from here on are not started: an index before them threw.
    var end: Int
    var slots: [Result<Value, Error>?]
  }
  private let state: Mutex<State>

  init(count: Int) { state = Mutex(State(end: count, slots: Array(repeating: nil, count: count))) }

  /// The next unclaimed index, or nil when there is none left to start.
  func claim() -> Int? {
    state.withLock { state in
      guard state.next < state.end else { return nil }
      state.next += 1
      return state.next - 1
    }
  }

  func store(_ result: Result<Value, Error>, at index: Int) {
    state.withLock { state in
      state.slots[index] = result
      if case .failure = result { state.end = min(state.end, index + 1) }
    }
  }

  /// The results in order, or the first error in order.
  func values() throws -> [Value] {
    let slots = state.withLock { $0.slots }
    var values: [Value] = []
    values.reserveCapacity(slots.count)
    for slot in slots { values.append(try slot!.get()) }
    return values
  }
}

extension WorkerPool {
  /// A pool of one thread: everything on the calling thread.
  public static let serial = WorkerPool(threads: 1)
}
