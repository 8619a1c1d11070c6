import Dispatch

/// Runs `body(0)` … `body(count − 1)` at the same time and returns when all have returned:
/// `body(0)` on the calling thread, each other one on a thread of its own.
///
/// The other threads come from serial Dispatch queues, which get a thread at once even
/// when Dispatch's shared pool (as wide as the machine has cores) is busy with background
/// work; `DispatchQueue.concurrentPerform` and concurrent queues would wait for a free
/// pool thread, so a run given N threads could run on fewer.
public func runConcurrently(_ count: Int, _ body: @escaping @Sendable (_ index: Int) -> Void) {
  let group = DispatchGroup()
  for index in 1..<max(1, count) {
    DispatchQueue(label: "ds2-data.thread-\(index)", qos: .userInitiated).async(group: group) { body(index) }
  }
  body(0)
  group.wait()
}
