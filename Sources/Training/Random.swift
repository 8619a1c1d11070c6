/// xoshiro256** (Blackman & Vigna) seeded through SplitMix64: the trainer's deterministic source
/// of initial weights. The same seed gives the same stream on every platform.
struct Xoshiro256StarStar: RandomNumberGenerator {
  private var s0: UInt64
  private var s1: UInt64
  private var s2: UInt64
  private var s3: UInt64

  init(seed: UInt64) {
    var splitMix = seed
    func nextSplitMix() -> UInt64 {
      splitMix &+= 0x9E37_79B9_7F4A_7C15
      var z = splitMix
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
    s0 = nextSplitMix()
    s1 = nextSplitMix()
    s2 = nextSplitMix()
    s3 = nextSplitMix()
  }

  mutating func next() -> UInt64 {
    let result = rotateLeft(s1 &* 5, 7) &* 9
    let t = s1 << 17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = rotateLeft(s3, 45)
    return result
  }

  /// A uniform Double in [0, 1) with 53 random bits.
  mutating func nextUnit() -> Double {
    Double(next() >> 11) * 0x1p-53
  }

  /// A tensor of `shape` with elements uniform in `[-bound, bound)`.
  mutating func uniformTensor<Scalar: TensorScalar>(shape: [Int], bound: Double) -> Tensor<Scalar> {
    var tensor = Tensor<Scalar>(shape: shape)
    for index in tensor.scalars.indices {
      tensor.scalars[index] = Scalar((2 * nextUnit() - 1) * bound)
    }
    return tensor
  }

  private func rotateLeft(_ x: UInt64, _ k: UInt64) -> UInt64 {
    (x << k) | (x >> (64 - k))
  }
}
