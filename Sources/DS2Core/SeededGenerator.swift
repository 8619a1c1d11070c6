/// A small, fast, deterministic random number generator (SplitMix64).
///
/// Randomness in ds2-data is always passed in and derived per item from
/// `(seed, utterance id, copy)`, so results never depend on thread count or scheduling.
public struct SeededGenerator: RandomNumberGenerator, Sendable, Equatable, Codable {
  public private(set) var state: UInt64

  public init(seed: UInt64) { state = seed }

  /// A generator for one item: mixes the run seed, a stable hash of `id` and `copy`.
  public init(seed: UInt64, id: String, copy: Int = 0) {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a 64
    for byte in id.utf8 {
      hash ^= UInt64(byte)
      hash = hash &* 0x0000_0100_0000_01b3
    }
    var mixer = SeededGenerator(seed: seed ^ 0x9E37_79B9_7F4A_7C15)
    let a = mixer.next()
    state = a ^ hash ^ (UInt64(truncatingIfNeeded: copy) &* 0xD6E8_FEB8_6659_FD93)
    _ = next()
  }

  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// A uniform Double in [0, 1) with 53 random bits.
  public mutating func nextUnitDouble() -> Double {
    Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
  }
}
