import Foundation

/// Encodes a value as Foundation's `JSONEncoder` does with `.sortedKeys` and
/// `.withoutEscapingSlashes`, pretty-printed (`.prettyPrinted`) or compact — the same
/// bytes (tested against it) — several times faster where it matters here: arrays of
/// numbers (the per-shard statistics of a manifest or journal, 322 per shard) are rendered
/// straight into the output instead of boxing every element.
///
/// Numbers print as Swift's shortest round-trip `description` without a trailing `.0`;
/// infinities and NaN throw, as `JSONEncoder` does. `Date`, `Data`, `URL` and `Decimal`
/// (which `JSONEncoder` special-cases) are not supported and throw.
public struct SortedJSONEncoder {
  /// Whether to indent as `.prettyPrinted` does (else compact, with no spaces).
  public var prettyPrinted: Bool

  public init(prettyPrinted: Bool) { self.prettyPrinted = prettyPrinted }

  /// The UTF-8 JSON text of `value`.
  /// - Throws: `EncodingError.invalidValue` for a non-finite number or an unsupported
  ///   type; what `value.encode(to:)` throws.
  public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
    let node = try SortedJSONNode.of(value, codingPath: [])
    var out: [UInt8] = []
    out.reserveCapacity(1 << 16)
    node.write(indent: 0, pretty: prettyPrinted, into: &out)
    return out
  }
}

/// A value being encoded: an object or array filled in by containers, or a rendered scalar.
final class SortedJSONNode {
  enum Content {
    case unset
    case object([String: SortedJSONNode])
    case array([SortedJSONNode])
    case scalar([UInt8])
    case numbers([[UInt8]])
  }
  var content: Content = .unset

  init() {}
  init(scalar: [UInt8]) { content = .scalar(scalar) }

  /// The node of an encodable value: numbers, strings and arrays of numbers directly,
  /// anything else through its `encode(to:)`.
  static func of<T: Encodable>(_ value: T, codingPath: [any CodingKey]) throws -> SortedJSONNode {
    if T.self == String.self { return SortedJSONNode(scalar: quoted(value as! String)) }
    if T.self == Double.self { return SortedJSONNode(scalar: try render(value as! Double, codingPath)) }
    if T.self == [Double].self {
      let node = SortedJSONNode()
      node.content = .numbers(try (value as! [Double]).map { try render($0, codingPath) })
      return node
    }
    if T.self == [Float].self {
      let node = SortedJSONNode()
      node.content = .numbers(try (value as! [Float]).map { try render($0, codingPath) })
      return node
    }
    if T.self == Date.self || T.self == Data.self || T.self == URL.self || T.self == Decimal.self {
      throw EncodingError.invalidValue(
        value, .init(codingPath: codingPath, debugDescription: "SortedJSONEncoder does not encode \(T.self)"))
    }
    let encoder = SortedJSONValueEncoder(codingPath: codingPath)
    try value.encode(to: encoder)
    if case .unset = encoder.node.content { encoder.node.content = .object([:]) }
    return encoder.node
  }

  static func render<F: BinaryFloatingPoint & LosslessStringConvertible>(_ value: F, _ codingPath: [any CodingKey]) throws -> [UInt8] {
    guard value.isFinite else {
      throw EncodingError.invalidValue(
        value, .init(codingPath: codingPath, debugDescription: "Unable to encode \(value) directly in JSON."))
    }
    var text = value.description
    if text.hasSuffix(".0") { text.removeLast(2) }
    return Array(text.utf8)
  }

  static func render<I: FixedWidthInteger>(_ value: I) -> [UInt8] { Array(String(value).utf8) }

