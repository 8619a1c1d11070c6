/// The label alphabet of a dataset: CTC blank at id 0, then one symbol per id.
///
/// Symbols are single Unicode scalars (a character of English, a Hanzi of Mandarin).
/// Label ids are the symbol's position in `symbols`; `symbols[0]` is the blank,
/// spelled `"<blank>"` in files.
public struct Vocabulary: Sendable, Equatable, Codable {
  /// The spelling of the blank symbol in `symbols[0]`.
  public static let blankSymbol = "<blank>"

  /// All symbols, blank first.
  public private(set) var symbols: [String]
  private var idOf: [Unicode.Scalar: Int32]
  /// `idOf` for the ASCII scalars, 0 where absent (the blank is never a symbol's id).
  private var asciiIds: [Int32]

  /// Creates a vocabulary from its non-blank symbols, in id order starting at 1.
  /// - Precondition: each symbol is one Unicode scalar and appears once.
  public init(nonBlankSymbols: [Unicode.Scalar]) {
    symbols = [Self.blankSymbol] + nonBlankSymbols.map { String($0) }
    idOf = [:]
    asciiIds = [Int32](repeating: 0, count: 128)
    for (index, scalar) in nonBlankSymbols.enumerated() {
      precondition(idOf[scalar] == nil, "duplicate vocabulary symbol \(scalar)")
      idOf[scalar] = Int32(index + 1)
      if scalar.isASCII { asciiIds[Int(scalar.value)] = Int32(index + 1) }
    }
  }

  /// The English character vocabulary of DS2: blank=0, space=1, apostrophe=2, a…z = 3…28.
  public static let english: Vocabulary = {
    var scalars: [Unicode.Scalar] = [" ", "'"]
    for value in UInt32(("a" as Unicode.Scalar).value)...UInt32(("z" as Unicode.Scalar).value) {
      scalars.append(Unicode.Scalar(value)!)
    }
    return Vocabulary(nonBlankSymbols: scalars)
  }()

  /// Number of symbols including the blank.
  public var count: Int { symbols.count }

  /// The label id of `scalar`, or nil when it is outside the vocabulary.
  public func id(of scalar: Unicode.Scalar) -> Int32? { idOf[scalar] }

  /// Encodes normalized text as label ids.
  /// - Throws: `OutOfVocabulary` naming every distinct character not in the vocabulary.
  public func encode(_ text: String) throws -> [Int32] {
    var labels: [Int32] = []
    labels.reserveCapacity(text.utf8.count)
    var unknown: [Unicode.Scalar] = []
    for scalar in text.unicodeScalars {
      if scalar.isASCII, case let id = asciiIds[Int(scalar.value)], id > 0 {
        labels.append(id)
      } else if let id = idOf[scalar] {
        labels.append(id)
      } else if !unknown.contains(scalar) {
        unknown.append(scalar)
      }
    }
    if !unknown.isEmpty { throw OutOfVocabulary(characters: unknown) }
    return labels
  }

  /// Turns label ids back into text; ids out of range or blank are skipped.
  public func decode(_ labels: [Int32]) -> String {
    var text = ""
    for label in labels where label > 0 && Int(label) < symbols.count {
      text += symbols[Int(label)]
    }
    return text
  }

  /// Characters of a transcript that the vocabulary does not contain.
  public struct OutOfVocabulary: Error, Sendable, CustomStringConvertible {
    public var characters: [Unicode.Scalar]
    public var description: String {
      let listed = characters.map { scalar -> String in
        let hex = String(scalar.value, radix: 16, uppercase: true)
        let padded = String(repeating: "0", count: max(0, 4 - hex.count)) + hex
        return "'\(scalar.escaped(asASCII: false))' (U+\(padded))"
      }
      return "characters outside the vocabulary: " + listed.joined(separator: ", ")
    }
  }

  enum CodingKeys: String, CodingKey { case symbols }

  public init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    let all = try container.decode([String].self, forKey: .symbols)
    guard all.first == Self.blankSymbol else {
      throw DecodingError.dataCorruptedError(
        forKey: .symbols, in: container, debugDescription: "symbols[0] must be \(Self.blankSymbol)")
    }
    var scalars: [Unicode.Scalar] = []
    for symbol in all.dropFirst() {
      guard symbol.unicodeScalars.count == 1, let scalar = symbol.unicodeScalars.first else {
        throw DecodingError.dataCorruptedError(
          forKey: .symbols, in: container, debugDescription: "symbol \(symbol) is not one scalar")
      }
      scalars.append(scalar)
    }
    guard Set(scalars).count == scalars.count else {
      throw DecodingError.dataCorruptedError(
        forKey: .symbols, in: container, debugDescription: "duplicate symbols")
    }
    self.init(nonBlankSymbols: scalars)
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(symbols, forKey: .symbols)
  }

  public static func == (a: Vocabulary, b: Vocabulary) -> Bool { a.symbols == b.symbols }
}
