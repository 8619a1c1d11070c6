import DS2Core

/// Decodes audio files to mono Float32 waveforms with libsndfile.
///
/// Any format libsndfile reads works (FLAC, WAV incl. float, NIST SPHERE incl. µ-law,
/// OGG/Vorbis, MP3 with libsndfile ≥ 1.1). Multi-channel files follow a `ChannelRule`
/// unless a channel index is given; interleaved samples are never read as mono.
public enum AudioDecoder {
  /// The longest item decoded, in seconds: longer audio is rejected as `too_long` before
  /// any sample is decoded, whatever the recipe's filters say, so memory stays bounded.
  public static let maximumSeconds = 3_600.0
  /// The most frames (samples per channel) decoded for one item, 2^27 (≈ 512 MiB of
  /// Float32; 46 min at 48 kHz): a bound for high rates, where `maximumSeconds` alone would
  /// allow more.
  public static let maximumFrames = 1 << 27

  /// Throws `too_long` when `frames` at `rate` exceed `maximumSeconds` or `maximumFrames`.
  public static func checkLength(frames: Int, sampleRateHertz rate: Int, path: String) throws {
    let seconds = Double(frames) / Double(rate)
    guard seconds <= maximumSeconds, frames <= maximumFrames else {
      throw ItemError(
        .tooLong, file: path,
        message: String(format: "%.3f s", seconds) + " (\(frames) samples per channel) is above the per-item limit of "
          + "\(Int(maximumSeconds)) s and \(maximumFrames) samples")
    }
  }

  /// Reads a file's header without decoding its samples.
  /// - Throws: `ItemError` when the file cannot be opened.
  public static func probe(path: String) throws -> AudioInfo {
    try SoundFile(path: path).info
  }

  /// Reads the header of audio still inside an archive (`packed.header`, the member's
  /// first bytes, and its size); `path` names it in errors.
  /// - Throws: `ItemError` when the header is not one libsndfile reads.
  public static func probe(packed: PackedAudio, path: String) throws -> AudioInfo {
    if let kind = packed.notRegular {
      throw ItemError(.unreadableAudio, file: path, message: "not a regular file in its archive (\(kind)); not opened")
    }
    return try SoundFile(bytes: packed.header, declaredBytes: packed.fileBytes, path: path).info
  }

  /// Checks the text header of `path` for an encoding libsndfile cannot decode
  /// (shorten-compressed NIST SPHERE, as LDC ships Fisher). Reads at most 1 KiB and
  /// never decodes samples, so corpus readers can fail such a file once at listing time.
  /// - Returns: the `unsupported_encoding` error, or nil when the header shows no problem.
  public static func unsupportedEncoding(path: String) -> ItemError? {
    SoundFile.unsupportedEncoding(path: path)
  }

  /// Decodes a file (or a segment of it) to one channel.
  ///
  /// - Parameters:
  ///   - path: the audio file.
  ///   - channel: a 0-based channel index to extract, or nil to apply `rule`.
  ///   - rule: what to do with multi-channel files when `channel` is nil.
  ///   - startSeconds: segment start (0 = file start).
  ///   - durationSeconds: segment length, nil = to the end of the file.
  /// - Returns: the samples at the file's own rate.
  /// - Throws: `ItemError` — `unreadable_audio` (open/decode failures, or fewer samples
  ///   than the header declares: a truncated file), `bad_channels`, `empty_audio`,
  ///   `non_finite_audio`.
  public static func decode(
    path: String, channel: Int? = nil, rule: ChannelRule = .mono,
    startSeconds: Double = 0, durationSeconds: Double? = nil
  ) throws -> Waveform {
    try decode(
      file: SoundFile(path: path), path: path, channel: channel, rule: rule, startSeconds: startSeconds,
      durationSeconds: durationSeconds)
  }

  /// `decode(path:…)` of a whole file held in memory (`bytes`); `path` names it in errors.
  /// - Throws: as `decode(path:…)`.
  public static func decode(
    bytes: [UInt8], path: String, channel: Int? = nil, rule: ChannelRule = .mono,
    startSeconds: Double = 0, durationSeconds: Double? = nil
  ) throws -> Waveform {
    try decode(
      file: SoundFile(bytes: bytes, declaredBytes: bytes.count, path: path), path: path, channel: channel, rule: rule,
      startSeconds: startSeconds, durationSeconds: durationSeconds)
  }

