import Audio
import DS2Core
import Foundation
import TestSupport
import XCTest

@testable import Augmentation

final class SpeedPerturbationTests: XCTestCase {
  /// A sum of tones below `maxHertz` at `rate`, seeded.
  func multitone(seconds: Double, rate: Int, maxHertz: Double, seed: UInt64) -> [Float] {
    var generator = SeededGenerator(seed: seed)
    let tones = (0..<12).map { _ in (generator.nextUnitDouble() * maxHertz, generator.nextUnitDouble() * 2 * Double.pi) }
    let count = Int(seconds * Double(rate))
    return (0..<count).map { n in
      Float(tones.reduce(0.0) { $0 + 0.05 * sin(2 * Double.pi * $1.0 * Double(n) / Double(rate) + $1.1) })
    }
  }

  /// Error power of `a` against `b` over the middle half, relative to `b`'s power, in dB.
  func relativeErrorDecibels(_ a: [Float], _ b: [Float]) -> Double {
    let range = (min(a.count, b.count) / 4)..<(min(a.count, b.count) * 3 / 4)
    var error = 0.0
    var power = 0.0
    for i in range {
      error += pow(Double(a[i]) - Double(b[i]), 2)
      power += pow(Double(b[i]), 2)
    }
    return 10 * log10(error / power)
  }

  func testQualityIsAtLeastLibsamplerateMediumAgainstSincBest() throws {
    // Speed f = M/L is resampling from M·k Hz to L·k Hz: libsamplerate's best converter is
    // the quality reference; its medium converter is the bar to meet.
    for (factor, m, l) in [(1.1, 11, 10), (0.9, 9, 10)] {
      let rate = 16_000
      let signal = multitone(seconds: 1, rate: rate, maxHertz: 0.8 * 8000 * min(1, 1 / factor), seed: 5)
      let ours = SpeedPerturber(factor: factor).apply(signal)
      let waveform = Waveform(samples: signal, sampleRateHertz: m * 1000)
      let best = try Resampler.resample(waveform, to: l * 1000, quality: .sincBest).samples
      let medium = try Resampler.resample(waveform, to: l * 1000, quality: .sincMedium).samples
      XCTAssertEqual(ours.count, best.count)
      let oursError = relativeErrorDecibels(ours, best)
      let mediumError = relativeErrorDecibels(medium, best)
      // Pass band: both are near Float precision; ours within 6 dB of medium's accuracy.
      XCTAssertLessThanOrEqual(oursError, max(mediumError + 6, -100), "factor \(factor): ours \(oursError) dB, medium \(mediumError) dB")
    }
  }

  func testAliasRejectionIsAtLeastLibsamplerateMedium() throws {
    // f = 1.1 moves a tone at 0.96 of the input Nyquist to 1.056 of the output Nyquist:
    // it must be filtered out, not folded back.
    let rate = 16_000
    let tone = Signals.sine(frequencyHertz: 0.96 * 8000, seconds: 1, sampleRateHertz: rate, amplitude: 0.5)
    func power(_ x: [Float]) -> Double {
      let middle = x[x.count / 4..<x.count * 3 / 4]
      return middle.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(middle.count)
    }
    let inputPower = power(tone)
    let ours = 10 * log10(power(SpeedPerturber(factor: 1.1).apply(tone)) / inputPower)
    let medium = 10 * log10(
      power(try Resampler.resample(Waveform(samples: tone, sampleRateHertz: 11_000), to: 10_000, quality: .sincMedium).samples)
        / inputPower)
    XCTAssertLessThanOrEqual(ours, medium + 3, "ours \(ours) dB, libsamplerate medium \(medium) dB")
    XCTAssertLessThan(ours, -90)
  }

  func testToneSpedByElevenTenthsBecomesHigherAndShorter() {
    let rate = 16_000
    let tone = Signals.sine(frequencyHertz: 1000, seconds: 1, sampleRateHertz: rate)
    let fast = SpeedPerturber(factor: 1.1).apply(tone)
    XCTAssertEqual(fast.count, 16_000 * 10 / 11)
    XCTAssertEqual(Double(fast.count) / Double(tone.count), 1 / 1.1, accuracy: 1e-4)
    let middle = Array(fast[3000..<11000])
    XCTAssertEqual(dominantFrequency(middle, rate: rate, from: 1050, to: 1150, step: 1), 1100, accuracy: 1)
    let slow = SpeedPerturber(factor: 0.9).apply(tone)
    XCTAssertEqual(slow.count, 16_000 * 10 / 9)
    XCTAssertEqual(dominantFrequency(Array(slow[3000..<12000]), rate: rate, from: 850, to: 950, step: 1), 900, accuracy: 1)
  }

  func testFactorOneIsNearIdentity() {
    let signal = multitone(seconds: 0.2, rate: 16_000, maxHertz: 7000, seed: 1)
    let same = SpeedPerturber(factor: 1.0).apply(signal)
    XCTAssertEqual(same.count, signal.count)
    XCTAssertLessThan(relativeErrorDecibels(same, signal), -80)
  }
}

