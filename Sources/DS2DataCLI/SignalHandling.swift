import Dispatch
import Foundation
import Pipeline

/// Turns SIGINT and SIGTERM into a cancellation request while it is alive: the run
/// finishes or rolls back the shard in flight, keeps completed work and exits with
/// 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM). A second signal exits at
/// once.
final class SignalHandling {
  private var sources: [DispatchSourceSignal] = []

  /// - Parameter quiet: say nothing on a signal (the other ranks of a data-parallel run).
  init(cancellation: Cancellation, quiet: Bool = false) {
    for number in [SIGINT, SIGTERM] {
      signal(number, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
      source.setEventHandler {
        if cancellation.signal != nil { _exit(128 + number) }
        if !quiet {
          FileHandle.standardError.write(Data("\nds2-data: stopping after the current items (signal \(number))…\n".utf8))
        }
        cancellation.cancel(signal: number)
      }
      source.resume()
      sources.append(source)
    }
  }

  deinit {
    for source in sources { source.cancel() }
  }
}
