import DS2Core

/// Conversion of feature values to and from their stored little-endian form (decoding:
/// FeatureDecoding.swift).
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

  /// The float16 bits of the nearest binary16 value at or below (`.down`) or at or above
  /// (`.up`) a finite `value` of binary16 range (the 8-bit parameters: log spectrogram
  /// values lie within ±104).
  static func halfBits(_ value: Float, rounding direction: FloatingPointRoundingRule) -> UInt16 {
    let bits = halfBits(value)
    let nearest = float(fromHalf: bits)
    let negative = bits & 0x8000 != 0
    switch direction {
    case .down where nearest > value:
      return bits == 0 ? 0x8001 : negative ? bits + 1 : bits - 1
    case .up where nearest < value:
      return bits == 0x8000 ? 0x0001 : negative ? bits - 1 : bits + 1
    default:
      return bits
    }
  }

  /// Writes `values` (`frames × bins`, row-major) as `dtype` (little-endian) into
  /// `destination`.
  public static func encode(
    _ values: UnsafeBufferPointer<Float>, bins: Int, into destination: UnsafeMutableRawBufferPointer, as dtype: FeatureDType
  ) {
    precondition(bins > 0 && values.count % bins == 0, "whole frames of bins")
    precondition(destination.count == dtype.featureBlockBytes(frames: values.count / bins, bins: bins), "destination size must match")
    switch dtype {
    case .float16:
      for i in 0..<values.count {
        destination.storeBytes(of: halfBits(values[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
      }
    case .float32:
      for i in 0..<values.count {
        destination.storeBytes(of: values[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
      }
    case .uint8:
      var copy = Array(values)
      copy.withUnsafeMutableBufferPointer { quantize8($0, bins: bins, into: destination) }
    }
  }

  /// Writes `values` (`frames × bins`) as `dtype` into `destination` and replaces each
  /// value by what a reader will decode (float16 or 8-bit rounding), in one pass.
  public static func encodeAndQuantize(
    _ values: UnsafeMutableBufferPointer<Float>, bins: Int, into destination: UnsafeMutableRawBufferPointer,
    as dtype: FeatureDType
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
      encode(UnsafeBufferPointer(values), bins: bins, into: destination, as: dtype)
    case .uint8:
      precondition(bins > 0 && destination.count == dtype.featureBlockBytes(frames: values.count / bins, bins: bins))
      quantize8(values, bins: bins, into: destination)
    }
  }

  /// The 8-bit scheme (docs/FORMAT.md §3.1): per bin k over the record's frames,
  /// `minimum[k]` = the smallest value rounded down to float16 and `step[k]` =
  /// `(maximum − minimum[k]) / 255` rounded up to float16; code =
  /// round-to-nearest((x − minimum) / step) in 0 … 255 (0 when step is 0). Writes
  /// `minimum[bins]`, `step[bins]` (float16), then the codes (`frames × bins` bytes), and
  /// replaces each value by `minimum + Float(code) · step`, what readers decode.
  static func quantize8(_ values: UnsafeMutableBufferPointer<Float>, bins: Int, into destination: UnsafeMutableRawBufferPointer) {
    let frames = values.count / bins
    guard frames > 0, let base = values.baseAddress, let out = destination.baseAddress else { return }
    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 4 * bins)
    defer { scratch.deallocate() }
    do {
      let minimum = scratch
      let maximum = minimum + bins
      let step = minimum + 2 * bins
      let inverse = minimum + 3 * bins
      minimum.update(from: base, count: bins)
      maximum.update(from: base, count: bins)
      for t in 1..<max(1, frames) {
        let row = base + t * bins
        for k in 0..<bins {
          minimum[k] = Swift.min(minimum[k], row[k])
          maximum[k] = Swift.max(maximum[k], row[k])
        }
      }
      for k in 0..<bins {
        let minimumBits = halfBits(minimum[k], rounding: .down)
        minimum[k] = float(fromHalf: minimumBits)
        let range = maximum[k] - minimum[k]
        let stepBits: UInt16 = range.isFinite && range > 0 ? halfBits(range / 255, rounding: .up) : 0
        step[k] = float(fromHalf: stepBits)
        inverse[k] = step[k] > 0 ? 1 / step[k] : 0
        out.storeBytes(of: minimumBits.littleEndian, toByteOffset: 2 * k, as: UInt16.self)
        out.storeBytes(of: stepBits.littleEndian, toByteOffset: 2 * (bins + k), as: UInt16.self)
      }
      let codes = (out + 4 * bins).assumingMemoryBound(to: UInt8.self)
      for t in 0..<frames {
        let row = base + t * bins
        let codeRow = codes + t * bins
        for k in 0..<bins {
          // Clamped to 0 … 255 (NaN, never written: features are finite, maps to 0 through
          // the clamp's order), then rounded to nearest, ties to even, by adding 2²³: the
          // sum's low mantissa bits are the code. Branch-free, so the loop vectorizes.
          let clamped = Swift.min(255, Swift.max(0, (row[k] - minimum[k]) * inverse[k]))
          let shifted = clamped + 8_388_608
          codeRow[k] = UInt8(truncatingIfNeeded: shifted.bitPattern)
          row[k] = minimum[k] + (shifted - 8_388_608) * step[k]
        }
      }
    }
  }
}
