import DS2Core

/// A small mutation fuzzer for property tests of decoders: derives inputs from seeds by
/// bit flips, byte substitutions with boundary values, insertions, deletions,
/// truncations, duplications and splices, and overwrites of 32-bit fields with extreme
/// values (to exercise length and overflow checks).
///
/// The number of inputs a test runs is `DS2_FUZZ_ITERATIONS` when set (the long run,
/// docs/FUZZING.md), else the test's short default.
public struct Mutator {
  public var generator: SeededGenerator
  public let seeds: [[UInt8]]

  public init(seeds: [[UInt8]], seed: UInt64) {
    precondition(!seeds.isEmpty, "need at least one seed input")
    self.seeds = seeds
    generator = SeededGenerator(seed: seed)
  }

  /// Iterations to run: the environment's `DS2_FUZZ_ITERATIONS`, or `short`.
  public static func iterations(short: Int) -> Int {
    if let value = ProcessInfo.processInfo.environment["DS2_FUZZ_ITERATIONS"], let count = Int(value), count > 0 {
      return count
    }
    return short
  }

  mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(generator.next() % UInt64(n)) }

  /// The next mutated input.
  public mutating func next() -> [UInt8] {
    var bytes = seeds[below(seeds.count)]
    let boundary: [UInt8] = [0, 1, 0x7F, 0x80, 0xFF, 0x20, 0x0A, 0x22, 0x3A, 0x2D, 0x5B]
    for _ in 0..<(1 + below(6)) {
      switch below(8) {
      case 0 where !bytes.isEmpty:
        bytes[below(bytes.count)] ^= UInt8(1 << below(8))
      case 1 where !bytes.isEmpty:
        bytes[below(bytes.count)] = boundary[below(boundary.count)]
      case 2:
        bytes.insert(UInt8(truncatingIfNeeded: generator.next()), at: below(bytes.count + 1))
      case 3 where !bytes.isEmpty:
        bytes.remove(at: below(bytes.count))
      case 4:
        bytes = Array(bytes.prefix(below(bytes.count + 1)))
      case 5 where bytes.count >= 4:
        let extremes: [UInt32] = [0, 1, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, UInt32(bytes.count), 0x0100_0000]
        let value = extremes[below(extremes.count)]
        let offset = below(bytes.count - 3) & ~3
        for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
      case 6 where !bytes.isEmpty:
        let start = below(bytes.count)
        let length = below(min(64, bytes.count - start) + 1)
        bytes.insert(contentsOf: bytes[start..<start + length], at: below(bytes.count + 1))
      case 7:
        let other = seeds[below(seeds.count)]
        bytes = Array(bytes.prefix(below(bytes.count + 1))) + Array(other.suffix(below(other.count + 1)))
      default:
        break
      }
    }
    return bytes
  }
}

import Foundation
