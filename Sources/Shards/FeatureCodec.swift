/// Conversion of feature values to and from their stored little-endian form.
public enum FeatureCodec {
  /// Float32 → IEEE binary16 bits, round to nearest even, like `Float16(x)`; overflow
  /// becomes ±infinity, NaN stays NaN. Branch-light so that loops over it vectorize.
  @inline(__always)
  public static func halfBits(_ value: Float) -> UInt16 {
    let f32Infinity: UInt32 = 255 << 23
    let f16Max: UInt32 = (127 + 16) << 23
    let denormMagic: UInt32 = ((127 - 15) + (23 - 10) + 1) << 23
    var u = value.bitPattern
    let sign = u & 0x8000_0000
    u ^= sign
    var out: UInt32
    if u >= f16Max {
      out = u > f32Infinity ? 0x7e00 : 0x7c00
    } else if u < (113 << 23) {
      let f = Float(bitPattern: u) + Float(bitPattern: denormMagic)
      out = f.bitPattern &- denormMagic
    } else {
      let mantissaOdd = (u >> 13) & 1
      u = u &+ (UInt32(bitPattern: Int32(15 - 127) << 23) &+ 0xfff)
      u = u &+ mantissaOdd
      out = u >> 13
    }
    return UInt16(truncatingIfNeeded: out | (sign >> 16))
  }

  /// Encodes `values` as `dtype` bytes (little-endian).
  public static func encode(_ values: [Float], as dtype: FeatureDType) -> [UInt8] {
    values.withUnsafeBufferPointer { encode($0, as: dtype) }
  }

  /// Encodes `values` as `dtype` bytes (little-endian).
  public static func encode(_ values: UnsafeBufferPointer<Float>, as dtype: FeatureDType) -> [UInt8] {
    let count = values.count * dtype.byteWidth
    return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
      let raw = UnsafeMutableRawBufferPointer(buffer)
      switch dtype {
      case .float16:
        for i in 0..<values.count {
          raw.storeBytes(of: halfBits(values[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
        }
      case .float32:
        for i in 0..<values.count {
          raw.storeBytes(of: values[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
        }
      }
      initialized = count
    }
  }

  /// The value a Float becomes after a round trip through `dtype`.
  @inline(__always)
  public static func quantize(_ value: Float, as dtype: FeatureDType) -> Float {
    dtype == .float32 ? value : Float(Float16(bitPattern: halfBits(value)))
  }

  /// Decodes `count` values stored as `dtype`.
  public static func decode(_ bytes: UnsafeRawBufferPointer, count: Int, as dtype: FeatureDType) -> [Float] {
    precondition(bytes.count >= count * dtype.byteWidth, "not enough bytes")
    return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
      switch dtype {
      case .float16:
        for i in 0..<count {
          let bits = bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian
          buffer[i] = Float(Float16(bitPattern: bits))
        }
      case .float32:
        for i in 0..<count {
          buffer[i] = Float(bitPattern: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).littleEndian)
        }
      }
      initialized = count
    }
  }
}
