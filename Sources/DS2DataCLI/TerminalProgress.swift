import Foundation
import Pipeline

/// Draws one progress line on a terminal's stderr: items, audio hours, × real time, ETA.
final class TerminalProgress: ProgressSink {
  func update(_ s: ProgressSnapshot) { draw(s, final: false) }
  func finish(_ s: ProgressSnapshot) { draw(s, final: true) }

  private func draw(_ s: ProgressSnapshot, final: Bool) {
    var line = String(format: "%@: %d/%d", s.phase, s.itemsDone, s.itemsTotal)
    if s.audioSecondsTotal > 0 {
      line += String(format: " utterances, %.2f/%.2f h audio, %.0f× real time", s.audioSecondsDone / 3600,
        s.audioSecondsTotal / 3600, s.realTimeFactor)
    }
    if final {
      line += String(format: ", %.1f s\n", s.elapsedSeconds)
    } else if let eta = s.etaSeconds {
      line += ", ETA " + Self.clock(eta)
    }
    FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
  }

  static func clock(_ seconds: Double) -> String {
    let total = Int(seconds.rounded())
    return String(format: "%d:%02d:%02d", total / 3600, (total / 60) % 60, total % 60)
  }
}
