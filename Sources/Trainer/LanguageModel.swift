import DS2Core
import Foundation

/// A word n-gram language model read from an ARPA file, with Katz back-off.
///
/// `logProbability(of:after:)` returns natural-log probabilities (ARPA stores log10).
/// Sentences start with the context `<s>` and end with `</s>`; a word the model does not
/// know scores as `<unk>` when the model has it, else as `unknownLog10Probability`.
public final class LanguageModel: Sendable {
  /// The largest n.
  public let order: Int
  /// log10 probability and log10 back-off weight per n-gram (words joined by one space).
  private let entries: [String: (probability: Double, backoff: Double)]
  /// Score of an out-of-vocabulary word when the model has no `<unk>` (log10).
  public let unknownLog10Probability: Double

  /// The largest ARPA file read (bytes): a pruned 4-gram of LibriSpeech's is about 1.4 GB.
  public static let maxFileBytes = 16 << 30

  /// Parses the ARPA text of `path`, a regular file (a FIFO or device is refused, never
  /// waited on) of at most `maxFileBytes`.
  /// - Throws: `ConfigurationError` naming the file: unreadable, not a regular file, too
  ///   large, not UTF-8, or the line of a malformed entry.
  public convenience init(arpaPath path: String, unknownLog10Probability: Double = -10) throws {
    let bytes: [UInt8]
    do {
      bytes = try RegularFile.read(path, maxBytes: Self.maxFileBytes)
    } catch let error as RegularFileError {
      throw ConfigurationError("language model \(path): \(error.reason)")
    }
    guard let text = String(bytes: bytes, encoding: .utf8) else {
      throw ConfigurationError("language model \(path): cannot read the file as UTF-8 text")
    }
    try self.init(arpa: text, name: path, unknownLog10Probability: unknownLog10Probability)
  }

  /// Parses ARPA `text`; `name` labels errors.
  /// - Throws: `ConfigurationError` naming the line of a malformed entry.
  public init(arpa text: String, name: String = "<arpa>", unknownLog10Probability: Double = -10) throws {
    var entries: [String: (Double, Double)] = [:]
    var section = 0
    var order = 0
    var sawData = false
    for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let line = rawLine.trimmingCharacters(in: .whitespaces)
      if line.isEmpty { continue }
      if line == "\\data\\" {
        sawData = true
        continue
      }
      if line == "\\end\\" { break }
      if line.hasPrefix("\\") && line.hasSuffix("-grams:") {
        guard let n = Int(line.dropFirst().dropLast("-grams:".count)), n >= 1 else {
          throw ConfigurationError("language model \(name):\(number + 1): bad section header \(line)")
        }
        section = n
        order = max(order, n)
        continue
      }
      if section == 0 { continue }  // `ngram N=count` lines of \data\
      let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
      guard fields.count == section + 1 || fields.count == section + 2, let probability = Double(fields[0]) else {
        throw ConfigurationError(
          "language model \(name):\(number + 1): expected a log10 probability, \(section) word(s) and an optional back-off")
      }
      let backoff = fields.count == section + 2 ? Double(fields[section + 1]) : 0
      guard let backoff else {
        throw ConfigurationError("language model \(name):\(number + 1): bad back-off weight \(fields[section + 1])")
      }
      entries[fields[1...section].joined(separator: " ")] = (probability, backoff)
    }
    guard sawData, order > 0 else {
      throw ConfigurationError("language model \(name): no \\data\\ section or no n-grams (not an ARPA file)")
    }
    self.entries = entries
    self.order = order
    self.unknownLog10Probability = unknownLog10Probability
  }

  /// ln P(`word` | `history`), backing off from the longest context the model holds.
  /// `history` is the preceding words, oldest first (`<s>` included by the caller).
  public func logProbability(of word: String, after history: [String]) -> Double {
    let known = entries[word] != nil
    let target = known ? word : "<unk>"
    if !known && entries["<unk>"] == nil { return unknownLog10Probability * ln10 }
    var context = Array(history.suffix(order - 1))
    var backoff = 0.0
    while true {
      let key = (context + [target]).joined(separator: " ")
      if let entry = entries[key] { return (entry.probability + backoff) * ln10 }
      if context.isEmpty { return (unknownLog10Probability + backoff) * ln10 }
      backoff += entries[context.joined(separator: " ")]?.backoff ?? 0
      context.removeFirst()
    }
  }

  /// ln P of a whole sentence of `words`, including `</s>`.
  public func logProbability(sentence words: [String]) -> Double {
    var history = ["<s>"]
    var total = 0.0
    for word in words + ["</s>"] {
      total += logProbability(of: word, after: history)
      history.append(word)
    }
    return total
  }
}

/// ln 10: ARPA files store log10 probabilities.
private let ln10 = 2.302585092994046
