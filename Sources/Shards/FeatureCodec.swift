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

  /// 16 little-endian float16 values → Float, as `float(fromHalf:)` converts one.
  @inline(__always)
  static func floats(fromHalves halves: SIMD16<UInt16>) -> SIMD16<Float> {
    // Widened lane by lane: `SIMD16<UInt32>(truncatingIfNeeded:)` stays a generic call.
    var h = SIMD16<UInt32>()
    for j in 0..<16 { h[j] = UInt32(UInt16(littleEndian: halves[j])) }
    var f = unsafeBitCast((h & 0x7fff) &<< 13, to: SIMD16<Float>.self) * Float(bitPattern: (254 - 15) << 23)
    let special = f .>= Float(bitPattern: (127 + 16) << 23)
    f.replace(with: unsafeBitCast(unsafeBitCast(f, to: SIMD16<UInt32>.self) | (255 << 23), to: SIMD16<Float>.self), where: special)
    return unsafeBitCast(unsafeBitCast(f, to: SIMD16<UInt32>.self) | ((h & 0x8000) &<< 16), to: SIMD16<Float>.self)
  }

  /// Converts `count` little-endian float16 values at the start of `source` (any
  /// alignment) to Float, into `destination`; a plain loop, vectorized by the compiler.
  @inline(__always)
  static func convertHalves(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutablePointer<Float>, count: Int) {
    guard count > 0, let base = source.baseAddress else { return }
    for j in 0..<count {
      destination[j] = float(fromHalf: UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 &* j, as: UInt16.self)))
    }
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

  /// The decoding loops, feeding every byte to the CRC when `checking` (a constant at each
  /// caller, so each gets its own loops): float16 by 32-byte vectors, float32 and 8-bit
  /// codes by 8-byte words, the tail by element.
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
    /// Continues the CRC over `tail` when checking.
    @inline(__always) func checkedTail(_ tail: UnsafeRawBufferPointer, _ crc: inout UInt64) {
      if checking { crc = UInt64(~CRC32C.checksum(tail, continuing: ~UInt32(truncatingIfNeeded: crc))) }
    }
    let values = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
      // The CRC register as a local of this closure: the captured `c` would live in memory.
      var a = c
      switch dtype {
      case .float16:
        // Checked, the rounds of `checkedSteps` convert 16 halves at a time by vectors; then
        // the rest (all of it when not checking) by a loop the compiler vectorizes.
        let destination = buffer.baseAddress!
        var i = 0
        #if DS2_SSE42
          if checking {
            i = checkedSteps(bytes, byteCount: 2 * count, crc: &a) { offset in
              let halves = bytes.loadUnaligned(fromByteOffset: offset, as: SIMD16<UInt16>.self)
              UnsafeMutableRawPointer(destination).storeBytes(
                of: floats(fromHalves: halves), toByteOffset: 2 * offset, as: SIMD16<Float>.self)
            } / 2
          }
        #endif
        let rest = UnsafeRawBufferPointer(rebasing: bytes[(2 * i)..<(2 * count)])
        checkedTail(rest, &a)
        convertHalves(rest, into: destination + i, count: count - i)
      case .float32:
        // Checked, the rounds of `checkedSteps` copy 32 bytes at a time; then the rest (all
        // of it when not checking) by a memory copy.
        var i = 0
        #if DS2_SSE42 && _endian(little)
          if checking {
            let out = UnsafeMutableRawPointer(buffer.baseAddress!)
            i = checkedSteps(bytes, byteCount: 4 * count, crc: &a) { offset in
              out.storeBytes(
                of: bytes.loadUnaligned(fromByteOffset: offset, as: SIMD8<UInt32>.self), toByteOffset: offset, as: SIMD8<UInt32>.self)
            } / 4
          }
        #endif
        let rest = UnsafeRawBufferPointer(rebasing: bytes[(4 * i)..<(4 * count)])
        checkedTail(rest, &a)
        #if _endian(little)
          UnsafeMutableRawPointer(buffer.baseAddress! + i).copyMemory(from: rest.baseAddress!, byteCount: rest.count)
        #else
          for j in i..<count {
            buffer[j] = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * j, as: UInt32.self)))
          }
        #endif
      case .uint8:
        // The per-bin parameters (minimum, step: float16, or float32 before record
        // version 3), then the codes row by row.
        let width = FeatureDType.quantizationParameterBytes(recordVersion: recordVersion) / 2
        let parameters = UnsafeRawBufferPointer(rebasing: bytes[0..<(2 * width * bins)])
        if checking { a = UInt64(~CRC32C.checksum(parameters, continuing: ~UInt32(truncatingIfNeeded: a))) }
        let table = UnsafeMutableBufferPointer<Float>.allocate(capacity: 2 * bins)
        defer { table.deallocate() }
        for k in 0..<(2 * bins) {
          table[k] =
            width == 2
            ? float(fromHalf: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self)))
            : Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self)))
        }
        let codes = UnsafeRawBufferPointer(rebasing: bytes[(2 * width * bins)...])
        // Blocks of whole rows of at least 768 bytes: the block's CRC (three lanes), then its
        // rows by a loop over bins that the compiler vectorizes. (Interleaving the two as
        // float16 does was slower here: the 16-value vectors start anywhere in a row.)
        guard let minimum = table.baseAddress, let codeBase = codes.baseAddress, let out = buffer.baseAddress else { break }
        let step = minimum + bins
        let rowsPerBlock = max(1, (768 + bins - 1) / bins)
        var row = 0
        while row < frames {
          let rows = min(rowsPerBlock, frames - row)
          checkedTail(UnsafeRawBufferPointer(rebasing: codes[(row * bins)..<((row + rows) * bins)]), &a)
          for t in row..<(row + rows) {
            let source = codeBase + t * bins
            let destination = out + t * bins
            for k in 0..<bins { destination[k] = minimum[k] + Float(source.load(fromByteOffset: k, as: UInt8.self)) * step[k] }
          }
          row += rows
        }
      }
      c = a
      initialized = count
    }
    return (values, ~UInt32(truncatingIfNeeded: c))
  }

  #if DS2_SSE42
    /// Puts whole rounds of 3 × 256 bytes from the start of `bytes` (at most `byteCount`)
    /// through the CRC (`crc`, the register, not inverted) and calls `body(offset)` for each
    /// 32 bytes of them, and returns how many bytes that covered. A round is read as three
    /// streams, 256 bytes apart: each step puts four words of each stream through `crc32`
    /// (three chains, so the instruction's latency does not limit) and calls `body` for the
    /// same three 32-byte pieces, which a vectorized body converts while the CRC's port works.
    /// The streams' partial CRCs are joined as `CRC32C.hardware` joins them.
    @inline(__always)
    static func checkedSteps(
      _ bytes: UnsafeRawBufferPointer, byteCount: Int, crc: inout UInt64, _ body: (Int) -> Void
    ) -> Int {
      let lane = CRC32C.storingLane
      let n = CRC32C.storingLaneBytes
      var a = crc
      var start = 0
      while byteCount - start >= 3 * n {
        var b: UInt64 = 0
        var d: UInt64 = 0
        var o = 0
        while o < n {
          for k in stride(from: 0, to: 32, by: 8) {
            a = _mm_crc32_u64(a, bytes.loadUnaligned(fromByteOffset: start + o + k, as: UInt64.self))
            b = _mm_crc32_u64(b, bytes.loadUnaligned(fromByteOffset: start + n + o + k, as: UInt64.self))
            d = _mm_crc32_u64(d, bytes.loadUnaligned(fromByteOffset: start + 2 * n + o + k, as: UInt64.self))
          }
          body(start + o)
          body(start + n + o)
          body(start + 2 * n + o)
          o += 32
        }
        a = UInt64(
          lane.twice.apply(UInt32(truncatingIfNeeded: a)) ^ lane.once.apply(UInt32(truncatingIfNeeded: b))
            ^ UInt32(truncatingIfNeeded: d))
        start += 3 * n
      }
      crc = a
      return start
    }
  #endif
}
