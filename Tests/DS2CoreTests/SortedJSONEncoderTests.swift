import DS2Core
import Foundation
import XCTest

/// `SortedJSONEncoder` writes the bytes `JSONEncoder` writes with `.sortedKeys` and
/// `.withoutEscapingSlashes`, with and without `.prettyPrinted` (the independent reference).
final class SortedJSONEncoderTests: XCTestCase {
  struct Inner: Codable, Equatable {
    var name: String
    var values: [Double]
    var empty: [Int] = []
    var optional: Int?
  }

  enum Choice: String, Codable { case first, second }

  struct Everything: Codable {
    var doubles: [Double]
    var floats: [Float]
    var double: Double
    var float: Float
    var integers: [Int]
    var small: Int8
    var unsigned: UInt64
    var int32: Int32
    var strings: [String]
    var flag: Bool
    var nothing: String?
    var something: String?
    var dictionary: [String: Int]
    var emptyDictionary: [String: Double]
    var nested: [[Double]]
    var inners: [Inner]
    var choice: Choice
    var choices: [Choice]
    var json: JSONValue
  }

  func reference<T: Encodable>(_ value: T, pretty: Bool) throws -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
    return Array(try encoder.encode(value))
  }

  func testSameBytesAsJSONEncoder() throws {
    var generator = SystemRandomNumberGenerator()
    let randomDoubles = (0..<500).map { _ in Double(bitPattern: generator.next()) }.filter(\.isFinite)
    let value = Everything(
      doubles: [1, 0.5, 1e-5, 1e20, 1e16, 1e15, 123_456_789, -0.0, 5e-324, 0.1, 1.0 / 3, 2e-7, 100, 1e21, 1e300, -1.5e-10,
        .greatestFiniteMagnitude, -.leastNormalMagnitude] + randomDoubles,
      floats: [1, 0.1, 1e-5, 3.4e38, 1e20, -0.0, .leastNonzeroMagnitude, 16_777_216],
      double: -2.5, float: 0.25, integers: [0, -1, .max, .min], small: -128, unsigned: .max, int32: -7,
      strings: ["a/b", "q\"x", "back\\slash", "tab\tnl\ncr\r", "\u{1}\u{1f}\u{7f}", "é中😀", "\u{2028}\u{2029}", "bf\u{8}\u{c}", ""],
      flag: true, nothing: nil, something: "here",
      dictionary: ["a10": 1, "a2": 2, "B": 3, "a": 4, "_x": 5, "é": 6, "Z": 7, "ab": 8, "": 9],
      emptyDictionary: [:], nested: [[], [1], [2, 3.5]],
      inners: [Inner(name: "x", values: [], optional: 3), Inner(name: "y", values: [1.5, -2])],
      choice: .second, choices: [.first, .second],
      json: .object(["k": .array([.number(1.5), .string("v"), .bool(false), .null]), "e": .object([:])]))
    for pretty in [true, false] {
      let encoder = SortedJSONEncoder(prettyPrinted: pretty)
      XCTAssertEqual(try encoder.encode(value), try reference(value, pretty: pretty))
      XCTAssertEqual(try encoder.encode([Inner]()), try reference([Inner](), pretty: pretty))
      XCTAssertEqual(try encoder.encode("top"), try reference("top", pretty: pretty))
      XCTAssertEqual(try encoder.encode([1.0, 2.5]), try reference([1.0, 2.5], pretty: pretty))
    }
  }

  func testNonFiniteNumbersThrowAsJSONEncoderDoes() {
    for bad in [Double.infinity, -.infinity, .nan] {
      XCTAssertThrowsError(try SortedJSONEncoder(prettyPrinted: true).encode(Inner(name: "n", values: [1, bad])))
      XCTAssertThrowsError(try reference(Inner(name: "n", values: [1, bad]), pretty: true))
    }
  }
}
