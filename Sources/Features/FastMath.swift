/// Vectorizable elementwise math used on the spectrogram hot path.
enum FastMath {
  /// Natural log of `count` positive, finite floats, in place.
  ///
  /// Splits `x = m·2^e` with `m ∈ [√½, √2)` and evaluates `log(m)` through
  /// `s = (m−1)/(m+1)`, `log m = 2·atanh(s)` with an odd polynomial to s¹¹: absolute
  /// error below 1e-7 on the range, i.e. within Float rounding of `log`. Written as plain
  /// loops over bit patterns so the compiler vectorizes it.
  static func logInPlace(_ values: UnsafeMutablePointer<Float>, count: Int) {
    let ln2: Float = 0.693_147_180_559_945_3
    for i in 0..<count {
      let bits = values[i].bitPattern
      // exponent e and mantissa m in [1, 2)
      var exponent = Int32(bitPattern: (bits >> 23) & 0xff) - 127
      var m = Float(bitPattern: (bits & 0x007f_ffff) | 0x3f80_0000)
      // move m into [√½, √2)
      let big = m > 1.414_213_5
      m = big ? m * 0.5 : m
      exponent += big ? 1 : 0
      let s = (m - 1) / (m + 1)
      let s2 = s * s
      var p: Float = 0.090_909_09  // 1/11
      p = p * s2 + 0.111_111_11  // 1/9
      p = p * s2 + 0.142_857_15  // 1/7
      p = p * s2 + 0.2  // 1/5
      p = p * s2 + 0.333_333_34  // 1/3
      p = p * s2 + 1
      values[i] = Float(exponent) * ln2 + 2 * s * p
    }
  }
}
