import DS2Core
internal import CPrefetch

#if DS2_SSE42
  import _Builtin_intrinsics.intel
#endif

/// value ↦ (value − subtract[bin]) · multiply[bin]: global normalization, applied by the
/// decoding loops as they convert, so that a read makes one pass over the values instead of
/// two. The same two operations in the same order as `FeatureNormalizer` applies them, so
/// the values are bit-identical to normalizing after decoding.
public struct BinTransform: Sendable {
  public let bins: Int
  /// `subtract`, then `multiply`, each `bins + 16` entries long: entry j is bin j mod
  /// bins, so that the 16 values of a vector that starts at any bin are one load.
  let table: [Float]

  /// - Precondition: `subtract` and `multiply` have the same, nonzero count.
  public init(subtract: [Float], multiply: [Float]) {
    precondition(!subtract.isEmpty && subtract.count == multiply.count, "one value per bin in each")
    bins = subtract.count
    table = Self.wrapped(subtract) + Self.wrapped(multiply)
  }

  /// The transform that changes nothing (subtracting 0 and multiplying by 1 are exact).
  static func identity(bins: Int) -> BinTransform {
    BinTransform(subtract: [Float](repeating: 0, count: bins), multiply: [Float](repeating: 1, count: bins))
  }

  /// `values` followed by its first 16 entries, repeated as often as needed.
  static func wrapped(_ values: [Float]) -> [Float] {
    (0..<(values.count + 16)).map { values[$0 % values.count] }
  }
}

/// `index mod bins` by two multiplications instead of a division (Lemire, Kaser and Kurz,
/// "Faster remainder by direct computation", 2019): exact for index and bins below 2³².
struct BinOfIndex {
  let bins: UInt64
  let magic: UInt64

  init(bins: Int) {
    self.bins = UInt64(bins)
    magic = UInt64.max / UInt64(bins) &+ 1
  }

  @inline(__always)
  func callAsFunction(_ index: Int) -> Int {
    Int(truncatingIfNeeded: (magic &* UInt64(truncatingIfNeeded: index)).multipliedFullWidth(by: bins).high)
  }
}

extension FeatureCodec {
  /// Decodes the `frames × bins` values of a feature block stored as `dtype` in a record of
  /// `recordVersion` (which sets the width of the 8-bit parameters), applying `transform`
  /// when it has `bins` bins.
  public static func decode(
    _ bytes: UnsafeRawBufferPointer, frames: Int, bins: Int, as dtype: FeatureDType,
    recordVersion: Int = FeatureDType.currentRecordVersion, transform: BinTransform? = nil
  ) -> [Float] {
    decoded(
      bytes, frames: frames, bins: bins, as: dtype, recordVersion: recordVersion, checking: false, continuing: 0,
      transform: transform
    ).values
  }

  /// Decodes as `decode` does and computes the CRC-32C of the block's bytes, continuing from
  /// `crc`, in the same pass: with the `crc32` instruction (SSE 4.2 builds) the checksum runs
  /// beside the conversion, instead of as a second pass over the record.
  public static func decodeChecking(
    _ bytes: UnsafeRawBufferPointer, frames: Int, bins: Int, as dtype: FeatureDType,
    recordVersion: Int = FeatureDType.currentRecordVersion, continuing crc: UInt32, transform: BinTransform? = nil
  ) -> (values: [Float], crc: UInt32) {
    #if DS2_SSE42
      return decoded(
        bytes, frames: frames, bins: bins, as: dtype, recordVersion: recordVersion, checking: true, continuing: crc,
        transform: transform)
    #else
      let block = UnsafeRawBufferPointer(
        rebasing: bytes[0..<dtype.featureBlockBytes(frames: frames, bins: bins, recordVersion: recordVersion)])
      return (
        decode(bytes, frames: frames, bins: bins, as: dtype, recordVersion: recordVersion, transform: transform),
        CRC32C.checksum(block, continuing: crc)
      )
    #endif
  }

