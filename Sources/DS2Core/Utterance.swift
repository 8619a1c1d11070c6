/// One utterance as a corpus reader lists it: where its audio is and what was said.
///
/// A source is cheap: it holds paths and text, never samples. Readers produce these;
/// the pipeline probes, sorts, decodes and featurizes them.
public struct UtteranceSource: Sendable, Equatable, Codable {
  /// Unique id within its split (e.g. LibriSpeech `103-1240-0000`).
  public var id: String
  /// The split (corpus part) it belongs to, e.g. `train-clean-100`.
  public var split: String
  /// Path of the audio file.
  public var audioPath: String
  /// Channel to read (0-based), or nil to apply the recipe's channel rule.
  public var channel: Int?
  /// Start of the utterance inside the file, in seconds (0 = file start).
  public var startSeconds: Double
  /// Length in seconds, or nil for "to the end of the file".
  public var durationSeconds: Double?
  /// The transcript, already normalized by the reader's documented rule (the labels
  /// are this text encoded with the dataset's vocabulary).
  public var transcript: String
  /// Speaker id when the corpus provides one.
  public var speaker: String?
  /// Where the transcript came from (file path), for error messages.
  public var transcriptPath: String?
  /// 1-based line of the transcript in `transcriptPath`, for error messages.
  public var transcriptLine: Int?

  public init(
    id: String, split: String, audioPath: String, channel: Int? = nil,
    startSeconds: Double = 0, durationSeconds: Double? = nil, transcript: String,
    speaker: String? = nil, transcriptPath: String? = nil, transcriptLine: Int? = nil
  ) {
    self.id = id
    self.split = split
    self.audioPath = audioPath
    self.channel = channel
    self.startSeconds = startSeconds
    self.durationSeconds = durationSeconds
    self.transcript = transcript
    self.speaker = speaker
    self.transcriptPath = transcriptPath
    self.transcriptLine = transcriptLine
  }
}

/// Whether `a` sorts before `b` in the byte order of their UTF-8 encodings: the order of
/// ids in listings and shard keys (independent of locale and Unicode normalization).
public func utf8Precedes(_ a: String, _ b: String) -> Bool {
  var (a, b) = (a, b)
  return a.withUTF8 { x in
    b.withUTF8 { y in
      for i in 0..<min(x.count, y.count) where x[i] != y[i] { return x[i] < y[i] }
      return x.count < y.count
    }
  }
}
