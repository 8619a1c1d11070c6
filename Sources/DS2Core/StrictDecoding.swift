/// Helpers for decoding configuration: missing keys take defaults, unknown keys fail.
public struct AnyCodingKey: CodingKey, Sendable {
  public var stringValue: String
  public var intValue: Int?
  public init(stringValue: String) { self.stringValue = stringValue }
  public init?(intValue: Int) {
    self.stringValue = String(intValue)
    self.intValue = intValue
  }
}

extension Decoder {
  /// Throws when the object being decoded has keys outside `Keys` — a misspelt recipe
  /// field must fail loudly rather than silently take a default.
  public func rejectUnknownKeys<Keys: CodingKey & CaseIterable>(_: Keys.Type) throws {
    let known = Set(Keys.allCases.map(\.stringValue))
    let container = try self.container(keyedBy: AnyCodingKey.self)
    let unknown = container.allKeys.map(\.stringValue).filter { !known.contains($0) }.sorted()
    if !unknown.isEmpty {
      let location = codingPath.map(\.stringValue).joined(separator: ".")
      throw DecodingError.dataCorrupted(
        DecodingError.Context(
          codingPath: codingPath,
          debugDescription: "unknown key\(unknown.count > 1 ? "s" : "") \(unknown.joined(separator: ", "))"
            + (location.isEmpty ? "" : " in \(location)")
            + "; known keys: \(Keys.allCases.map(\.stringValue).sorted().joined(separator: ", "))"))
    }
  }
}

extension KeyedDecodingContainer {
  /// The value for `key`, or `fallback` when the key is absent.
  public func decode<T: Decodable>(_ key: Key, default fallback: T) throws -> T {
    try decodeIfPresent(T.self, forKey: key) ?? fallback
  }
}

extension DecodingError {
  /// The error as one line for configuration messages: the key path and what is wrong
  /// (`features.windowSeconds: expected Double`).
  public var configurationMessage: String {
    func path(_ context: DecodingError.Context) -> String {
      let joined = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
      return joined.isEmpty ? "" : "\(joined): "
    }
    switch self {
    case .keyNotFound(let key, let context): return "\(path(context))missing required key \(key.stringValue)"
    case .typeMismatch(_, let context): return "\(path(context))\(context.debugDescription)"
    case .valueNotFound(_, let context): return "\(path(context))\(context.debugDescription)"
    case .dataCorrupted(let context): return "\(path(context))\(context.debugDescription)"
    @unknown default: return "\(self)"
    }
  }
}

/// A setting with named values (`dtype: float16`): decoding a name that is not one of them
/// names them all (`"int8" is not one of float16, float32, uint8`).
public protocol ConfigurationChoice: CaseIterable, RawRepresentable, Codable where RawValue == String {}

extension ConfigurationChoice {
  public init(from decoder: any Decoder) throws {
    let text = try decoder.singleValueContainer().decode(String.self)
    guard let value = Self(rawValue: text) else {
      throw DecodingError.dataCorrupted(
        DecodingError.Context(
          codingPath: decoder.codingPath,
          debugDescription: "\"\(text)\" is not one of \(Self.allCases.map(\.rawValue).joined(separator: ", "))"))
    }
    self = value
  }
}