  static func decode(
    file: SoundFile, path: String, channel: Int?, rule: ChannelRule, startSeconds: Double, durationSeconds: Double?
  ) throws -> Waveform {
    let info = file.info
    let channels = info.channels
    let selected: Int?  // nil = average
    if let channel {
      guard channel >= 0, channel < channels else {
        throw ItemError(
          .badChannels, file: path,
          message: "channel \(channel) requested but the file has \(channels) channel(s)")
      }
      selected = channel
    } else {
      switch rule {
      case .mono:
        guard channels == 1 else {
          throw ItemError(
            .badChannels, file: path,
            message: "\(channels) channels; the recipe's channel rule is `mono` "
              + "(set audio.channelRule to first or average to accept it)")
        }
        selected = 0
      case .first: selected = 0
      case .average: selected = channels == 1 ? 0 : nil
      }
    }
    let (startFrame, frames) = try segment(of: info, path: path, startSeconds: startSeconds, durationSeconds: durationSeconds)
    guard frames > 0 else {
      throw ItemError(.emptyAudio, file: path, message: "no samples (\(info.formatName))")
    }
    try checkLength(frames: frames, sampleRateHertz: info.sampleRateHertz, path: path)

    var read = 0
    let samples: [Float]
    if channels == 1 {
      samples = try [Float](unsafeUninitializedCapacity: frames) { buffer, count in
        read = try file.readInterleaved(startFrame: startFrame, frames: frames, into: buffer.baseAddress!)
        count = read
      }
    } else {
      samples = try extract(file: file, startFrame: startFrame, frames: frames, channel: selected, read: &read)
    }
    guard read == frames else {
      throw ItemError(
        .unreadableAudio, file: path,
        message: "decoded \(read) of the \(frames) frames the header declares (truncated or corrupt)")
    }
    let waveform = Waveform(samples: samples, sampleRateHertz: info.sampleRateHertz)
    guard waveform.isFinite else {
      throw ItemError(.nonFiniteAudio, file: path, message: "decoded samples contain NaN or infinity")
    }
    return waveform
  }

  /// The frames a segment covers: `startFrame = round(startSeconds·rate)`,
  /// `frames = round(durationSeconds·rate)` (or to the end of the file), clipped to the
  /// file. Computed from the header alone, so lengths are known before decoding.
  /// - Throws: `ItemError(.unreadableAudio)` when the segment lies outside the audio.
  public static func segment(
    of info: AudioInfo, path: String, startSeconds: Double, durationSeconds: Double?
  ) throws -> (startFrame: Int, frames: Int) {
    let rate = Double(info.sampleRateHertz)
    let startFrame = max(0, Int((startSeconds * rate).rounded()))
    guard startFrame <= info.frames else {
      throw ItemError(
        .unreadableAudio, file: path,
        message: "segment starts at \(startSeconds) s, after the end of the audio (\(info.durationSeconds) s)")
    }
    var frames = info.frames - startFrame
    if let durationSeconds {
      let wanted = Int((durationSeconds * rate).rounded())
      // Allow 10 ms of slack: transcripts' end times are rounded.
      guard startFrame + wanted <= info.frames + Int(rate * 0.01) else {
        throw ItemError(
          .unreadableAudio, file: path,
          message: "segment \(startSeconds)+\(durationSeconds) s runs past the end of the audio (\(info.durationSeconds) s)")
      }
      frames = min(frames, wanted)
    }
    return (startFrame, frames)
  }

  /// Reads interleaved blocks and keeps one channel (or the average of all).
  private static func extract(
    file: SoundFile, startFrame: Int, frames: Int, channel: Int?, read: inout Int
  ) throws -> [Float] {
    let channels = file.info.channels
    let blockFrames = 16_384
    var block = [Float](repeating: 0, count: blockFrames * channels)
    var output = [Float]()
    output.reserveCapacity(frames)
    var position = startFrame
    var remaining = frames
    var first = true
    while remaining > 0 {
      let want = min(blockFrames, remaining)
      let got = try block.withUnsafeMutableBufferPointer { buffer in
        try file.readInterleaved(
          startFrame: first ? position : 0, frames: want, into: buffer.baseAddress!)
      }
      first = false
      if got == 0 { break }
      if let channel {
        for i in 0..<got { output.append(block[i * channels + channel]) }
      } else {
        let scale = 1 / Float(channels)
        for i in 0..<got {
          var sum: Float = 0
          for c in 0..<channels { sum += block[i * channels + c] }
          output.append(sum * scale)
        }
      }
      position += got
      remaining -= got
      read += got
      if got < want { break }
    }
    return output
  }
}