  /// `text` as a JSON string: `"` and `\` escaped, control characters as `\b \f \n \r \t`
  /// or `\u00XX`, everything else (slashes and U+007F included) as it is.
  static func quoted(_ text: String) -> [UInt8] {
    var out: [UInt8] = [0x22]
    out.reserveCapacity(text.utf8.count + 2)
    let hex = Array("0123456789abcdef".utf8)
    for byte in text.utf8 {
      switch byte {
      case 0x22: out += [0x5C, 0x22]
      case 0x5C: out += [0x5C, 0x5C]
      case 0x08: out += [0x5C, 0x62]
      case 0x0C: out += [0x5C, 0x66]
      case 0x0A: out += [0x5C, 0x6E]
      case 0x0D: out += [0x5C, 0x72]
      case 0x09: out += [0x5C, 0x74]
      case 0..<0x20: out += [0x5C, 0x75, 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 15)]]
      default: out.append(byte)
      }
    }
    out.append(0x22)
    return out
  }

  /// Writes the node as `JSONEncoder` does: keys sorted; pretty, two spaces per level,
  /// `"key" : value`, an empty object or array as an opening line, an empty line and a
  /// close; compact, no whitespace at all.
  func write(indent: Int, pretty: Bool, into out: inout [UInt8]) {
    func spaces(_ count: Int) { out.append(contentsOf: repeatElement(0x20, count: count)) }
    func list(_ open: UInt8, _ close: UInt8, count: Int, _ element: (Int, inout [UInt8]) -> Void) {
      out.append(open)
      if pretty {
        out.append(0x0A)
        if count == 0 { out.append(0x0A) }
      }
      for index in 0..<count {
        if index > 0 { out.append(0x2C) }
        if index > 0 && pretty { out.append(0x0A) }
        if pretty { spaces(indent + 2) }
        element(index, &out)
      }
      if pretty {
        if count > 0 { out.append(0x0A) }
        spaces(indent)
      }
      out.append(close)
    }
    switch content {
    case .unset:
      out += Array("null".utf8)
    case .scalar(let bytes):
      out += bytes
    case .numbers(let numbers):
      list(0x5B, 0x5D, count: numbers.count) { index, out in out += numbers[index] }
    case .array(let items):
      list(0x5B, 0x5D, count: items.count) { index, out in items[index].write(indent: indent + 2, pretty: pretty, into: &out) }
    case .object(let fields):
      let sorted = fields.sorted { $0.key < $1.key }
      list(0x7B, 0x7D, count: sorted.count) { index, out in
        out += Self.quoted(sorted[index].key)
        out += pretty ? [0x20, 0x3A, 0x20] : [0x3A]
        sorted[index].value.write(indent: indent + 2, pretty: pretty, into: &out)
      }
    }
  }
}

/// The `Encoder` handed to `encode(to:)`: its containers fill `node`.
final class SortedJSONValueEncoder: Encoder {
  let node = SortedJSONNode()
  let codingPath: [any CodingKey]
  var userInfo: [CodingUserInfoKey: Any] { [:] }

  init(codingPath: [any CodingKey]) { self.codingPath = codingPath }

  func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
    if case .object = node.content {} else { node.content = .object([:]) }
    return KeyedEncodingContainer(SortedJSONKeyedContainer<Key>(node: node, codingPath: codingPath))
  }

  func unkeyedContainer() -> any UnkeyedEncodingContainer {
    if case .array = node.content {} else { node.content = .array([]) }
    return SortedJSONUnkeyedContainer(node: node, codingPath: codingPath)
  }

  func singleValueContainer() -> any SingleValueEncodingContainer {
    SortedJSONSingleValueContainer(node: node, codingPath: codingPath)
  }
}

struct SortedJSONKeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
  let node: SortedJSONNode
  let codingPath: [any CodingKey]

  private func set(_ child: SortedJSONNode, _ key: Key) {
    guard case .object(var fields) = node.content else { return }
    node.content = .unset  // keeps the dictionary uniquely referenced while it changes
    fields[key.stringValue] = child
    node.content = .object(fields)
  }
  private func scalar(_ bytes: [UInt8], _ key: Key) { set(SortedJSONNode(scalar: bytes), key) }

  mutating func encodeNil(forKey key: Key) throws { scalar(Array("null".utf8), key) }
  mutating func encode(_ value: Bool, forKey key: Key) throws { scalar(Array((value ? "true" : "false").utf8), key) }
  mutating func encode(_ value: String, forKey key: Key) throws { scalar(SortedJSONNode.quoted(value), key) }
  mutating func encode(_ value: Double, forKey key: Key) throws {
    scalar(try SortedJSONNode.render(value, codingPath + [key]), key)
  }
  mutating func encode(_ value: Float, forKey key: Key) throws {
    scalar(try SortedJSONNode.render(value, codingPath + [key]), key)
  }
  mutating func encode(_ value: Int, forKey key: Key) throws { scalar(SortedJSONNode.render(value), key) }
  mutating func encode(_ value: Int8, forKey key: Key) throws { scalar(SortedJSONNode.render(value), key) }
  mutating func encode(_ value: Int16, forKey key: Key) throws { scalar(SortedJSONNode.render(value), key) }
  mutating func encode(_ value: Int32, forKey key: Key) throws { scalar(SortedJSONNode.render(value), key) }
  mutating func encode(_ value: Int64, forKey key: Key) throws { scalar(SortedJSONNode.render(value), key) }
  mutating func encode(_ value: UInt, forKey key: Key) throws { scalar(SortedJSONNode.render(value), key) }
  mutating func encode(_ value: UInt8, forKey key: Key) throws { scalar(SortedJSONNode.render(value), key) }
  mutating func encode(_ value: UInt16, forKey key: Key) throws { scalar(SortedJSONNode.render(value), key) }
  mutating func encode(_ value: UInt32, forKey key: Key) throws { scalar(SortedJSONNode.render(value), key) }
  mutating func encode(_ value: UInt64, forKey key: Key) throws { scalar(SortedJSONNode.render(value), key) }
  mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
    set(try SortedJSONNode.of(value, codingPath: codingPath + [key]), key)
  }

  mutating func nestedContainer<NestedKey: CodingKey>(
    keyedBy keyType: NestedKey.Type, forKey key: Key
  ) -> KeyedEncodingContainer<NestedKey> {
    let child = SortedJSONNode()
    child.content = .object([:])
    set(child, key)
    return KeyedEncodingContainer(SortedJSONKeyedContainer<NestedKey>(node: child, codingPath: codingPath + [key]))
  }

  mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
    let child = SortedJSONNode()
    child.content = .array([])
    set(child, key)
    return SortedJSONUnkeyedContainer(node: child, codingPath: codingPath + [key])
  }

  mutating func superEncoder() -> any Encoder { superEncoder(named: "super") }
  mutating func superEncoder(forKey key: Key) -> any Encoder { superEncoder(named: key.stringValue) }
  private func superEncoder(named name: String) -> any Encoder {
    let encoder = SortedJSONValueEncoder(codingPath: codingPath)
    guard case .object(var fields) = node.content else { return encoder }
    node.content = .unset
    fields[name] = encoder.node
    node.content = .object(fields)
    return encoder
  }
}

