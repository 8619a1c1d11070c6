import DS2Core

/// Analysis window shape.
public enum WindowShape: String, Sendable, Codable, CaseIterable {
  /// Periodic Hann, `w[n] = 0.5 − 0.5 cos(2πn/N)`, n = 0…N−1 (sums to a constant at 50 % overlap).
  case hann
  /// Symmetric Hann, `w[n] = 0.5 − 0.5 cos(2πn/(N−1))` (numpy's `hanning`, used by PaddlePaddle DS2).
  case hannSymmetric
  /// Periodic Hamming, `w[n] = 0.54 − 0.46 cos(2πn/N)`.
  case hamming
}

/// Settings of the Deep Speech 2 log spectrogram. Defaults are DS2's: 20 ms windows,
/// 10 ms hop, 161 one-sided bins at 16 kHz.
///
/// For a waveform of `n` samples at rate `r`, with `W = round(windowSeconds·r)` and
/// `H = round(hopSeconds·r)`, there are `frames = n < W ? 0 : 1 + (n − W) / H` frames
/// (integer division: no padding, a trailing partial window is dropped). Frame `t` covers
/// samples `t·H ..< t·H + W`, multiplied by the window, zero-padded to `fftSize`, and
/// transformed with a real FFT (FFTW r2c). Bin `k` of `fftSize/2 + 1` holds
///
///     log(scale_k · |X_t[k]|² + epsilon)        (natural log)
///
/// with the one-sided power-spectral-density scaling of PaddlePaddle DS2:
/// `scale_k = 2 / (r · Σ w²)` for 0 < k < fftSize/2 and `1 / (r · Σ w²)` for the DC and
/// Nyquist bins.
public struct SpectrogramConfig: Sendable, Codable, Equatable {
  /// Analysis window length, seconds (DS2: 0.020).
  public var windowSeconds: Double = 0.020
  /// Hop between frame starts, seconds (DS2: 0.010).
  public var hopSeconds: Double = 0.010
  /// FFT length in samples; nil means the window length (320 at 16 kHz → 161 bins).
  public var fftSize: Int? = nil
  /// Window shape.
  public var window: WindowShape = .hann
  /// Added to the scaled power before the log (PaddlePaddle DS2: 1e-14).
  public var epsilon: Double = 1e-14
  /// If set, each utterance is scaled to this RMS level in dBFS before analysis
  /// (PaddlePaddle DS2 used −20). Digital silence is then rejected (`silent_audio`).
  public var loudnessTargetDecibels: Double? = nil

  public init() {}

  enum CodingKeys: String, CodingKey, CaseIterable {
    case windowSeconds, hopSeconds, fftSize, window, epsilon, loudnessTargetDecibels
  }

  public init(from decoder: any Decoder) throws {
    try decoder.rejectUnknownKeys(CodingKeys.self)
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = SpectrogramConfig()
    windowSeconds = try c.decode(.windowSeconds, default: d.windowSeconds)
    hopSeconds = try c.decode(.hopSeconds, default: d.hopSeconds)
    fftSize = try c.decodeIfPresent(Int.self, forKey: .fftSize)
    window = try c.decode(.window, default: d.window)
    epsilon = try c.decode(.epsilon, default: d.epsilon)
    loudnessTargetDecibels = try c.decodeIfPresent(Double.self, forKey: .loudnessTargetDecibels)
  }

  /// Window length in samples at `sampleRateHertz`.
  public func windowSamples(sampleRateHertz: Int) -> Int {
    Int((windowSeconds * Double(sampleRateHertz)).rounded())
  }

  /// Hop in samples at `sampleRateHertz`.
  public func hopSamples(sampleRateHertz: Int) -> Int {
    Int((hopSeconds * Double(sampleRateHertz)).rounded())
  }

  /// FFT length at `sampleRateHertz`.
  public func fftLength(sampleRateHertz: Int) -> Int {
    fftSize ?? windowSamples(sampleRateHertz: sampleRateHertz)
  }

  /// One-sided bins: `fftLength/2 + 1`.
  public func bins(sampleRateHertz: Int) -> Int { fftLength(sampleRateHertz: sampleRateHertz) / 2 + 1 }

  /// Frames for `sampleCount` samples (see the type's discussion).
  public func frameCount(sampleCount: Int, sampleRateHertz: Int) -> Int {
    let window = windowSamples(sampleRateHertz: sampleRateHertz)
    let hop = hopSamples(sampleRateHertz: sampleRateHertz)
    return sampleCount < window ? 0 : 1 + (sampleCount - window) / hop
  }

  /// Checks the settings for `sampleRateHertz`.
  /// - Throws: a message naming the bad field.
  public func validate(sampleRateHertz: Int) throws {
    let window = windowSamples(sampleRateHertz: sampleRateHertz)
    let hop = hopSamples(sampleRateHertz: sampleRateHertz)
    guard window >= 2 else { throw SpectrogramConfigError("features.windowSeconds gives \(window) samples; need ≥ 2") }
    guard hop >= 1 else { throw SpectrogramConfigError("features.hopSeconds gives \(hop) samples; need ≥ 1") }
    if let fftSize, fftSize < window {
      throw SpectrogramConfigError("features.fftSize \(fftSize) is shorter than the window (\(window) samples)")
    }
    guard epsilon >= 1e-30, epsilon.isFinite else { throw SpectrogramConfigError("features.epsilon must be ≥ 1e-30") }
    if let target = loudnessTargetDecibels, !(target.isFinite && target <= 0) {
      throw SpectrogramConfigError("features.loudnessTargetDecibels must be ≤ 0 dBFS")
    }
  }
}

/// A bad spectrogram setting.
public struct SpectrogramConfigError: Error, CustomStringConvertible, Sendable {
  public var description: String
  init(_ description: String) { self.description = description }
}
