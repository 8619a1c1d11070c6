import Audio
import DS2Core
import Features
import Foundation
import TestSupport
import XCTest

@testable import Augmentation

final class NoiseMixerTests: XCTestCase {
  func testMeasuredSNREqualsRequested() throws {
    let speech = Signals.voiced(seconds: 1, sampleRateHertz: 16_000, seed: 1)
    let noise = Signals.noise(count: speech.count, amplitude: 0.3, seed: 2)
    for snr in [-5.0, 0, 7.5, 20, 35] {
      let mixed = try NoiseMixer.mix(speech, noise: noise, snrDecibels: snr)
      let added = zip(mixed, speech).map { $0 - $1 }
      let measured = 10 * log10(NoiseMixer.meanPower(speech) / NoiseMixer.meanPower(added))
      XCTAssertEqual(measured, snr, accuracy: 0.1)
    }
  }

  func testZeroPowerNoiseIsRejectedNotDividedBy() {
    let speech = Signals.voiced(seconds: 0.5, sampleRateHertz: 16_000, seed: 1)
    XCTAssertThrowsError(try NoiseMixer.mix(speech, noise: [Float](repeating: 0, count: speech.count), snrDecibels: 10)) {
      XCTAssertTrue("\($0)".contains("zero power"))
    }
    XCTAssertThrowsError(try NoiseMixer.mix([Float](repeating: 0, count: 10), noise: [Float](repeating: 0.1, count: 10), snrDecibels: 10))
  }
}

final class NoiseBankTests: XCTestCase {
  func testIndexesMUSANLayoutAndRejectsBadFilesByName() throws {
    let directory = TemporaryDirectory("bank")
    let root = directory.path + "/bank"
    let noise = Signals.noise(count: 8000, seed: 3)
    try AudioEncoder.write(interleaved: noise, sampleRateHertz: 16_000, format: .wavPCM16, to: directory.file("bank/musan/noise/a/good-16k.wav"))
    try AudioEncoder.write(interleaved: noise, sampleRateHertz: 8_000, format: .flac16, to: directory.file("bank/musan/noise/a/good-8k.flac"))
    try AudioEncoder.write(interleaved: noise, sampleRateHertz: 16_000, format: .wavPCM16, to: directory.file("bank/musan/music/b/tune.wav"))
    try AudioEncoder.write(interleaved: noise, sampleRateHertz: 16_000, format: .wavPCM16, to: directory.file("bank/musan/speech/c/talk.wav"))
    try AudioEncoder.write(interleaved: [Float](repeating: 0, count: 4000), sampleRateHertz: 16_000, format: .wavPCM16, to: directory.file("bank/musan/noise/a/silent.wav"))
    var nan = noise
    nan[7] = .infinity
    try AudioEncoder.write(interleaved: nan, sampleRateHertz: 16_000, format: .wavFloat, to: directory.file("bank/musan/noise/a/infinite.wav"))
    try AudioEncoder.write(interleaved: [], sampleRateHertz: 16_000, format: .wavPCM16, to: directory.file("bank/musan/noise/a/empty.wav"))
    try Data("garbage".utf8).write(to: URL(fileURLWithPath: directory.file("bank/musan/noise/a/broken.wav")))
    try "noise-0000 white\n".write(toFile: directory.file("bank/musan/noise/a/ANNOTATIONS"), atomically: true, encoding: .utf8)

    let bank = try NoiseBank.index(root: root, subsets: ["noise", "music"])
    XCTAssertEqual(bank.files.map(\.path), ["musan/music/b/tune.wav", "musan/noise/a/good-16k.wav", "musan/noise/a/good-8k.flac"])
    XCTAssertEqual(bank.files.map(\.subset), ["music", "noise", "noise"])
    let reasons = Dictionary(uniqueKeysWithValues: bank.rejections.map { (($0.file as NSString).lastPathComponent, $0.reason) })
    XCTAssertEqual(reasons, ["silent.wav": .silentAudio, "infinite.wav": .nonFiniteAudio, "empty.wav": .emptyAudio, "broken.wav": .unreadableAudio])

    // Segments are resampled to the target rate and loop when the file is short.
    let index = bank.files.firstIndex { $0.path.hasSuffix("8k.flac") }!
    let segment = try bank.segment(index, offsetSeconds: 0.5, count: 40_000, sampleRateHertz: 16_000)
    XCTAssertEqual(segment.count, 40_000)
    XCTAssertGreaterThan(NoiseMixer.meanPower(Array(segment[30_000...])), 0.001)
    XCTAssertThrowsError(try NoiseBank.index(root: root + "/nope", subsets: ["noise"]))
  }
}

