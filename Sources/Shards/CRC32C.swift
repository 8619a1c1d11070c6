#if DS2_SSE42
  import _Builtin_intrinsics.intel
#endif

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78; the checksum of iSCSI, ext4,
/// LevelDB and TFRecord), as stored in every record of format version 2.
///
/// x86-64 builds for SSE 4.2 (the default build) use the `crc32` instruction on three
/// lanes at once; other builds use slicing-by-8 tables. Both give the same value (tested, with the
/// RFC 3720 check values).
public enum CRC32C {
  /// The CRC of `bytes`, continuing from `crc` (0 to start).
  public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
    #if DS2_SSE42
      return hardware(bytes, continuing: crc)
    #else
      return software(bytes, continuing: crc)
    #endif
  }

  /// The table-driven computation (any CPU).
  public static func software(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
    var c = ~crc
    var index = 0
    let count = bytes.count
    table.withUnsafeBufferPointer { t in
      while count - index >= 8 {
        let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self).littleEndian ^ UInt64(c)
        c = t[7 * 256 + Int(word & 0xff)] ^ t[6 * 256 + Int((word >> 8) & 0xff)]
          ^ t[5 * 256 + Int((word >> 16) & 0xff)] ^ t[4 * 256 + Int((word >> 24) & 0xff)]
          ^ t[3 * 256 + Int((word >> 32) & 0xff)] ^ t[2 * 256 + Int((word >> 40) & 0xff)]
          ^ t[1 * 256 + Int((word >> 48) & 0xff)] ^ t[Int(word >> 56)]
        index += 8
      }
      while index < count {
        c = t[Int((c ^ UInt32(bytes[index])) & 0xff)] ^ (c >> 8)
        index += 1
      }
    }
    return ~c
  }

  #if DS2_SSE42
    /// The SSE 4.2 `crc32` instruction. The instruction's latency is three times its
    /// throughput, so long inputs are cut into rounds of three equal lanes computed
    /// together and joined by multiplying by powers of x (CRC(A‖B) from CRC(A), CRC(B) and
    /// |B|), by table.
    public static func hardware(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
      var c = UInt64(~crc)
      var index = 0
      let count = bytes.count
      for lane in laneSizes {
        while count - index >= 3 * lane.bytes {
          var b: UInt64 = 0
          var d: UInt64 = 0
          let a0 = index
          let b0 = index + lane.bytes
          let c0 = index + 2 * lane.bytes
          var offset = 0
          while offset < lane.bytes {
            c = _mm_crc32_u64(c, bytes.loadUnaligned(fromByteOffset: a0 + offset, as: UInt64.self))
            b = _mm_crc32_u64(b, bytes.loadUnaligned(fromByteOffset: b0 + offset, as: UInt64.self))
            d = _mm_crc32_u64(d, bytes.loadUnaligned(fromByteOffset: c0 + offset, as: UInt64.self))
            offset += 8
          }
          let joined = lane.twice.apply(UInt32(truncatingIfNeeded: c)) ^ lane.once.apply(UInt32(truncatingIfNeeded: b))
          c = UInt64(joined ^ UInt32(truncatingIfNeeded: d))
          index += 3 * lane.bytes
        }
      }
      while count - index >= 8 {
        c = _mm_crc32_u64(c, bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self))
        index += 8
      }
      var c32 = UInt32(truncatingIfNeeded: c)
      while index < count {
        c32 = _mm_crc32_u8(c32, bytes[index])
        index += 1
      }
      return ~c32
    }

    /// Lane sizes in bytes, with multiplication by x^(8·bytes) and x^(16·bytes) mod P.
    static let laneSizes: [(bytes: Int, once: ConstantMultiplier, twice: ConstantMultiplier)] = [4096, 256].map { bytes in
      (bytes, ConstantMultiplier(powerOfX(8 * bytes)), ConstantMultiplier(powerOfX(16 * bytes)))
    }

    /// The lane size of loops that also store what they read (decoding), in bytes: a
    /// constant, so that the loops' offsets are. Their three lanes then lie within 768
    /// bytes, one stream for the prefetcher (lanes of 1,344 or 4,096 bytes made the decoding
    /// of float16 records 20–40 % slower).
    static let storingLaneBytes = 256
    static var storingLane: (bytes: Int, once: ConstantMultiplier, twice: ConstantMultiplier) { laneSizes[1] }
  #endif

  /// Multiplication mod P by a fixed factor, by table: the product is linear in the other
  /// factor, so it is the XOR of the products of its four bytes, each looked up (4 loads
  /// instead of `multiply`'s 32 steps — the join of every three-lane round).
  struct ConstantMultiplier: Sendable {
    /// `table[256·j + b]` = factor · (b << 8j).
    let table: [UInt32]

    init(_ factor: UInt32) {
      var table = [UInt32](repeating: 0, count: 4 * 256)
      for j in 0..<4 {
        for b in 0..<256 { table[256 * j + b] = CRC32C.multiply(factor, UInt32(b) << (8 * j)) }
      }
      self.table = table
    }

    /// factor · value mod P.
    @inline(__always)
    func apply(_ value: UInt32) -> UInt32 {
      table.withUnsafeBufferPointer { t in
        t[Int(value & 0xff)] ^ t[256 + Int((value >> 8) & 0xff)] ^ t[512 + Int((value >> 16) & 0xff)] ^ t[768 + Int(value >> 24)]
      }
    }
  }

  /// a·b mod P, both reflected (bit 31 is x⁰).
  static func multiply(_ a: UInt32, _ b: UInt32) -> UInt32 {
    var product: UInt32 = 0
    var mask: UInt32 = 1 << 31
    var b = b
    while mask != 0 {
      if a & mask != 0 { product ^= b }
      mask >>= 1
      b = b & 1 != 0 ? (b >> 1) ^ 0x82F6_3B78 : b >> 1
    }
    return product
  }

  /// x^n mod P, reflected.
  static func powerOfX(_ n: Int) -> UInt32 {
    var result: UInt32 = 1 << 31  // x⁰
    var square: UInt32 = 1 << 30  // x¹
    var n = n
    while n > 0 {
      if n & 1 != 0 { result = multiply(result, square) }
      square = multiply(square, square)
      n >>= 1
    }
    return result
  }

  /// Slicing-by-8 tables: `table[k·256 + b]` is the CRC of byte `b` followed by `k` zero bytes.
  static let table: [UInt32] = {
    var table = [UInt32](repeating: 0, count: 8 * 256)
    for b in 0..<256 {
      var c = UInt32(b)
      for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
      table[b] = c
    }
    for k in 1..<8 {
      for b in 0..<256 {
        let previous = table[(k - 1) * 256 + b]
        table[k * 256 + b] = table[Int(previous & 0xff)] ^ (previous >> 8)
      }
    }
    return table
  }()
}
