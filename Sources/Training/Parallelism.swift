import Dispatch
import Foundation

/// How many threads the training core may use outside BLAS: CTC runs utterances in
/// parallel and a recurrent layer runs its two directions at once when this is 2 or more.
/// Set it together with `BLASThreads.count`; 1 makes every computation single-threaded.
public enum ComputeThreads {
  nonisolated(unsafe) private static var value = max(1, ProcessInfo.processInfo.activeProcessorCount)

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
    if count == 1 || iterations == 1 {
      for i in 0..<iterations { body(i) }
    } else {
      DispatchQueue.concurrentPerform(iterations: iterations, execute: body)
    }
  }
}
