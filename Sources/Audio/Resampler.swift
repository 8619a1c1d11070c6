internal import CSampleRate
import DS2Core

extension ResampleQuality {
  /// libsamplerate's converter constant.
  var converter: Int32 {
    switch self {
    case .sincBest: return Int32(SRC_SINC_BEST_QUALITY)
    case .sincMedium: return Int32(SRC_SINC_MEDIUM_QUALITY)
    case .sincFastest: return Int32(SRC_SINC_FASTEST)
    case .zeroOrderHold: return Int32(SRC_ZERO_ORDER_HOLD)
    case .linear: return Int32(SRC_LINEAR)
    }
  }
}

/// Sample-rate conversion with libsamplerate.
public enum Resampler {
  /// The exact output length for `inputCount` samples converted from `sourceHertz` to
  /// `targetHertz`: `floor(inputCount × targetHertz / sourceHertz)`.
  ///
  /// The pipeline sorts utterances by frame count before decoding them, so the length
  /// must be known from the header alone; `resample` pads or trims libsamplerate's output
  /// (which may differ by a sample or two at the edges) to this length.
  public static func outputCount(inputCount: Int, sourceHertz: Int, targetHertz: Int) -> Int {
    Int((Int64(inputCount) * Int64(targetHertz)) / Int64(sourceHertz))
  }

  /// Converts `waveform` to `targetHertz`; returns it unchanged when the rates match.
  /// The corresponding C function is `src_simple`.
  /// - Throws: `ItemError` (`unreadable_audio`) carrying libsamplerate's message; `file`
  ///   names what is being resampled.
  public static func resample(
    _ waveform: Waveform, to targetHertz: Int, quality: ResampleQuality = .sincMedium,
    file: String = "<memory>"
  ) throws -> Waveform {
    precondition(targetHertz > 0, "target rate must be positive")
    if waveform.sampleRateHertz == targetHertz { return waveform }
    let count = outputCount(
      inputCount: waveform.samples.count, sourceHertz: waveform.sampleRateHertz,
      targetHertz: targetHertz)
    let ratio = Double(targetHertz) / Double(waveform.sampleRateHertz)
    let capacity = count + 64
    var produced = 0
    var output = try [Float](unsafeUninitializedCapacity: capacity) { buffer, initialized in
      try waveform.samples.withUnsafeBufferPointer { input in
        var data = SRC_DATA()
        data.data_in = input.baseAddress
        data.data_out = buffer.baseAddress
        data.input_frames = Int(input.count)
        data.output_frames = Int(capacity)
        data.src_ratio = ratio
        let status = src_simple(&data, quality.converter, 1)
        if status != 0 {
          throw ItemError(
            .unreadableAudio, file: file,
            message: "src_simple: \(String(cString: src_strerror(status)))")
        }
        produced = Int(data.output_frames_gen)
      }
      for i in produced..<capacity { buffer[i] = 0 }
      initialized = capacity
    }
    output.removeLast(capacity - count)
    return Waveform(samples: output, sampleRateHertz: targetHertz)
  }
}
