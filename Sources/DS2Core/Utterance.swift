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
  /// Set when the audio is still inside an archive (a dry run does not unpack): what was
  /// read of it there. `audioPath` is then where unpacking will put it.
  public var packed: PackedAudio?

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

/// An audio file inside an archive, as read from the archive's stream without unpacking.
public struct PackedAudio: Sendable, Equatable, Codable {
  /// The archive's path and the member's name in it.
  public var archive: String
  public var member: String
  /// The member's size in bytes.
  public var fileBytes: Int
  /// Its first bytes (at most `headerLimit`): enough for a WAV header.
  public var header: [UInt8]
  /// All its bytes, when kept (for a dry run's calibration sample).
  public var contents: [UInt8]?
  /// Set when the member is not a regular file (a link, a FIFO, a device): what it is.
  public var notRegular: String?

  /// How many leading bytes of a member `header` keeps.
  public static let headerLimit = 512

  public init(archive: String, member: String, fileBytes: Int, header: [UInt8], contents: [UInt8]? = nil) {
    (self.archive, self.member, self.fileBytes, self.header, self.contents) = (archive, member, fileBytes, header, contents)
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
