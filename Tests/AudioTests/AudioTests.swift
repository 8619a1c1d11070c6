import Audio
import DS2Core
import Foundation
import TestSupport
import XCTest


final class AudioDecodingTests: XCTestCase {
  let directory = TemporaryDirectory("audio")

  func testEveryWritableFormatDecodesToTheSameSignal() throws {
    let tone = Signals.sine(frequencyHertz: 440, seconds: 0.25, sampleRateHertz: 16_000, amplitude: 0.4)
    let formats: [(AudioFileFormat, String, Float)] = [
      (.wavPCM16, "wav", 1e-4), (.wavFloat, "wav", 0), (.flac16, "flac", 1e-4), (.sphereULaw, "sph", 0.02),
    ]
    for (format, ext, tolerance) in formats {
      let path = directory.file("tone-\(format.rawValue).\(ext)")
      try AudioEncoder.write(interleaved: tone, sampleRateHertz: 16_000, format: format, to: path)
      let info = try AudioDecoder.probe(path: path)
      XCTAssertEqual(info.frames, tone.count, "\(format)")
      XCTAssertEqual(info.sampleRateHertz, 16_000)
      let decoded = try AudioDecoder.decode(path: path)
      XCTAssertEqual(decoded.samples.count, tone.count, "\(format)")
      let worst = zip(decoded.samples, tone).map { abs($0 - $1) }.max()!
      XCTAssertLessThanOrEqual(worst, tolerance, "\(format)")
    }
    XCTAssertTrue(try AudioDecoder.probe(path: directory.file("tone-sphereULaw.sph")).formatName.contains("NIST"))
  }

  /// Lossy formats (libsndfile encodes them here with libvorbis, libopus and LAME):
  /// the tone's frequency survives, and the decoder gives what the header declares.
  func testLossyFormatsDecode() throws {
    let tone = Signals.sine(frequencyHertz: 1000, seconds: 0.5, sampleRateHertz: 16_000, amplitude: 0.4)
    for (format, ext) in [(AudioFileFormat.oggVorbis, "ogg"), (.oggOpus, "opus"), (.mp3, "mp3")] {
      let path = directory.file("tone.\(ext)")
      try AudioEncoder.write(interleaved: tone, sampleRateHertz: 16_000, format: format, to: path)
      let decoded = try AudioDecoder.decode(path: path)
      XCTAssertEqual(decoded.samples.count, try AudioDecoder.probe(path: path).frames, "\(format)")
      XCTAssertEqual(Double(decoded.samples.count), Double(tone.count), accuracy: 2000, "\(format)")
      let middle = Array(decoded.samples[2000..<4000])
      XCTAssertEqual(dominantFrequency(middle, rate: decoded.sampleRateHertz, from: 900, to: 1100, step: 10), 1000, accuracy: 10, "\(format)")
    }
  }

  func testStereoFollowsChannelRules() throws {
    let left = Signals.sine(frequencyHertz: 300, seconds: 0.2, sampleRateHertz: 8_000, amplitude: 0.5)
    let right = Signals.sine(frequencyHertz: 1200, seconds: 0.2, sampleRateHertz: 8_000, amplitude: 0.3)
    var interleaved: [Float] = []
    for i in left.indices { interleaved += [left[i], right[i]] }
    let path = directory.file("stereo.wav")
    try AudioEncoder.write(interleaved: interleaved, channels: 2, sampleRateHertz: 8_000, format: .wavFloat, to: path)

    XCTAssertThrowsError(try AudioDecoder.decode(path: path, rule: .mono)) { error in
      let item = error as? ItemError
      XCTAssertEqual(item?.reason, .badChannels)
      XCTAssertEqual(item?.file, path)
    }
    XCTAssertEqual(try AudioDecoder.decode(path: path, rule: .first).samples, left)
    XCTAssertEqual(try AudioDecoder.decode(path: path, channel: 1).samples, right)
    let average = try AudioDecoder.decode(path: path, rule: .average).samples
    for i in left.indices { XCTAssertEqual(average[i], (left[i] + right[i]) / 2, accuracy: 1e-6) }
    XCTAssertThrowsError(try AudioDecoder.decode(path: path, channel: 2)) { error in
      XCTAssertEqual((error as? ItemError)?.reason, .badChannels)
    }
  }

