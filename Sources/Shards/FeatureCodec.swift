import DS2Core

#if DS2_SSE42
  import _Builtin_intrinsics.intel
#endif
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

  /// Decodes the `frames × bins` values of a feature block stored as `dtype` in a record of
  /// `recordVersion` (which sets the width of the 8-bit parameters).
  public static func decode(
    _ bytes: UnsafeRawBufferPointer, frames: Int, bins: Int, as dtype: FeatureDType,
    recordVersion: Int = FeatureDType.currentRecordVersion
  ) -> [Float] {
    wordwise(bytes, frames: frames, bins: bins, as: dtype, recordVersion: recordVersion, checking: false, continuing: 0).values
  }

  /// Decodes the `frames × bins` values of a feature block stored as `dtype` and computes
  /// the CRC-32C of the block's bytes, continuing from `crc`, in the same pass: with the
  /// `crc32` instruction (SSE 4.2 builds) the checksum runs beside the conversion on each
  /// 8-byte word as it is loaded, instead of as a second pass over the record.
  public static func decodeChecking(
    _ bytes: UnsafeRawBufferPointer, frames: Int, bins: Int, as dtype: FeatureDType,
    recordVersion: Int = FeatureDType.currentRecordVersion, continuing crc: UInt32
  ) -> (values: [Float], crc: UInt32) {
    #if DS2_SSE42
      return wordwise(bytes, frames: frames, bins: bins, as: dtype, recordVersion: recordVersion, checking: true, continuing: crc)
    #else
      let block = UnsafeRawBufferPointer(
        rebasing: bytes[0..<dtype.featureBlockBytes(frames: frames, bins: bins, recordVersion: recordVersion)])
      return (
        decode(bytes, frames: frames, bins: bins, as: dtype, recordVersion: recordVersion),
        CRC32C.checksum(block, continuing: crc)
      )
    #endif
  }

  /// The decoding loops, 8 bytes at a time (the tail by element), feeding each word to the
  /// CRC when `checking` (a constant at each caller, so each gets its own loop).
  @inline(__always)
  static func wordwise(
    _ bytes: UnsafeRawBufferPointer, frames: Int, bins: Int, as dtype: FeatureDType, recordVersion: Int, checking: Bool,
    continuing crc: UInt32
  ) -> (values: [Float], crc: UInt32) {
    let count = frames * bins
    let blockBytes = dtype.featureBlockBytes(frames: frames, bins: bins, recordVersion: recordVersion)
    precondition(bytes.count >= blockBytes, "not enough bytes")
    guard count > 0 else {
      // No values (a damaged header may say 0 frames): the block is at most parameters.
      return ([], checking ? CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<blockBytes]), continuing: crc) : crc)
    }
    var c = UInt64(~crc)
    @inline(__always) func mix<T: FixedWidthInteger>(tail value: T) {
      #if DS2_SSE42
        if checking {
          withUnsafeBytes(of: value) { raw in
            for byte in raw { c = UInt64(_mm_crc32_u8(UInt32(truncatingIfNeeded: c), byte)) }
          }
        }
      #endif
    }
    let values = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
      switch dtype {
      case .float16:
        // One lane: converting four halves takes longer than the instruction's latency.
        var i = 0
        while count - i >= 4 {
          let word = bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt64.self)
          #if DS2_SSE42
            if checking { c = _mm_crc32_u64(c, word) }
          #endif
          let w = UInt64(littleEndian: word)
          buffer[i] = float(fromHalf: UInt16(truncatingIfNeeded: w))
          buffer[i + 1] = float(fromHalf: UInt16(truncatingIfNeeded: w >> 16))
          buffer[i + 2] = float(fromHalf: UInt16(truncatingIfNeeded: w >> 32))
          buffer[i + 3] = float(fromHalf: UInt16(truncatingIfNeeded: w >> 48))
          i += 4
        }
        while i < count {
          let half = bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
          mix(tail: half)
          buffer[i] = float(fromHalf: UInt16(littleEndian: half))
          i += 1
        }
      case .float32:
        let destination = UnsafeMutableRawPointer(buffer.baseAddress!)
        let words = forEachWord(bytes, byteCount: 4 * count, checking: checking, lanes: 3, crc: &c) { offset, word in
          #if _endian(little)
            // Two floats, already in this machine's order: one store.
            destination.storeBytes(of: word, toByteOffset: offset, as: UInt64.self)
          #else
            buffer[offset / 4] = Float(bitPattern: UInt32(truncatingIfNeeded: word))
            buffer[offset / 4 + 1] = Float(bitPattern: UInt32(truncatingIfNeeded: word >> 32))
          #endif
        }
        for i in (words / 4)..<count {
          let bits = bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)
          mix(tail: bits)
          buffer[i] = Float(bitPattern: UInt32(littleEndian: bits))
        }
      case .uint8:
        // The per-bin parameters (minimum, step: float16, or float32 before record
        // version 3), then the codes row by row.
        let width = FeatureDType.quantizationParameterBytes(recordVersion: recordVersion) / 2
        let parameters = UnsafeRawBufferPointer(rebasing: bytes[0..<(2 * width * bins)])
        if checking { c = UInt64(~CRC32C.checksum(parameters, continuing: ~UInt32(truncatingIfNeeded: c))) }
        let table = UnsafeMutableBufferPointer<Float>.allocate(capacity: 2 * bins)
        defer { table.deallocate() }
        for k in 0..<(2 * bins) {
          table[k] =
            width == 2
            ? float(fromHalf: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self)))
            : Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self)))
        }
        let codes = UnsafeRawBufferPointer(rebasing: bytes[(2 * width * bins)...])
        let words = forEachWord(codes, byteCount: count, checking: checking, lanes: 3, crc: &c) { offset, word in
          var w = word
          var k = offset % bins
          for j in 0..<8 {
            buffer[offset + j] = table[k] + Float(UInt8(truncatingIfNeeded: w)) * table[bins + k]
            w >>= 8
            k = k + 1 == bins ? 0 : k + 1
          }
        }
        for i in words..<count {
          let code = codes[i]
          mix(tail: code)
          buffer[i] = table[i % bins] + Float(code) * table[bins + i % bins]
        }
      }
      initialized = count
    }
    return (values, ~UInt32(truncatingIfNeeded: c))
  }

  /// Calls `body(offset, word)` for every whole 8-byte little-endian word of the first
  /// `byteCount` bytes and returns how many bytes that covered. When `checking`, the words
  /// also go through the CRC (`crc`, the register, not inverted); with `lanes` 3, in three
  /// interleaved lanes (rounds of 3 × 256 bytes joined as `CRC32C.hardware` joins them), so
  /// that the instruction's 3-cycle latency does not limit a body cheaper than that (float32);
  /// a dearer body (float16, 8-bit) hides it in one lane.
  @inline(__always)
  static func forEachWord(
    _ bytes: UnsafeRawBufferPointer, byteCount: Int, checking: Bool, lanes: Int, crc: inout UInt64,
    _ body: (Int, UInt64) -> Void
  ) -> Int {
    var offset = 0
    if lanes == 3 {
      // Three streams of words also give the body three independent chains (8-bit codes' bins).
      while byteCount - offset >= 3 * 256 {
        var b: UInt64 = 0
        var d: UInt64 = 0
        var o = 0
        while o < 256 {
          let wa = bytes.loadUnaligned(fromByteOffset: offset + o, as: UInt64.self)
          let wb = bytes.loadUnaligned(fromByteOffset: offset + 256 + o, as: UInt64.self)
          let wc = bytes.loadUnaligned(fromByteOffset: offset + 512 + o, as: UInt64.self)
          #if DS2_SSE42
            if checking {
              crc = _mm_crc32_u64(crc, wa)
              b = _mm_crc32_u64(b, wb)
              d = _mm_crc32_u64(d, wc)
            }
          #endif
          body(offset + o, UInt64(littleEndian: wa))
          body(offset + 256 + o, UInt64(littleEndian: wb))
          body(offset + 512 + o, UInt64(littleEndian: wc))
          o += 8
        }
        #if DS2_SSE42
          if checking {
            let lane = CRC32C.laneSizes[1]
            crc = UInt64(
              lane.twice.apply(UInt32(truncatingIfNeeded: crc)) ^ lane.once.apply(UInt32(truncatingIfNeeded: b))
                ^ UInt32(truncatingIfNeeded: d))
          }
        #else
          _ = (b, d)
        #endif
        offset += 3 * 256
      }
    }
    while byteCount - offset >= 8 {
      let word = bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
      #if DS2_SSE42
        if checking { crc = _mm_crc32_u64(crc, word) }
      #endif
      body(offset, UInt64(littleEndian: word))
      offset += 8
    }
    return offset
  }
}
