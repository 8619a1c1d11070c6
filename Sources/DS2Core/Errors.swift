import Foundation

/// Why one item (an utterance, a file or a transcript line) was left out of a dataset.
///
/// Raw values are stable: they appear in `rejected.jsonl` and in summaries.
public enum RejectionReason: String, Sendable, Codable, CaseIterable, Comparable {
  /// The audio file could not be opened or decoded.
  case unreadableAudio = "unreadable_audio"
  /// The audio decodes to zero samples.
  case emptyAudio = "empty_audio"
  /// The audio is shorter than one analysis window or than the recipe's minimum.
  case tooShort = "too_short"
  /// The audio is longer than the recipe's maximum.
  case tooLong = "too_long"
  /// The audio has more channels than the channel rule accepts, or lacks the asked one.
  case badChannels = "bad_channels"
  /// Decoded samples are NaN or infinite.
  case nonFiniteAudio = "non_finite_audio"
  /// Audio is digital silence where a level is needed (loudness normalization).
  case silentAudio = "silent_audio"
  /// The audio's codec is one libsndfile cannot decode (e.g. shorten-compressed SPHERE).
  case unsupportedEncoding = "unsupported_encoding"
  /// A transcript file or line is not valid UTF-8.
  case nonUTF8Transcript = "non_utf8_transcript"
  /// A transcript line could not be parsed.
  case malformedTranscript = "malformed_transcript"
  /// The transcript has characters outside the vocabulary.
  case outOfVocabulary = "out_of_vocabulary"
  /// The transcript normalizes to nothing.
  case emptyTranscript = "empty_transcript"
  /// The transcript marks part of the speech as unintelligible or uncertain (Fisher's
  /// `(( ))`), so its labels would not match its audio.
  case uncertainTranscript = "uncertain_transcript"
  /// A transcript line names audio that does not exist.
  case missingAudio = "missing_audio"
  /// An audio file has no transcript.
  case missingTranscript = "missing_transcript"
  /// The same utterance id appears twice in a split.
  case duplicateId = "duplicate_id"
  /// A transcript or list file cannot be read (permissions, not a regular file, I/O error,
  /// too large); the items it would have named are not listed.
  case unreadableFile = "unreadable_file"
  /// A corpus folder cannot be listed (permissions, I/O error); the items under it are not
  /// listed.
  case unreadableFolder = "unreadable_folder"

  public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// A problem with one input item; it is reported and counted, never fatal for the run.
public struct ItemError: Error, Sendable, Codable, Equatable, CustomStringConvertible {
  public var reason: RejectionReason
  /// The file the problem is in (audio or transcript).
  public var file: String
  /// 1-based line in `file`, for transcript problems.
  public var line: Int?
  /// The utterance id, when known.
  public var utteranceId: String?
  /// The split, when known.
  public var split: String?
  /// Human-readable detail, e.g. which characters were out of vocabulary.
  public var message: String

  public init(
    _ reason: RejectionReason, file: String, line: Int? = nil, utteranceId: String? = nil,
    split: String? = nil, message: String
  ) {
    self.reason = reason
    self.file = file
    self.line = line
    self.utteranceId = utteranceId
    self.split = split
    self.message = message
  }

  public var description: String {
    var where_ = file
    if let line { where_ += ":\(line)" }
    var text = "\(where_): \(reason.rawValue): \(message)"
    if let utteranceId { text += " (utterance \(utteranceId))" }
    return text
  }
}

/// A run-level failure: a bad recipe, a missing corpus root, an unwritable output.
///
/// These stop a run; they are thrown with a message that names the path and the reason.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// A file-system call that failed on a path the run writes or reads (disk full, I/O
/// error, permissions): the path, the call and the system's error number.
public struct FileSystemError: Error, Sendable, Equatable, CustomStringConvertible {
  public var path: String
  /// What was being done, with the system call: `fsync`, `write (…)`, `rename into place`.
  public var operation: String
  public var errorNumber: Int32

  public init(path: String, operation: String, errorNumber: Int32) {
    self.path = path
    self.operation = operation
    self.errorNumber = errorNumber
  }

  public var description: String { "\(path): \(operation) failed: \(String(cString: strerror(errorNumber)))" }
}
