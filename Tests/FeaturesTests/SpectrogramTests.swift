import DS2Core
import Foundation
import TestSupport
import XCTest

@testable import Features

/// The FFTW spectrogram against an O(N²) DFT computed in Double from the definition in
/// `SpectrogramConfig`'s documentation.
final class SpectrogramTests: XCTestCase {
  /// Reference: the documented formula, evaluated naively in Double.
  func naiveLogSpectrogram(_ samples: [Float], config: SpectrogramConfig, rate: Int) -> [[Double]] {
    let window = config.windowSamples(sampleRateHertz: rate)
    let hop = config.hopSamples(sampleRateHertz: rate)
    let n = config.fftLength(sampleRateHertz: rate)
    let bins = n / 2 + 1
    let frames = samples.count < window ? 0 : 1 + (samples.count - window) / hop
    let w: [Double] = (0..<window).map { i in
      let x = Double(i)
      switch config.window {
      case .hann: return 0.5 - 0.5 * cos(2 * Double.pi * x / Double(window))
      case .hannSymmetric: return 0.5 - 0.5 * cos(2 * Double.pi * x / Double(window - 1))
      case .hamming: return 0.54 - 0.46 * cos(2 * Double.pi * x / Double(window))
      }
    }
    let energy = w.reduce(0) { $0 + $1 * $1 }
    var result: [[Double]] = []
    for t in 0..<frames {
      var row: [Double] = []
      for k in 0..<bins {
        var re = 0.0
        var im = 0.0
        for i in 0..<window {
          let x = Double(samples[t * hop + i]) * w[i]
          re += x * cos(2 * Double.pi * Double(k * i) / Double(n))
          im -= x * sin(2 * Double.pi * Double(k * i) / Double(n))
        }
        let edge = k == 0 || (n % 2 == 0 && k == n / 2)
        let scale = (edge ? 1.0 : 2.0) / (Double(rate) * energy)
        row.append(log((re * re + im * im) * scale + config.epsilon))
      }
      result.append(row)
    }
    return result
  }

  func assertMatchesNaive(config: SpectrogramConfig, rate: Int, seconds: Double, file: StaticString = #filePath, line: UInt = #line) throws {
    let samples = Signals.voiced(seconds: seconds, sampleRateHertz: rate, seed: 7)
    let extractor = try SpectrogramExtractor(config: config, sampleRateHertz: rate)
    let fast = extractor.compute(samples)
    let reference = naiveLogSpectrogram(samples, config: config, rate: rate)
    XCTAssertEqual(fast.frames, reference.count, file: file, line: line)
    XCTAssertEqual(fast.bins, reference.first?.count ?? extractor.bins, file: file, line: line)
    var worst = 0.0
    for t in 0..<fast.frames {
      for k in 0..<fast.bins {
        // Compare in the power domain relative to the frame's peak: log error is
        // meaningless for bins ~1e-10 below the peak where Float rounding dominates.
        let peak = reference[t].max()!
        let a = exp(reference[t][k] - peak)
        let b = exp(Double(fast[t, k]) - peak)
        worst = max(worst, abs(a - b))
        if reference[t][k] > peak - 9 {  // within ~40 dB of the peak: log values agree closely
          XCTAssertEqual(Double(fast[t, k]), reference[t][k], accuracy: 2e-3, "t=\(t) k=\(k)", file: file, line: line)
        }
      }
    }
    XCTAssertLessThan(worst, 1e-5, file: file, line: line)
  }

  func testDefaultDS2SpectrogramMatchesNaiveDFT() throws {
    try assertMatchesNaive(config: SpectrogramConfig(), rate: 16_000, seconds: 0.1)
  }

