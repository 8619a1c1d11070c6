// ds2-bench: micro-benchmarks of the augmentation kernels, in × real time per core, and of
// reading a dataset (what the per-record checksum costs).
//   swift run -c release ds2-bench [seconds-of-audio]
//   swift run -c release ds2-bench read DATASET
import Augmentation
import Audio
import DS2Core
import Foundation
import ProcessSettings

// The same allocator settings as the ds2-data command (DS2Data.swift): utterance buffers
// stay on the heap instead of being mapped and zero-filled for every call.
HeapTuning.keepBuffersOnHeap()

if CommandLine.arguments.count == 3 && CommandLine.arguments[1] == "read" {
  do {
    try benchmarkReading(datasetPath: CommandLine.arguments[2])
    exit(0)
  } catch {
    FileHandle.standardError.write(Data("ds2-bench: \(error)\n".utf8))
    exit(1)
  }
}

let seconds = CommandLine.arguments.count > 1 ? Double(CommandLine.arguments[1]) ?? 600 : 600
let rate = 16_000
var generator = SeededGenerator(seed: 1)
let signal = (0..<Int(seconds * Double(rate))).map { _ in Float(generator.nextUnitDouble() - 0.5) * 0.2 }
/// The same audio as utterance-sized pieces (10 s), as the pipeline processes it.
let utterances = stride(from: 0, to: signal.count, by: 10 * rate).map { Array(signal[$0..<min($0 + 10 * rate, signal.count)]) }

func measure(_ name: String, repeats: Int = 3, _ body: () -> Void) {
  var best = Double.infinity
  for _ in 0..<repeats {
    let start = DispatchTime.now()
    body()
    best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9)
  }
  print(String(format: "%-44@ %10.0f× real time (1 thread, %.1f s audio in %.3f s)", name, seconds / best, seconds, best))
}

for factor in [0.9, 1.1] {
  let perturber = SpeedPerturber(factor: factor)
  var sink: Float = 0
  measure("speed \(factor) (polyphase, \(perturber.tapsPerPhase) taps)") {
    for utterance in utterances { sink += perturber.apply(utterance)[0] }
  }
  let waveform = Waveform(samples: signal, sampleRateHertz: Int((factor * 10).rounded()) * 1000)
  for quality in [ResampleQuality.sincMedium, .sincFastest] {
    measure("speed \(factor) via libsamplerate \(quality.rawValue)", repeats: 1) {
      sink += (try? Resampler.resample(waveform, to: 10_000, quality: quality).samples[0]) ?? 0
    }
  }
  if sink.isNaN { print("") }
}

// Noise superposition: SNR measurement and mixing of in-memory noise segments (cutting the
// segment is part of the measured work).
let noise = (0..<signal.count).map { _ in Float(generator.nextUnitDouble() - 0.5) * 0.1 }
var mixSink: Float = 0
measure("noise superposition at an SNR (in memory)") {
  for (i, utterance) in utterances.enumerated() {
    let segment = Array(noise[(i * 10 * rate)..<(i * 10 * rate + utterance.count)])
    mixSink += (try? NoiseMixer.mix(utterance, noise: segment, snrDecibels: 10)[1]) ?? 0
  }
}
if mixSink.isNaN { print("") }
