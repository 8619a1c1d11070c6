import DS2Core
import Dispatch
import Foundation

/// How many threads the training core uses. With 2 or more, large matrix products are split
/// into blocks computed by single-threaded OpenBLAS calls on Dispatch workers, CTC runs
/// utterances in parallel and a recurrent layer runs its two directions at once.
///
/// OpenBLAS should then run single-threaded (`configure(threads:)` does both): its own idle
/// workers spin for a while after each product and would steal the cores from these threads.
public enum ComputeThreads {
  nonisolated(unsafe) private static var value = max(1, ProcessInfo.processInfo.activeProcessorCount)
  /// Set while a parallel section runs; products inside it are not split again.
  nonisolated(unsafe) static var inParallelSection = false

  /// Uses `threads` threads for all training computation, OpenBLAS itself single-threaded,
  /// and keeps freed step buffers in the process heap (`HeapTuning.keepStepBuffers`): a
  /// training step frees and reallocates buffers of up to tens of megabytes, which glibc
  /// would otherwise map and unmap every time, so that every step page-faulted them back
  /// in (7 % of a step). Only the largest blocks (16 MiB and up) are still mapped, so that
  /// the longest batch does not grow the heap for good.
  public static func configure(threads: Int) {
    count = threads
    BLASThreads.count = 1
    HeapTuning.keepStepBuffers()
  }

  /// Blocks to split a product of `multiplyAdds` into: `count` for large products outside a
  /// parallel section, else 1.
  static func parts(forMultiplyAdds multiplyAdds: Double) -> Int {
    count > 1 && !inParallelSection && multiplyAdds >= 1_000_000 ? count : 1
  }

  /// The thread budget, at least 1 (default: one per core).
  public static var count: Int {
    get { value }
    set {
      precondition(newValue >= 1, "compute thread count must be at least 1")
      value = newValue
    }
  }

  /// Runs `body(i)` for `i` in `0..<iterations`, on up to `count` threads.
  static func forEach(_ iterations: Int, _ body: (Int) -> Void) {
    if count == 1 || iterations == 1 || inParallelSection {
      for i in 0..<iterations { body(i) }
    } else {
      inParallelSection = true
      DispatchQueue.concurrentPerform(iterations: iterations, execute: body)
      inParallelSection = false
    }
  }
}


