#if DS2_SSE42
  import _Builtin_intrinsics.intel
#endif

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78; the checksum of iSCSI, ext4,
/// LevelDB and TFRecord), as stored in every record of format version 2.
///
/// x86-64 builds for SSE 4.2 (the default build) use the `crc32` instruction, 8 bytes at a
/// time; other builds use slicing-by-8 tables. Both give the same value (tested, with the
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
    /// The SSE 4.2 `crc32` instruction, 8 bytes at a time.
    public static func hardware(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
      var c = UInt64(~crc)
      var index = 0
      let count = bytes.count
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
  #endif

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
