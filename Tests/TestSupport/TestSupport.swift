import Audio
import DS2Core
import Foundation

/// A temporary directory removed when the value is deinitialized.
public final class TemporaryDirectory {
  public let path: String

  public init(_ name: String = "ds2-data-test") {
    path = NSTemporaryDirectory() + "\(name)-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }

  deinit { try? FileManager.default.removeItem(atPath: path) }

  /// `path/relative`, with parent folders created.
  public func file(_ relative: String) -> String {
    let full = path + "/" + relative
    try! FileManager.default.createDirectory(
      atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    return full
  }
}

/// Deterministic test signals.
public enum Signals {
  /// `amplitude · sin(2π f t + phase)` for `seconds` at `rate`.
  public static func sine(
    frequencyHertz: Double, seconds: Double, sampleRateHertz: Int, amplitude: Double = 0.5, phase: Double = 0
  ) -> [Float] {
    let count = Int((seconds * Double(sampleRateHertz)).rounded())
    return (0..<count).map {
      Float(amplitude * sin(2 * Double.pi * frequencyHertz * Double($0) / Double(sampleRateHertz) + phase))
    }
  }

  /// Uniform white noise in [-amplitude, amplitude) from a seeded generator.
  public static func noise(count: Int, amplitude: Double = 0.1, seed: UInt64) -> [Float] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in Float((generator.nextUnitDouble() * 2 - 1) * amplitude) }
  }

  /// A "speech-like" signal: a few harmonics with a slow amplitude envelope, per seed.
  public static func voiced(seconds: Double, sampleRateHertz: Int, seed: UInt64) -> [Float] {
    var generator = SeededGenerator(seed: seed)
    let f0 = 100 + 150 * generator.nextUnitDouble()
    let count = Int(seconds * Double(sampleRateHertz))
    let noise = Signals.noise(count: count, amplitude: 0.01, seed: seed &+ 1)
    return (0..<count).map { n in
      let t = Double(n) / Double(sampleRateHertz)
      var value = 0.0
      for h in 1...5 { value += sin(2 * Double.pi * f0 * Double(h) * t) / Double(h) }
      let envelope = 0.5 + 0.5 * sin(2 * Double.pi * 3 * t)
      return Float(0.2 * envelope * value) + noise[n]
    }
  }
}

/// Builds small corpora in LibriSpeech's layout from generated audio.
public struct LibriSpeechFixture {
  public let root: String

  public init(root: String) { self.root = root }

  /// One utterance: `speaker-chapter-index`, with its transcript line.
  public struct Utterance {
    public var split: String
    public var speaker: Int
    public var chapter: Int
    public var index: Int
    public var text: String
    public var seconds: Double
    public var id: String { "\(speaker)-\(chapter)-" + String(format: "%04d", index) }
    public init(split: String, speaker: Int, chapter: Int, index: Int, text: String, seconds: Double) {
      self.split = split
      self.speaker = speaker
      self.chapter = chapter
      self.index = index
      self.text = text
      self.seconds = seconds
    }
  }

  public func chapterPath(_ u: Utterance) -> String {
    "\(root)/LibriSpeech/\(u.split)/\(u.speaker)/\(u.chapter)"
  }

  public func audioPath(_ u: Utterance) -> String { chapterPath(u) + "/\(u.id).flac" }

  public func transcriptPath(_ u: Utterance) -> String { chapterPath(u) + "/\(u.speaker)-\(u.chapter).trans.txt" }

  /// Writes the FLAC files and `*.trans.txt` of `utterances` (appending to transcripts).
  public func write(_ utterances: [Utterance], sampleRateHertz: Int = 16_000) throws {
    for u in utterances {
      try FileManager.default.createDirectory(atPath: chapterPath(u), withIntermediateDirectories: true)
      let samples = Signals.voiced(seconds: u.seconds, sampleRateHertz: sampleRateHertz, seed: UInt64(u.speaker * 1000 + u.index))
      try AudioEncoder.write(interleaved: samples, sampleRateHertz: sampleRateHertz, format: .flac16, to: audioPath(u))
      try appendLine("\(u.id) \(u.text.uppercased())", to: transcriptPath(u))
    }
  }

  /// A small three-split corpus of `perSplit` utterances per split, lengths varied.
  public static func standard(perSplit: Int = 6) -> [Utterance] {
    var utterances: [Utterance] = []
    let words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    for (s, split) in ["train-clean-100", "dev-clean", "test-clean"].enumerated() {
      for i in 0..<perSplit {
        let text = (0..<(2 + i % 4)).map { words[($0 + i + s) % words.count] }.joined(separator: " ")
        utterances.append(
          Utterance(split: split, speaker: 100 + s * 10 + i % 2, chapter: 200 + s, index: i, text: text,
            seconds: 0.5 + 0.17 * Double((i * 7) % 11)))
      }
    }
    return utterances
  }
}

/// Appends `line` and a newline to `path`, creating it if needed.
public func appendLine(_ line: String, to path: String) throws {
  try appendBytes(Array((line + "\n").utf8), to: path)
}

/// Appends raw bytes to `path`, creating it if needed.
public func appendBytes(_ bytes: [UInt8], to path: String) throws {
  if !FileManager.default.fileExists(atPath: path) {
    _ = FileManager.default.createFile(atPath: path, contents: nil)
  }
  let handle = FileHandle(forWritingAtPath: path)!
  defer { try? handle.close() }
  handle.seekToEndOfFile()
  handle.write(Data(bytes))
}

/// The repository root (the folder holding Package.swift), found from this file's path.
public let repositoryRoot: String = {
  var url = URL(fileURLWithPath: #filePath)
  while url.path != "/" {
    url.deleteLastPathComponent()
    if FileManager.default.fileExists(atPath: url.path + "/Package.swift") { return url.path }
  }
  fatalError("Package.swift not found above \(#filePath)")
}()

/// Dominant frequency of `samples` by a naive DFT scan from `low` to `high` Hz in `step`s
/// (an independent reference for pitch checks), in Hz.
public func dominantFrequency(_ samples: [Float], rate: Int, from low: Double, to high: Double, step: Double) -> Double {
  var best = (power: 0.0, frequency: low)
  var f = low
  while f <= high {
    var re = 0.0
    var im = 0.0
    for (n, x) in samples.enumerated() {
      let angle = 2 * Double.pi * f * Double(n) / Double(rate)
      re += Double(x) * cos(angle)
      im -= Double(x) * sin(angle)
    }
    if re * re + im * im > best.power { best = (re * re + im * im, f) }
    f += step
  }
  return best.frequency
}

/// Per-bin mean and population variance of row-major `frames × bins` blocks, by the
/// two-pass Double computation: the independent reference for `FeatureStatistics`.
public func twoPassStatistics(_ blocks: [[Float]], bins: Int) -> (mean: [Double], variance: [Double], frames: Int) {
  var mean = [Double](repeating: 0, count: bins)
  var frames = 0
  for block in blocks {
    for (i, v) in block.enumerated() { mean[i % bins] += Double(v) }
    frames += block.count / bins
  }
  mean = mean.map { $0 / Double(frames) }
  var variance = [Double](repeating: 0, count: bins)
  for block in blocks {
    for (i, v) in block.enumerated() { variance[i % bins] += (Double(v) - mean[i % bins]) * (Double(v) - mean[i % bins]) }
  }
  return (mean, variance.map { $0 / Double(frames) }, frames)
}
