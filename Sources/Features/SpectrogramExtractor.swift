internal import CFFTW
import DS2Core
import Foundation

/// FFTW's planner is not thread-safe; plan creation and destruction take this lock.
let plannerLock = NSLock()

/// Computes DS2 log spectrograms with one FFTW r2c plan made at init and reused.
///
/// Owns its plan and its aligned buffers and frees them in `deinit`. Not Sendable:
/// make one per thread (plans are cheap to make with `FFTW_ESTIMATE`, which is also what
/// keeps the output bit-identical from run to run — `FFTW_MEASURE` may pick different
/// algorithms on each run).
public final class SpectrogramExtractor {
  public let config: SpectrogramConfig
  public let sampleRateHertz: Int
  public let windowSamples: Int
  public let hopSamples: Int
  public let fftLength: Int
  public let bins: Int

  private let window: [Float]
  private let scale: [Float]
  private let input: UnsafeMutablePointer<Float>
  private let output: UnsafeMutablePointer<fftwf_complex>
  private let plan: fftwf_plan
  private let logEpsilon: Float

  /// - Throws: `ConfigurationError` naming the setting that makes no spectrogram.
  public init(config: SpectrogramConfig, sampleRateHertz: Int) throws {
    try config.validate(sampleRateHertz: sampleRateHertz)
    self.config = config
    self.sampleRateHertz = sampleRateHertz
    windowSamples = config.windowSamples(sampleRateHertz: sampleRateHertz)
    hopSamples = config.hopSamples(sampleRateHertz: sampleRateHertz)
    fftLength = config.fftLength(sampleRateHertz: sampleRateHertz)
    bins = fftLength / 2 + 1
    let window = Self.makeWindow(config.window, length: windowSamples)
    self.window = window
    let energy = window.reduce(0.0) { $0 + Double($1) * Double($1) }
    let base = 1 / (Double(sampleRateHertz) * energy)
    var scale = [Float](repeating: Float(2 * base), count: bins)
    scale[0] = Float(base)
    if fftLength % 2 == 0 { scale[bins - 1] = Float(base) }
    self.scale = scale
    logEpsilon = Float(config.epsilon)
    input = fftwf_alloc_real(fftLength)!
    output = fftwf_alloc_complex(bins)!
    input.initialize(repeating: 0, count: fftLength)
    plannerLock.lock()
    plan = fftwf_plan_dft_r2c_1d(Int32(fftLength), input, output, UInt32(FFTW_ESTIMATE))!
    plannerLock.unlock()
  }

  deinit {
    plannerLock.lock()
    fftwf_destroy_plan(plan)
    plannerLock.unlock()
    fftwf_free(input)
    fftwf_free(output)
  }

  /// Frames for `sampleCount` samples: `0` below one window, else `1 + (n − W) / H`.
  public func frameCount(sampleCount: Int) -> Int {
    config.frameCount(sampleCount: sampleCount, sampleRateHertz: sampleRateHertz)
  }

  /// The log spectrogram of `samples` as a `frames × bins` matrix.
  public func compute(_ samples: [Float]) -> FeatureMatrix {
    let frames = frameCount(sampleCount: samples.count)
    // Every value is written below, so the array is not zero-filled first.
    let values = [Float](unsafeUninitializedCapacity: frames * bins) { destination, initialized in
      samples.withUnsafeBufferPointer { source in compute(source, into: destination) }
      initialized = frames * bins
    }
    return FeatureMatrix(frames: frames, bins: bins, values: values)
  }

  /// Writes the log spectrogram of `samples` into `destination` (`frames × bins`, row-major).
  /// - Precondition: `destination.count == frameCount(samples.count) * bins`.
  public func compute(_ samples: UnsafeBufferPointer<Float>, into destination: UnsafeMutableBufferPointer<Float>) {
    let frames = frameCount(sampleCount: samples.count)
    precondition(destination.count == frames * bins, "destination must hold frames × bins values")
    guard frames > 0, let base = samples.baseAddress, let out = destination.baseAddress else { return }
    let complexOut = UnsafeMutableRawPointer(output).assumingMemoryBound(to: Float.self)
    window.withUnsafeBufferPointer { window in
      scale.withUnsafeBufferPointer { scale in
        for t in 0..<frames {
          let start = base + t * hopSamples
          for i in 0..<windowSamples { input[i] = start[i] * window[i] }
          fftwf_execute(plan)
          let row = out + t * bins
          for k in 0..<bins {
            let re = complexOut[2 * k]
            let im = complexOut[2 * k + 1]
            row[k] = (re * re + im * im) * scale[k] + logEpsilon
          }
          FastMath.logInPlace(row, count: bins)
        }
      }
    }
  }

  static func makeWindow(_ shape: WindowShape, length: Int) -> [Float] {
    (0..<length).map { n -> Float in
      let x = Double(n)
      switch shape {
      case .hann: return Float(0.5 - 0.5 * cos(2 * Double.pi * x / Double(length)))
      case .hannSymmetric: return Float(0.5 - 0.5 * cos(2 * Double.pi * x / Double(length - 1)))
      case .hamming: return Float(0.54 - 0.46 * cos(2 * Double.pi * x / Double(length)))
      }
    }
  }
}

/// Scales a waveform to a target RMS level.
public enum LoudnessNormalizer {
  /// Returns `waveform` scaled so that its RMS level is `targetDecibels` dBFS
  /// (`10·log10(mean(x²))`), as PaddlePaddle DS2's `normalize(target_db)` does.
  /// - Throws: `ItemError(.silentAudio)` when the waveform has zero power.
  public static func normalize(_ waveform: Waveform, targetDecibels: Double, file: String) throws -> Waveform {
    let power = waveform.meanPower
    guard power > 0 else {
      throw ItemError(.silentAudio, file: file, message: "digital silence cannot be loudness-normalized")
    }
    let gainDecibels = targetDecibels - 10 * log10(power)
    let gain = Float(pow(10, gainDecibels / 20))
    var scaled = waveform
    scaled.samples.withUnsafeMutableBufferPointer { samples in
      for i in samples.indices { samples[i] *= gain }
    }
    return scaled
  }
}
