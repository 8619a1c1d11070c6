/// A mono block of audio samples at a known rate.
///
/// Samples are linear PCM scaled to [-1, 1] (libsndfile's float convention); values
/// outside that range are allowed (e.g. after mixing) but never NaN or infinite once a
/// waveform has passed `validateFinite()`.
public struct Waveform: Sendable, Equatable {
  /// The samples, one per time step.
  public var samples: [Float]
  /// Samples per second.
  public var sampleRateHertz: Int

  public init(samples: [Float], sampleRateHertz: Int) {
    precondition(sampleRateHertz > 0, "sample rate must be positive")
    self.samples = samples
    self.sampleRateHertz = sampleRateHertz
  }

  /// Duration in seconds.
  public var durationSeconds: Double { Double(samples.count) / Double(sampleRateHertz) }

  /// True when every sample is finite.
  public var isFinite: Bool {
    samples.withUnsafeBufferPointer { buffer in
      var ok = true
      for value in buffer where !value.isFinite { ok = false; break }
      return ok
    }
  }

  /// Mean power (mean of squares), in linear units; 0 for an empty waveform.
  public var meanPower: Double {
    guard !samples.isEmpty else { return 0 }
    var sum = 0.0
    for value in samples { sum += Double(value) * Double(value) }
    return sum / Double(samples.count)
  }
}

/// A matrix of features, `frames × bins`, stored row-major (one frame per row).
public struct FeatureMatrix: Sendable, Equatable {
  public var frames: Int
  public var bins: Int
  /// `frames * bins` values; value `(t, k)` is at `t * bins + k`.
  public var values: [Float]

  public init(frames: Int, bins: Int, values: [Float]) {
    precondition(values.count == frames * bins, "values.count must equal frames × bins")
    self.frames = frames
    self.bins = bins
    self.values = values
  }

  public init(frames: Int, bins: Int) {
    self.init(frames: frames, bins: bins, values: [Float](repeating: 0, count: frames * bins))
  }

  /// The value at frame `t`, bin `k`.
  public subscript(t: Int, k: Int) -> Float {
    get { values[t * bins + k] }
    set { values[t * bins + k] = newValue }
  }
}