final class FFTConvolverTests: XCTestCase {
  func testMatchesNaiveConvolution() {
    let signal = Signals.noise(count: 1000, amplitude: 1, seed: 1)
    let response = Signals.noise(count: 77, amplitude: 1, seed: 2)
    let convolver = FFTConvolver()
    for _ in 0..<2 {  // reuses its plans on the second call
      let fast = convolver.convolve(signal, with: response)
      XCTAssertEqual(fast.count, signal.count)
      for n in stride(from: 0, to: signal.count, by: 37) {
        var expected = 0.0
        for k in 0..<response.count where n - k >= 0 { expected += Double(signal[n - k]) * Double(response[k]) }
        XCTAssertEqual(Double(fast[n]), expected, accuracy: 1e-4)
      }
    }
  }
}

final class AugmenterTests: XCTestCase {
  func makeBank(_ directory: TemporaryDirectory) throws -> String {
    for i in 0..<3 {
      try AudioEncoder.write(
        interleaved: Signals.noise(count: 16_000 * (i + 1), amplitude: 0.2, seed: UInt64(i)), sampleRateHertz: 16_000,
        format: .wavPCM16, to: directory.file("bank/noise/n\(i).wav"))
      try AudioEncoder.write(
        interleaved: Signals.voiced(seconds: 2, sampleRateHertz: 16_000, seed: UInt64(10 + i)), sampleRateHertz: 16_000,
        format: .wavPCM16, to: directory.file("bank/speech/s\(i).wav"))
    }
    try AudioEncoder.write(
      interleaved: [1, 0.5, 0.25, 0.125], sampleRateHertz: 16_000, format: .wavFloat, to: directory.file("rirs/r.wav"))
    return directory.path + "/bank"
  }

  func testPlansAreDeterministicPerUtteranceAndCopyAndFollowTheProbability() throws {
    let directory = TemporaryDirectory("plans")
    var config = AugmentConfig()
    config.noise.bank = try makeBank(directory)
    config.noise.babbleProbability = 0.2
    config.volume.probability = 0.3
    config.reverb.impulseResponses = directory.path + "/rirs"
    config.reverb.probability = 0.25
    let a = try Augmenter(config: config, sampleRateHertz: 16_000, seed: 7)
    let b = try Augmenter(config: config, sampleRateHertz: 16_000, seed: 7)
    var noisy = 0
    let trials = 2000
    for i in 0..<trials {
      let planA = a.plan(source: "utt\(i)", copy: 1, factor: 1.0, samples: 16_000)
      XCTAssertEqual(planA, b.plan(source: "utt\(i)", copy: 1, factor: 1.0, samples: 16_000))
      if let snr = planA.snrDecibels {
        noisy += 1
        XCTAssertTrue((0...20).contains(snr))
      }
      if let babble = planA.babble { XCTAssertTrue((3...6).contains(babble.count)) }
      if let gain = planA.gainDecibels { XCTAssertTrue((-6...6).contains(gain)) }
    }
    XCTAssertEqual(Double(noisy) / Double(trials), 0.4, accuracy: 0.04)
    XCTAssertNotEqual(a.plan(source: "x", copy: 0, factor: 0.9, samples: 100), a.plan(source: "x", copy: 2, factor: 0.9, samples: 100))
    let otherSeed = try Augmenter(config: config, sampleRateHertz: 16_000, seed: 8)
    XCTAssertNotEqual((0..<20).map { a.plan(source: "u\($0)", copy: 0, factor: 1, samples: 100) }, (0..<20).map { otherSeed.plan(source: "u\($0)", copy: 0, factor: 1, samples: 100) })
  }

