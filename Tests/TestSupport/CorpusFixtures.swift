import Audio
import DS2Core
import Foundation

/// Builds small Fisher-layout corpora: 2-channel 8 kHz µ-law NIST SPHERE conversations in
/// LDC's folder structure, where each turn's channel holds a pure tone of the turn's own
/// frequency for exactly the turn's time span and every other sample is silent. A decoded
/// turn therefore shows by its frequency which channel and which span it came from.
public struct FisherFixture {
  public let root: String
  public static let sampleRateHertz = 8_000

  public init(root: String) { self.root = root }

  /// One transcript line. `frequencyHertz` nil writes the line without audio under it.
  public struct Turn {
    public var start: Double
    public var end: Double
    public var side: String
    public var text: String
    public var frequencyHertz: Double?
    public init(_ start: Double, _ end: Double, _ side: String, _ text: String, frequencyHertz: Double? = nil) {
      self.start = start
      self.end = end
      self.side = side
      self.text = text
      self.frequencyHertz = frequencyHertz
    }
  }

  public static func name(_ number: Int) -> String { "fe_03_" + String(format: "%05d", number) }

  /// LDC's folders: part 1 (≤ 5850) in LDC2004S13/T19, part 2 in LDC2005S13/T19, with the
  /// `audio/NNN/` and `data/trans/NNN/` subfolders named by the number's first 3 digits.
  public func audioPath(_ number: Int) -> String {
    let part = number <= 5850 ? "LDC2004S13/fe_03_p1_sph1" : "LDC2005S13/fe_03_p2_sph1"
    return "\(root)/\(part)/audio/\(String(format: "%03d", number / 100))/\(Self.name(number)).sph"
  }

  public func transcriptPath(_ number: Int) -> String {
    let part = number <= 5850 ? "LDC2004T19/fe_03_p1_tran" : "LDC2005T19/fe_03_p2_tran"
    return "\(root)/\(part)/data/trans/\(String(format: "%03d", number / 100))/\(Self.name(number)).txt"
  }

  /// Writes conversation `number`: its SPHERE file (`seconds` long) and its transcript
  /// (the LDC header comments, a blank line, then `extraLines` and one line per turn).
  public func write(number: Int, seconds: Double, turns: [Turn], extraLines: [String] = [], writeAudio: Bool = true) throws {
    let rate = Self.sampleRateHertz
    if writeAudio {
      var interleaved = [Float](repeating: 0, count: Int(seconds * Double(rate)) * 2)
      for turn in turns {
        guard let frequency = turn.frequencyHertz else { continue }
        let channel = turn.side == "A" ? 0 : 1
        let first = Int((turn.start * Double(rate)).rounded())
        let last = Int((turn.end * Double(rate)).rounded())
        for n in first..<last {
          interleaved[2 * n + channel] = Float(0.5 * sin(2 * Double.pi * frequency * Double(n - first) / Double(rate)))
        }
      }
      try makeParent(audioPath(number))
      try AudioEncoder.write(interleaved: interleaved, channels: 2, sampleRateHertz: rate, format: .sphereULaw, to: audioPath(number))
    }
    var lines = ["# \(Self.name(number)).sph", "# Transcribed at the LDC", ""] + extraLines
    for turn in turns {
      lines.append(String(format: "%.2f %.2f", turn.start, turn.end) + " \(turn.side): \(turn.text)")
    }
    try makeParent(transcriptPath(number))
    try (lines.joined(separator: "\n") + "\n").write(toFile: transcriptPath(number), atomically: true, encoding: .utf8)
  }
}

/// Builds small AISHELL-1-layout corpora of generated 16 kHz WAVs, optionally packed as
/// OpenSLR ships them (one `<speaker>.tar.gz` per speaker holding `<split>/<speaker>/`).
public struct AISHELLFixture {
  public let root: String

  public init(root: String) { self.root = root }

  public var wavDirectory: String { root + "/data_aishell/wav" }
  public var transcriptPath: String { root + "/data_aishell/transcript/aishell_transcript_v0.8.txt" }

  /// `BAC009S0002W0121`-style id of `speaker` (a number) and utterance `index`.
  public static func id(speaker: Int, index: Int) -> String {
    "BAC009S" + String(format: "%04d", speaker) + "W" + String(format: "%04d", 121 + index)
  }

  public static func speakerName(_ speaker: Int) -> String { "S" + String(format: "%04d", speaker) }

  public func audioPath(split: String, speaker: Int, index: Int) -> String {
    "\(wavDirectory)/\(split)/\(Self.speakerName(speaker))/\(Self.id(speaker: speaker, index: index)).wav"
  }

  /// Writes one WAV of `seconds` of a voiced signal.
  public func writeAudio(split: String, speaker: Int, index: Int, seconds: Double) throws {
    let path = audioPath(split: split, speaker: speaker, index: index)
    try makeParent(path)
    let samples = Signals.voiced(seconds: seconds, sampleRateHertz: 16_000, seed: UInt64(speaker * 100 + index))
    try AudioEncoder.write(interleaved: samples, sampleRateHertz: 16_000, format: .wavPCM16, to: path)
  }

  /// Writes the transcript file from `lines` (`<id> <words>`), in the given order.
  public func writeTranscript(_ lines: [String]) throws {
    try makeParent(transcriptPath)
    try (lines.joined(separator: "\n") + "\n").write(toFile: transcriptPath, atomically: true, encoding: .utf8)
  }

  /// Packs `wav/<split>/<speaker>/` into `wav/<speaker>.tar.gz` with the system `tar` and
  /// removes the folder (and the split folder once empty), as the corpus is downloaded.
  public func pack(split: String, speaker: Int) throws {
    let name = Self.speakerName(speaker)
    try runTool("/usr/bin/env", ["tar", "-czf", "\(name).tar.gz", "\(split)/\(name)"], in: wavDirectory)
    try FileManager.default.removeItem(atPath: "\(wavDirectory)/\(split)/\(name)")
    if try FileManager.default.contentsOfDirectory(atPath: "\(wavDirectory)/\(split)").isEmpty {
      try FileManager.default.removeItem(atPath: "\(wavDirectory)/\(split)")
    }
  }
}

/// Creates the folders above `path`.
func makeParent(_ path: String) throws {
  try FileManager.default.createDirectory(
    atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
}

/// Power of `samples` at one frequency (Goertzel), normalized by the length; used to
/// tell which tone a decoded segment holds.
public func tonePower(_ samples: [Float], frequencyHertz: Double, sampleRateHertz: Int) -> Double {
  let omega = 2 * Double.pi * frequencyHertz / Double(sampleRateHertz)
  let coefficient = 2 * cos(omega)
  var s1 = 0.0
  var s2 = 0.0
  for sample in samples {
    let s0 = Double(sample) + coefficient * s1 - s2
    s2 = s1
    s1 = s0
  }
  let power = s1 * s1 + s2 * s2 - coefficient * s1 * s2
  return power / Double(max(1, samples.count * samples.count))
}

/// Copies a folder tree (bundled corpora are copied before tests that write into them).
public func copyTree(_ source: String, to destination: String) throws {
  try makeParent(destination)
  try FileManager.default.copyItem(atPath: source, toPath: destination)
}
