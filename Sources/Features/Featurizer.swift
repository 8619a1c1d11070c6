import Audio
import DS2Core

/// Audio file → the log spectrogram a dataset stores: decode (libsndfile) → channel rule →
/// resample to the dataset rate (libsamplerate, at the stored quality) → [augmentation,
/// by the caller] → loudness normalization → spectrogram (FFTW).
///
/// The one implementation of that chain: `prepare` and `augment` store its output and
/// `transcribe` feeds it to the model, all from the same `FeatureParameters` (stored in
/// the dataset's manifest and in every checkpoint), so a file transcribed gets exactly the
/// features `prepare` would have stored for it.
///
/// Owns an FFTW plan: not Sendable, one per thread (`PerWorker`).
public final class Featurizer {
  public let parameters: FeatureParameters
  private let extractor: SpectrogramExtractor

  /// - Throws: `ConfigurationError` when the parameters make no spectrogram or disagree
  ///   with themselves (stored bins or sample counts that the settings do not give).
  public init(parameters: FeatureParameters) throws {
    let config = SpectrogramConfig(parameters: parameters)
    let extractor = try SpectrogramExtractor(config: config, sampleRateHertz: parameters.sampleRateHertz)
    guard extractor.bins == parameters.bins, extractor.windowSamples == parameters.windowSamples,
      extractor.hopSamples == parameters.hopSamples, extractor.fftLength == parameters.fftSize
    else {
      throw ConfigurationError(
        "feature parameters disagree: the settings give \(extractor.bins) bins, a \(extractor.windowSamples)-sample window, "
          + "a \(extractor.hopSamples)-sample hop and a \(extractor.fftLength)-point FFT; the stored values are "
          + "\(parameters.bins), \(parameters.windowSamples), \(parameters.hopSamples) and \(parameters.fftSize)")
    }
    self.parameters = parameters
    self.extractor = extractor
  }

  /// One-sided frequency bins per frame.
  public var bins: Int { extractor.bins }

  /// The audio of `path` (or its `channel`, or the segment from `startSeconds` lasting
  /// `durationSeconds`) as mono samples at the dataset rate: decoded, the channel rule
  /// applied, resampled.
  /// - Throws: `ItemError` naming the file (`unreadable_audio`, `bad_channels`,
  ///   `empty_audio`, `non_finite_audio`, `too_long`).
  /// - Parameter contents: the file's bytes when it is not on disk (a member of an archive).
  public func waveform(
    path: String, contents: [UInt8]? = nil, channel: Int? = nil, startSeconds: Double = 0, durationSeconds: Double? = nil
  ) throws -> Waveform {
    let decoded =
      try contents.map {
        try AudioDecoder.decode(
          bytes: $0, path: path, channel: channel, rule: parameters.channelRule, startSeconds: startSeconds,
          durationSeconds: durationSeconds)
      }
      ?? AudioDecoder.decode(
        path: path, channel: channel, rule: parameters.channelRule, startSeconds: startSeconds,
        durationSeconds: durationSeconds)
    return try Resampler.resample(
      decoded, to: parameters.sampleRateHertz, quality: parameters.resampleQuality, file: path)
  }

  /// The raw (unnormalized) log spectrogram of `waveform`, after loudness normalization
  /// when the parameters ask for it; `file` names the audio in errors.
  /// - Throws: `ItemError(.silentAudio)` when loudness normalization meets digital silence.
  /// - Precondition: `waveform` is at the dataset rate.
  public func features(of waveform: Waveform, file: String) throws -> FeatureMatrix {
    precondition(waveform.sampleRateHertz == parameters.sampleRateHertz, "waveform is not at the dataset rate")
    var waveform = waveform
    if let target = parameters.loudnessTargetDecibels {
      waveform = try LoudnessNormalizer.normalize(waveform, targetDecibels: target, file: file)
    }
    return extractor.compute(waveform.samples)
  }

  /// The raw log spectrogram of the audio file at `path`: `features(of: waveform(path:))`.
  /// - Throws: as `waveform` and `features(of:file:)`.
  public func features(path: String) throws -> FeatureMatrix {
    try features(of: waveform(path: path), file: path)
  }
}

extension SpectrogramConfig {
  /// The settings stored in `parameters`.
  public init(parameters: FeatureParameters) {
    self.init()
    windowSeconds = parameters.windowSeconds
    hopSeconds = parameters.hopSeconds
    fftSize = parameters.fftSize
    window = parameters.window
    epsilon = parameters.epsilon
    loudnessTargetDecibels = parameters.loudnessTargetDecibels
  }

  /// The parameters a dataset made with these settings stores.
  /// - Precondition: the settings are valid at `sampleRateHertz` (`validate`).
  public func parameters(
    sampleRateHertz: Int, channelRule: ChannelRule, resampleQuality: ResampleQuality, dtype: FeatureDType
  ) -> FeatureParameters {
    FeatureParameters(
      sampleRateHertz: sampleRateHertz, windowSeconds: windowSeconds, hopSeconds: hopSeconds,
      windowSamples: windowSamples(sampleRateHertz: sampleRateHertz), hopSamples: hopSamples(sampleRateHertz: sampleRateHertz),
      fftSize: fftLength(sampleRateHertz: sampleRateHertz), bins: bins(sampleRateHertz: sampleRateHertz), window: window,
      epsilon: epsilon, loudnessTargetDecibels: loudnessTargetDecibels, dtype: dtype, channelRule: channelRule,
      resampleQuality: resampleQuality)
  }
}