  func testApplyingAPlanGivesTheRequestedSNRAndLength() throws {
    let directory = TemporaryDirectory("apply")
    var config = AugmentConfig()
    config.noise.bank = try makeBank(directory)
    config.noise.probability = 1
    let augmenter = try Augmenter(config: config, sampleRateHertz: 16_000, seed: 1)
    let speech = Waveform(samples: Signals.voiced(seconds: 1.5, sampleRateHertz: 16_000, seed: 4), sampleRateHertz: 16_000)
    let plan = augmenter.plan(source: "u", copy: 0, factor: 1.0, samples: speech.samples.count)
    let (mixed, applied) = try augmenter.apply(plan, to: speech, scratch: Augmenter.Scratch(), file: "u.flac")
    XCTAssertEqual(mixed.samples.count, speech.samples.count)
    let noise = zip(mixed.samples, speech.samples).map { $0 - $1 }
    let scale = applied.clippingScale ?? 1
    XCTAssertEqual(10 * log10(NoiseMixer.meanPower(speech.samples) * scale * scale / NoiseMixer.meanPower(noise.map { $0 })), plan.snrDecibels!, accuracy: 0.1)

    let fast = augmenter.plan(source: "u", copy: 2, factor: 1.1, samples: augmenter.outputCount(samples: speech.samples.count, factor: 1.1))
    var fastConfig = AugmentConfig()
    fastConfig.noise.probability = 0
    let speedOnly = try Augmenter(config: fastConfig, sampleRateHertz: 16_000, seed: 1)
    let (sped, _) = try speedOnly.apply(AugmentationPlan(source: "u", copy: 2, speed: 1.1), to: speech, scratch: .init(), file: "u")
    XCTAssertEqual(sped.samples.count, speech.samples.count * 10 / 11)
    XCTAssertEqual(fast.speed, 1.1)
  }

  func testClippingRuleScalesTheWholeSignal() throws {
    var config = AugmentConfig()
    config.noise.probability = 0
    config.volume.probability = 1
    config.volume.gainDecibels = DecibelRange(20, 20)
    let augmenter = try Augmenter(config: config, sampleRateHertz: 16_000, seed: 1)
    let loud = Waveform(samples: Signals.sine(frequencyHertz: 440, seconds: 0.1, sampleRateHertz: 16_000, amplitude: 0.5), sampleRateHertz: 16_000)
    let plan = augmenter.plan(source: "u", copy: 1, factor: 1.0, samples: loud.samples.count)
    let (out, applied) = try augmenter.apply(plan, to: loud, scratch: .init(), file: "u")
    XCTAssertLessThanOrEqual(out.samples.map { abs($0) }.max()!, 1)
    XCTAssertNotNil(applied.clippingScale)
    XCTAssertEqual(out.samples[10] / loud.samples[10], out.samples[20] / loud.samples[20], accuracy: 1e-4)
  }

  func testIdsAndLabels() {
    XCTAssertEqual(AugmentConfig.copyId("103-1240-0000", factor: 0.9), "sp0.9-103-1240-0000")
    XCTAssertEqual(AugmentConfig.copyId("103-1240-0000", factor: 1.0), "103-1240-0000")
    XCTAssertEqual(AugmentConfig.copyId("a", factor: 1.05), "sp1.05-a")
    XCTAssertEqual(DecibelRange(parsing: "0:20"), DecibelRange(0, 20))
    XCTAssertNil(DecibelRange(parsing: "20:0"))
  }
}

final class PeakMagnitudeTests: XCTestCase {
  /// The vectorized peak scan against a plain loop, for lengths around the 8-sample blocks
  /// and with the peak negative, positive, in the tail and at the start.
  func testPeakMagnitudeMatchesAPlainScan() {
    var generator = SystemRandomNumberGenerator()
    for count in [0, 1, 7, 8, 9, 31, 1000, 1003] {
      for placement in 0..<4 {
        var x = (0..<count).map { _ in Float.random(in: -0.5...0.5, using: &generator) }
        if count > 0 {
          let index = [0, count - 1, count / 2, max(0, count - 3)][placement]
          x[index] = placement % 2 == 0 ? -0.9 : 0.8
        }
        let expected = x.reduce(Float(0)) { max($0, abs($1)) }
        XCTAssertEqual(NoiseMixer.peakMagnitude(x), expected, "count \(count), placement \(placement)")
      }
    }
  }
}