  func testSegmentsCutTheRightSamples() throws {
    let ramp = (0..<8000).map { Float($0) / 8000 }
    let path = directory.file("ramp.wav")
    try AudioEncoder.write(interleaved: ramp, sampleRateHertz: 8_000, format: .wavFloat, to: path)
    let segment = try AudioDecoder.decode(path: path, startSeconds: 0.25, durationSeconds: 0.5)
    XCTAssertEqual(segment.samples, Array(ramp[2000..<6000]))
    XCTAssertThrowsError(try AudioDecoder.decode(path: path, startSeconds: 0.9, durationSeconds: 0.5))
  }

  func testBadFilesAreNamedWithTheReason() throws {
    let garbage = directory.file("garbage.flac")
    try Data("this is not audio".utf8).write(to: URL(fileURLWithPath: garbage))
    let empty = directory.file("empty.wav")
    _ = FileManager.default.createFile(atPath: empty, contents: nil)
    let missing = directory.path + "/missing.flac"
    for path in [garbage, empty, missing] {
      XCTAssertThrowsError(try AudioDecoder.decode(path: path)) { error in
        let item = error as? ItemError
        XCTAssertEqual(item?.reason, .unreadableAudio, "\(path)")
        XCTAssertEqual(item?.file, path)
        XCTAssertTrue(item?.message.contains(path == missing ? "no such file" : "sf_open") ?? false, "\(error)")
      }
    }
  }

  func testTruncatedFileIsRejectedNotShortened() throws {
    let tone = Signals.sine(frequencyHertz: 440, seconds: 1, sampleRateHertz: 16_000)
    let path = directory.file("truncated.wav")
    try AudioEncoder.write(interleaved: tone, sampleRateHertz: 16_000, format: .wavPCM16, to: path)
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
    // libsndfile may report the header's length or the file's; either way the decoder
    // must not return a waveform that silently differs from what the header declares.
    do {
      let decoded = try AudioDecoder.decode(path: path)
      XCTAssertEqual(decoded.samples.count, try AudioDecoder.probe(path: path).frames)
      XCTAssertLessThan(decoded.samples.count, tone.count)
    } catch let error as ItemError {
      XCTAssertEqual(error.reason, .unreadableAudio)
      XCTAssertEqual(error.file, path)
    }
  }

  func testShortenSphereIsDetectedWithAdvice() throws {
    let path = directory.file("fe_03_00001.sph")
    var header = "NIST_1A\n   1024\nchannel_count -i 2\nsample_rate -i 8000\nsample_coding -s26 ulaw,embedded-shorten-v2.00\nend_head\n"
    header += String(repeating: " ", count: 1024 - header.utf8.count)
    try Data(header.utf8 + [0x61, 0x6a, 0x6b, 0x67, 0x02]).write(to: URL(fileURLWithPath: path))
    XCTAssertThrowsError(try AudioDecoder.probe(path: path)) { error in
      let item = error as? ItemError
      XCTAssertEqual(item?.reason, .unsupportedEncoding)
      XCTAssertTrue(item?.message.contains("sph2pipe") ?? false)
    }
  }
}

final class ResamplerTests: XCTestCase {
  func testResampledToneKeepsFrequencyAndLength() throws {
    for (source, target) in [(22_050, 16_000), (8_000, 16_000), (44_100, 16_000), (16_000, 8_000)] {
      let seconds = 0.5
      let frequency = 1000.0
      let tone = Waveform(samples: Signals.sine(frequencyHertz: frequency, seconds: seconds, sampleRateHertz: source), sampleRateHertz: source)
      let out = try Resampler.resample(tone, to: target, quality: .sincMedium)
      XCTAssertEqual(out.sampleRateHertz, target)
      XCTAssertEqual(out.samples.count, Resampler.outputCount(inputCount: tone.samples.count, sourceHertz: source, targetHertz: target))
      XCTAssertEqual(Double(out.samples.count), seconds * Double(target), accuracy: 1)
      // Middle section, away from filter edges.
      let middle = Array(out.samples[out.samples.count / 4..<out.samples.count * 3 / 4])
      XCTAssertEqual(dominantFrequency(middle, rate: target, from: 900, to: 1100, step: 2), frequency, accuracy: 2, "\(source)→\(target)")
      // Amplitude preserved (sinc passband).
      let peak = middle.map { abs($0) }.max()!
      XCTAssertEqual(peak, 0.5, accuracy: 0.01)
    }
  }

  func testSameRateIsIdentity() throws {
    let w = Waveform(samples: [0.1, 0.2, 0.3], sampleRateHertz: 16_000)
    XCTAssertEqual(try Resampler.resample(w, to: 16_000), w)
  }
}
