import DS2Core
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

  /// IEEE binary16 bits → Float, exactly like `Float(Float16(bitPattern:))` (subnormals,
  /// infinities and NaN included), without a library call.
  @inline(__always)
  public static func float(fromHalf bits: UInt16) -> Float {
    let magic = Float(bitPattern: (254 - 15) << 23)
    let infinityOrNaN = Float(bitPattern: (127 + 16) << 23)
    var f = Float(bitPattern: UInt32(bits & 0x7fff) << 13) * magic
    if f >= infinityOrNaN { f = Float(bitPattern: f.bitPattern | (255 << 23)) }
    return Float(bitPattern: f.bitPattern | (UInt32(bits & 0x8000) << 16))
  }

  /// Writes `values` as `dtype` (little-endian) into `destination`.
  public static func encode(
    _ values: UnsafeBufferPointer<Float>, into destination: UnsafeMutableRawBufferPointer, as dtype: FeatureDType
  ) {
    precondition(destination.count == values.count * dtype.byteWidth, "destination size must match")
    switch dtype {
    case .float16:
      for i in 0..<values.count {
        destination.storeBytes(of: halfBits(values[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
      }
    case .float32:
      for i in 0..<values.count {
        destination.storeBytes(of: values[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
      }
    }
  }

  /// Writes `values` as `dtype` into `destination` and replaces each value by what a
  /// reader will decode (float16 rounding), in one pass.
  public static func encodeAndQuantize(
    _ values: UnsafeMutableBufferPointer<Float>, into destination: UnsafeMutableRawBufferPointer, as dtype: FeatureDType
  ) {
    switch dtype {
    case .float16:
      precondition(destination.count == values.count * 2, "destination size must match")
      for i in 0..<values.count {
        let bits = halfBits(values[i])
        destination.storeBytes(of: bits.littleEndian, toByteOffset: 2 * i, as: UInt16.self)
        values[i] = float(fromHalf: bits)
      }
    case .float32:
      encode(UnsafeBufferPointer(values), into: destination, as: dtype)
    }
  }

  /// Decodes `count` values stored as `dtype`.
  public static func decode(_ bytes: UnsafeRawBufferPointer, count: Int, as dtype: FeatureDType) -> [Float] {
    precondition(bytes.count >= count * dtype.byteWidth, "not enough bytes")
    return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
      switch dtype {
      case .float16:
        for i in 0..<count {
          buffer[i] = float(fromHalf: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian)
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