  /// The decoding loops, feeding every byte to the CRC when `checking` (a constant at each
  /// caller, so each gets its own loops). Checked, the rounds of `checkedSteps` convert
  /// 32 bytes at a time by vectors beside the CRC; the rest (all of it when not checking) is
  /// converted row by row, by loops over bins that the compiler vectorizes.
  @inline(__always)
  static func decoded(
    _ bytes: UnsafeRawBufferPointer, frames: Int, bins: Int, as dtype: FeatureDType, recordVersion: Int, checking: Bool,
    continuing crc: UInt32, transform: BinTransform?
  ) -> (values: [Float], crc: UInt32) {
    let count = frames * bins
    let blockBytes = dtype.featureBlockBytes(frames: frames, bins: bins, recordVersion: recordVersion)
    precondition(bytes.count >= blockBytes, "not enough bytes")
    guard count > 0 else {
      // No values (a damaged header may say 0 frames): the block is at most parameters.
      return ([], checking ? CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<blockBytes]), continuing: crc) : crc)
    }
    let transform = transform?.bins == bins ? transform! : BinTransform.identity(bins: bins)
    // The vector steps find a value's bin by `BinOfIndex`, exact below 2³²; a larger block
    // (none is written) is converted row by row.
    let stepping = count < 1 << 32
    var c = UInt64(~crc)
    let values = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
      // The CRC register as a local of this closure: the captured `c` would live in memory.
      var a = c
      let out = buffer.baseAddress!
      let outBytes = UnsafeMutableRawPointer(out)
      transform.table.withUnsafeBufferPointer { table in
        let subtract = table.baseAddress!
        let multiply = subtract + (bins + 16)
        let subtractBytes = UnsafeRawPointer(subtract)
        let multiplyBytes = UnsafeRawPointer(multiply)
        let binOf = BinOfIndex(bins: bins)
        @inline(__always) func transformed16(_ values: SIMD16<Float>, at bin: Int) -> SIMD16<Float> {
          (values - subtractBytes.loadUnaligned(fromByteOffset: 4 * bin, as: SIMD16<Float>.self))
            * multiplyBytes.loadUnaligned(fromByteOffset: 4 * bin, as: SIMD16<Float>.self)
        }
        var i = 0
        switch dtype {
        case .float16:
          #if DS2_SSE42
            if checking && stepping {
              i =
                checkedSteps(bytes, byteCount: 2 * count, crc: &a) { offset in
                  let halves = bytes.loadUnaligned(fromByteOffset: offset, as: SIMD16<UInt16>.self)
                  outBytes.storeBytes(
                    of: transformed16(floats(fromHalves: halves), at: binOf(offset / 2)), toByteOffset: 2 * offset,
                    as: SIMD16<Float>.self)
                } / 2
            }
          #endif
          continueCRC(&a, over: UnsafeRawBufferPointer(rebasing: bytes[(2 * i)..<(2 * count)]), if: checking)
          forEachRowPiece(from: i, count: count, bins: bins, prefetching: bytes, valueBytes: 2) { row, bin in
            let half = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 &* (row &+ bin), as: UInt16.self))
            out[row &+ bin] = (float(fromHalf: half) - subtract[bin]) * multiply[bin]
          }
        case .float32:
          #if DS2_SSE42
            if checking && stepping {
              i =
                checkedSteps(bytes, byteCount: 4 * count, crc: &a) { offset in
                  // x86-64 (SSE 4.2 builds): little-endian, the stored order.
                  let bin = binOf(offset / 4)
                  let values = bytes.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
                  let result =
                    (values - subtractBytes.loadUnaligned(fromByteOffset: 4 * bin, as: SIMD8<Float>.self))
                    * multiplyBytes.loadUnaligned(fromByteOffset: 4 * bin, as: SIMD8<Float>.self)
                  outBytes.storeBytes(of: result, toByteOffset: offset, as: SIMD8<Float>.self)
                } / 4
            }
          #endif
          continueCRC(&a, over: UnsafeRawBufferPointer(rebasing: bytes[(4 * i)..<(4 * count)]), if: checking)
          forEachRowPiece(from: i, count: count, bins: bins, prefetching: bytes, valueBytes: 4) { row, bin in
            let bits = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 &* (row &+ bin), as: UInt32.self))
            out[row &+ bin] = (Float(bitPattern: bits) - subtract[bin]) * multiply[bin]
          }
        case .uint8:
          // The per-bin parameters (minimum, step: float16, or float32 before record
          // version 3), then the codes, row-major; the parameters wrapped as the transform's.
          let width = FeatureDType.quantizationParameterBytes(recordVersion: recordVersion) / 2
          let parameterBytes = 2 * width * bins
          continueCRC(&a, over: UnsafeRawBufferPointer(rebasing: bytes[0..<parameterBytes]), if: checking)
          let parameters = UnsafeMutableBufferPointer<Float>.allocate(capacity: 2 * (bins + 16))
          defer { parameters.deallocate() }
          func parameter(_ k: Int) -> Float {
            width == 2
              ? float(fromHalf: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self)))
              : Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self)))
          }
          for j in 0..<(bins + 16) {
            parameters[j] = parameter(j % bins)
            parameters[bins + 16 + j] = parameter(bins + j % bins)
          }
          let minimum = UnsafePointer(parameters.baseAddress!)
          let step = minimum + (bins + 16)
          let codes = UnsafeRawBufferPointer(rebasing: bytes[parameterBytes...])
          #if DS2_SSE42
            if checking && stepping {
              let minimumBytes = UnsafeRawPointer(minimum)
              let stepBytes = UnsafeRawPointer(step)
              @inline(__always) func convert16(_ offset: Int) {
                let bin = binOf(offset)
                let codes16 = codes.loadUnaligned(fromByteOffset: offset, as: SIMD16<UInt8>.self)
                var levels = SIMD16<Float>()
                for j in 0..<16 { levels[j] = Float(codes16[j]) }
                let values =
                  minimumBytes.loadUnaligned(fromByteOffset: 4 * bin, as: SIMD16<Float>.self) + levels
                  * stepBytes.loadUnaligned(fromByteOffset: 4 * bin, as: SIMD16<Float>.self)
                outBytes.storeBytes(of: transformed16(values, at: bin), toByteOffset: 4 * offset, as: SIMD16<Float>.self)
              }
              i = checkedSteps(codes, byteCount: count, crc: &a) { offset in
                convert16(offset)
                convert16(offset + 16)
              }
            }
          #endif
          continueCRC(&a, over: UnsafeRawBufferPointer(rebasing: codes[i..<count]), if: checking)
          forEachRowPiece(from: i, count: count, bins: bins, prefetching: nil, valueBytes: 1) { row, bin in
            let value = minimum[bin] + Float(codes[row &+ bin]) * step[bin]
            out[row &+ bin] = (value - subtract[bin]) * multiply[bin]
          }
        }
      }
      c = a
      initialized = count
    }
    return (values, ~UInt32(truncatingIfNeeded: c))
  }

  /// Continues the CRC (`crc`, the register, not inverted) over `bytes` when `checking`.
  @inline(__always)
  static func continueCRC(_ crc: inout UInt64, over bytes: UnsafeRawBufferPointer, if checking: Bool) {
    if checking { crc = UInt64(~CRC32C.checksum(bytes, continuing: ~UInt32(truncatingIfNeeded: crc))) }
  }

  /// How far ahead of the bytes being converted the loops ask for their cache lines. The
  /// hardware prefetcher stops at each 4 KiB page of a memory map, whose pages are not
  /// contiguous in memory: requested 3 KiB ahead, warm first reads of float32 shards were
  /// about 10 % faster and float16 4 % (1.5 and 6 KiB ahead: less).
  static let prefetchDistanceBytes = 3072

  /// Asks for the cache lines of `bytes[start ..< start + count]` (clipped to `bytes`).
  @inline(__always)
  static func prefetch(_ bytes: UnsafeRawBufferPointer, from start: Int, count: Int) {
    var offset = start
    let end = min(start + count, bytes.count)
    while offset < end {
      ds2_prefetch_for_reading(bytes.baseAddress! + offset)
      offset += 64
    }
  }

  /// Calls `body(rowStart, bin)` for every value index `rowStart + bin` in `start..<count`
  /// of a row-major block of `bins` columns: the rest of the row `start` falls in, then whole
  /// rows, each by an inner loop over bins (which the compiler vectorizes).
  /// Each row's bytes, `valueBytes` per value in `bytes`, are asked for
  /// `prefetchDistanceBytes` ahead (not for 8-bit codes, whose loops write four times the
  /// bytes they read: measured, it made them slower).
  @inline(__always)
  static func forEachRowPiece(
    from start: Int, count: Int, bins: Int, prefetching bytes: UnsafeRawBufferPointer?, valueBytes: Int,
    _ body: (Int, Int) -> Void
  ) {
    guard start < count else { return }
    var row = start - start % bins
    var first = start - row
    while row < count {
      if let bytes { prefetch(bytes, from: row * valueBytes + prefetchDistanceBytes, count: bins * valueBytes) }
      for bin in first..<bins { body(row, bin) }
      first = 0
      row += bins
    }
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
        prefetch(bytes, from: start + prefetchDistanceBytes, count: 3 * n)
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