struct SortedJSONUnkeyedContainer: UnkeyedEncodingContainer, SortedJSONScalarContainer {
  let node: SortedJSONNode
  let codingPath: [any CodingKey]
  var count: Int {
    if case .array(let items) = node.content { return items.count }
    return 0
  }

  private func append(_ child: SortedJSONNode) {
    guard case .array(var items) = node.content else { return }
    node.content = .unset
    items.append(child)
    node.content = .array(items)
  }
  func scalar(_ bytes: [UInt8]) { append(SortedJSONNode(scalar: bytes)) }
  mutating func encode<T: Encodable>(_ value: T) throws { append(try SortedJSONNode.of(value, codingPath: codingPath)) }

  mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
    let child = SortedJSONNode()
    child.content = .object([:])
    append(child)
    return KeyedEncodingContainer(SortedJSONKeyedContainer<NestedKey>(node: child, codingPath: codingPath))
  }

  mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
    let child = SortedJSONNode()
    child.content = .array([])
    append(child)
    return SortedJSONUnkeyedContainer(node: child, codingPath: codingPath)
  }

  mutating func superEncoder() -> any Encoder {
    let encoder = SortedJSONValueEncoder(codingPath: codingPath)
    append(encoder.node)
    return encoder
  }
}

struct SortedJSONSingleValueContainer: SingleValueEncodingContainer, SortedJSONScalarContainer {
  let node: SortedJSONNode
  let codingPath: [any CodingKey]

  func scalar(_ bytes: [UInt8]) { node.content = .scalar(bytes) }

  mutating func encode<T: Encodable>(_ value: T) throws {
    node.content = try SortedJSONNode.of(value, codingPath: codingPath).content
  }
}

/// The scalar `encode` methods unkeyed and single-value containers share: each renders the
/// value and hands it to `scalar`.
protocol SortedJSONScalarContainer {
  var codingPath: [any CodingKey] { get }
  func scalar(_ bytes: [UInt8])
}

extension SortedJSONScalarContainer {
  mutating func encodeNil() throws { scalar(Array("null".utf8)) }
  mutating func encode(_ value: Bool) throws { scalar(Array((value ? "true" : "false").utf8)) }
  mutating func encode(_ value: String) throws { scalar(SortedJSONNode.quoted(value)) }
  mutating func encode(_ value: Double) throws { scalar(try SortedJSONNode.render(value, codingPath)) }
  mutating func encode(_ value: Float) throws { scalar(try SortedJSONNode.render(value, codingPath)) }
  mutating func encode(_ value: Int) throws { scalar(SortedJSONNode.render(value)) }
  mutating func encode(_ value: Int8) throws { scalar(SortedJSONNode.render(value)) }
  mutating func encode(_ value: Int16) throws { scalar(SortedJSONNode.render(value)) }
  mutating func encode(_ value: Int32) throws { scalar(SortedJSONNode.render(value)) }
  mutating func encode(_ value: Int64) throws { scalar(SortedJSONNode.render(value)) }
  mutating func encode(_ value: UInt) throws { scalar(SortedJSONNode.render(value)) }
  mutating func encode(_ value: UInt8) throws { scalar(SortedJSONNode.render(value)) }
  mutating func encode(_ value: UInt16) throws { scalar(SortedJSONNode.render(value)) }
  mutating func encode(_ value: UInt32) throws { scalar(SortedJSONNode.render(value)) }
  mutating func encode(_ value: UInt64) throws { scalar(SortedJSONNode.render(value)) }
}
