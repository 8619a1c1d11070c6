import Foundation

/// A snapshot of a long-running stage, for progress displays.
public struct ProgressSnapshot: Sendable {
  /// What is running, e.g. `probe` or a split name.
  public var phase: String
  public var itemsDone: Int
  public var itemsTotal: Int
  /// Audio processed so far in this phase, seconds.
  public var audioSecondsDone: Double
  /// Audio this phase will process, seconds (0 when unknown).
  public var audioSecondsTotal: Double
  /// Wall time since the phase started, seconds.
  public var elapsedSeconds: Double

  /// Audio seconds per wall second.
  public var realTimeFactor: Double { elapsedSeconds > 0 ? audioSecondsDone / elapsedSeconds : 0 }

  /// Estimated seconds to the end of the phase, by audio processed (or items).
  public var etaSeconds: Double? {
    guard elapsedSeconds > 0 else { return nil }
    if audioSecondsTotal > 0, audioSecondsDone > 0 {
      return (audioSecondsTotal - audioSecondsDone) / realTimeFactor
    }
    guard itemsDone > 0 else { return nil }
    return Double(itemsTotal - itemsDone) * elapsedSeconds / Double(itemsDone)
  }
}

/// Receives progress: called by whichever of the pipeline's threads is writing, one call
/// at a time (never concurrently), so a sink needs no lock but must not assume one thread.
public protocol ProgressSink: AnyObject {
  func update(_ snapshot: ProgressSnapshot)
  /// The phase is over.
  func finish(_ snapshot: ProgressSnapshot)
}

/// Tracks one phase and forwards at most a few snapshots per second.
final class PhaseProgress {
  private let sink: ProgressSink?
  private var snapshot: ProgressSnapshot
  private let start = DispatchTime.now()
  private var lastReport = DispatchTime.now()

  init(sink: ProgressSink?, phase: String, itemsTotal: Int, audioSecondsTotal: Double) {
    self.sink = sink
    snapshot = ProgressSnapshot(
      phase: phase, itemsDone: 0, itemsTotal: itemsTotal, audioSecondsDone: 0, audioSecondsTotal: audioSecondsTotal,
      elapsedSeconds: 0)
  }

  func advance(audioSeconds: Double) {
    snapshot.itemsDone += 1
    snapshot.audioSecondsDone += audioSeconds
    guard let sink else { return }
    let now = DispatchTime.now()
    if now.uptimeNanoseconds - lastReport.uptimeNanoseconds > 250_000_000 {
      lastReport = now
      snapshot.elapsedSeconds = Double(now.uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
      sink.update(snapshot)
    }
  }

  func finish() {
    snapshot.elapsedSeconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    sink?.finish(snapshot)
  }
}