  func testWindowShapesAndZeroPaddedFFTMatchNaiveDFT() throws {
    for shape in WindowShape.allCases {
      var config = SpectrogramConfig()
      config.window = shape
      config.fftSize = 400  // zero-padded beyond the 320-sample window
      try assertMatchesNaive(config: config, rate: 16_000, seconds: 0.06)
    }
    var odd = SpectrogramConfig()
    odd.fftSize = 321  // odd length: no Nyquist bin
    try assertMatchesNaive(config: odd, rate: 16_000, seconds: 0.05)
    try assertMatchesNaive(config: SpectrogramConfig(), rate: 8_000, seconds: 0.08)
  }

  func testDS2ShapeAndFrameCountFormula() throws {
    let extractor = try SpectrogramExtractor(config: SpectrogramConfig(), sampleRateHertz: 16_000)
    XCTAssertEqual(extractor.windowSamples, 320)
    XCTAssertEqual(extractor.hopSamples, 160)
    XCTAssertEqual(extractor.bins, 161)
    let cases: [(Int, Int)] = [(0, 0), (319, 0), (320, 1), (479, 1), (480, 2), (16_000, 99), (16_160, 100)]
    for (samples, frames) in cases {
      XCTAssertEqual(extractor.frameCount(sampleCount: samples), frames, "n=\(samples)")
      XCTAssertEqual(extractor.compute([Float](repeating: 0.1, count: samples)).frames, frames)
    }
  }

  func testPureTonePeaksAtItsBin() throws {
    let extractor = try SpectrogramExtractor(config: SpectrogramConfig(), sampleRateHertz: 16_000)
    // Bin spacing is 16000/320 = 50 Hz: 1 kHz is bin 20, 3.15 kHz is bin 63.
    for (frequency, bin) in [(1000.0, 20), (3150.0, 63), (7000.0, 140)] {
      let features = extractor.compute(Signals.sine(frequencyHertz: frequency, seconds: 0.5, sampleRateHertz: 16_000))
      for t in 0..<features.frames {
        let row = (0..<features.bins).map { features[t, $0] }
        XCTAssertEqual(row.indices.max { row[$0] < row[$1] }, bin, "\(frequency) Hz frame \(t)")
      }
    }
  }

  func testSilenceGivesLogEpsilon() throws {
    let extractor = try SpectrogramExtractor(config: SpectrogramConfig(), sampleRateHertz: 16_000)
    let features = extractor.compute([Float](repeating: 0, count: 1000))
    for value in features.values { XCTAssertEqual(Double(value), log(1e-14), accuracy: 1e-5) }
  }

  func testFastLogAgainstFoundationLog() {
    var values: [Float] = []
    var x: Float = 1e-30
    while x < 1e30 {
      values.append(x)
      x *= 1.0137
    }
    var computed = values
    computed.withUnsafeMutableBufferPointer { FastMath.logInPlace($0.baseAddress!, count: $0.count) }
    for (input, output) in zip(values, computed) {
      XCTAssertEqual(Double(output), log(Double(input)), accuracy: 4e-6 * max(1, abs(log(Double(input)))), "\(input)")
    }
  }

  func testLoudnessNormalizationReachesTarget() throws {
    let waveform = Waveform(samples: Signals.sine(frequencyHertz: 440, seconds: 1, sampleRateHertz: 16_000, amplitude: 0.01), sampleRateHertz: 16_000)
    let normalized = try LoudnessNormalizer.normalize(waveform, targetDecibels: -20, file: "x")
    XCTAssertEqual(10 * log10(normalized.meanPower), -20, accuracy: 1e-3)
    XCTAssertThrowsError(try LoudnessNormalizer.normalize(Waveform(samples: [0, 0, 0], sampleRateHertz: 16_000), targetDecibels: -20, file: "silent.wav")) { error in
      XCTAssertEqual((error as? ItemError)?.reason, .silentAudio)
    }
  }

  func testBadConfigIsRejectedWithTheFieldNamed() {
    var config = SpectrogramConfig()
    config.fftSize = 100
    XCTAssertThrowsError(try SpectrogramExtractor(config: config, sampleRateHertz: 16_000)) { error in
      XCTAssertTrue("\(error)".contains("fftSize"), "\(error)")
    }
  }
}
