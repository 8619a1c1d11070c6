import DS2Core

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

  /// Window lengths accepted, seconds.
  public static let windowSecondsRange = 0.001...1.0
  /// Hops accepted, seconds.
  public static let hopSecondsRange = 0.000_1...1.0
  /// Longest FFT, samples; the window (in samples) must fit in it.
  public static let maximumFFTSize = 65_536
  /// `epsilon` values accepted.
  public static let epsilonRange = 1e-30...1.0
  /// `loudnessTargetDecibels` values accepted, dBFS.
  public static let loudnessTargetRange = -100.0...0.0

  /// Checks the settings for `sampleRateHertz`: every field finite and in range, the
  /// window 2 … `maximumFFTSize` samples, the hop at least 1 sample, `fftSize` from the
  /// window's samples to `maximumFFTSize`.
  /// - Throws: `ConfigurationError` naming the field (`windowSeconds: …`; the caller puts
  ///   the section in front).
  public func validate(sampleRateHertz: Int) throws {
    try ConfigurationCheck.value(windowSeconds, in: Self.windowSecondsRange, "windowSeconds", unit: "s")
    try ConfigurationCheck.value(hopSeconds, in: Self.hopSecondsRange, "hopSeconds", unit: "s")
    guard sampleRateHertz > 0 else { throw ConfigurationError("sampleRateHertz: \(sampleRateHertz) is not positive") }
    // Sample counts are checked as doubles first, so that no rate overflows `Int`.
    let rate = Double(sampleRateHertz)
    let windowSamples = (windowSeconds * rate).rounded()
    guard windowSamples >= 2 && windowSamples <= Double(Self.maximumFFTSize) else {
      throw ConfigurationError(
        "windowSeconds: \(ConfigurationCheck.format(windowSeconds)) s is \(ConfigurationCheck.format(windowSamples)) samples at "
          + "\(sampleRateHertz) Hz; need 2 … \(Self.maximumFFTSize) (the longest FFT)")
    }
    let hopSamples = (hopSeconds * rate).rounded()
    guard hopSamples >= 1 && hopSamples <= 1e9 else {
      throw ConfigurationError(
        "hopSeconds: \(ConfigurationCheck.format(hopSeconds)) s is \(ConfigurationCheck.format(hopSamples)) samples at "
          + "\(sampleRateHertz) Hz; need at least 1")
    }
    if let fftSize {
      try ConfigurationCheck.value(
        fftSize, in: Int(windowSamples)...Self.maximumFFTSize, "fftSize", unit: "samples",
        allowed: "the window's \(Int(windowSamples)) … \(Self.maximumFFTSize) samples")
    }
    try ConfigurationCheck.value(epsilon, in: Self.epsilonRange, "epsilon")
    if let loudnessTargetDecibels {
      try ConfigurationCheck.value(loudnessTargetDecibels, in: Self.loudnessTargetRange, "loudnessTargetDecibels", unit: "dBFS")
    }
  }
}
