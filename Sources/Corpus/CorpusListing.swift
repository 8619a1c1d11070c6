import DS2Core

/// What a corpus reader found: utterances to process, items it had to reject, and the
/// requested splits that are absent under the root.
public struct CorpusListing: Sendable {
  /// Utterances, grouped by split in the order requested, each split in id order.
  public var sources: [UtteranceSource]
  public var rejections: [ItemError]
  /// Requested splits not found under the root (reported and skipped).
  public var missingSplits: [String]

  public init(sources: [UtteranceSource] = [], rejections: [ItemError] = [], missingSplits: [String] = []) {
    self.sources = sources
    self.rejections = rejections
    self.missingSplits = missingSplits
  }
}

/// Turns a corpus's distribution layout into a listing. Readers touch only directory
/// entries and transcripts, never audio samples.
public protocol CorpusReader {
  /// Lists the utterances of `splits`.
  /// - Throws: `ConfigurationError` when the root is missing or holds none of `splits`.
  func list(splits: [String]) throws -> CorpusListing
}

/// Text normalization for English character vocabularies.
public enum EnglishText {
  /// The rule: ASCII letters A–Z become a–z; runs of whitespace become one space;
  /// leading and trailing whitespace is removed. Nothing else changes — any other
  /// character is left for the vocabulary to reject by name.
  public static func normalize(_ text: String) -> String {
    var output = String.UnicodeScalarView()
    var pendingSpace = false
    for scalar in text.unicodeScalars {
      // ASCII answered directly (Unicode's White_Space there is U+0009–U+000D and U+0020).
      let isWhitespace =
        scalar.isASCII ? (scalar.value == 0x20 || (0x09...0x0D).contains(scalar.value)) : scalar.properties.isWhitespace
      if isWhitespace {
        pendingSpace = !output.isEmpty
        continue
      }
      if pendingSpace {
        output.append(" ")
        pendingSpace = false
      }
      if scalar.value >= 0x41 && scalar.value <= 0x5A {
        output.append(Unicode.Scalar(scalar.value + 0x20)!)
      } else {
        output.append(scalar)
      }
    }
    return String(output)
  }
}
