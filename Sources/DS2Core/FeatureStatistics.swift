/// Exact per-bin mean and variance of a set of feature frames, mergeable across parts.
///
/// Holds, per bin, the count, the mean and the sum of squared deviations (M2), in Double.
/// `merge(_:)` uses Chan et al.'s pairwise update, so statistics of a corpus computed as
/// the ordered merge of per-shard (or per-partition) accumulators equal those of one pass,
/// up to Double rounding. Merging in a fixed order gives bit-identical results.
public struct FeatureStatistics: Sendable, Equatable, Codable {
  /// Number of frames accumulated (every bin sees every frame).
  public private(set) var count: Int
  /// Per-bin mean.
  public private(set) var mean: [Double]
  /// Per-bin sum of squared deviations from the mean.
  public private(set) var m2: [Double]

  public init(bins: Int) {
    count = 0
    mean = [Double](repeating: 0, count: bins)
    m2 = [Double](repeating: 0, count: bins)
  }

  public init(count: Int, mean: [Double], m2: [Double]) {
    precondition(mean.count == m2.count, "mean and m2 must have one value per bin")
    self.count = count
    self.mean = mean
    self.m2 = m2
  }

  public var bins: Int { mean.count }

  enum CodingKeys: String, CodingKey { case count, mean, m2 }

  /// Decodes and checks the shape: one mean and one M2 per bin, a count ≥ 0.
  /// - Throws: `DecodingError.dataCorrupted` otherwise.
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    count = try c.decode(Int.self, forKey: .count)
    mean = try c.decode([Double].self, forKey: .mean)
    m2 = try c.decode([Double].self, forKey: .m2)
    guard count >= 0, mean.count == m2.count else {
      throw DecodingError.dataCorrupted(
        .init(codingPath: decoder.codingPath, debugDescription: "statistics need count ≥ 0 and one mean and one m2 per bin"))
    }
  }

  /// Per-bin population variance (M2 / count); 0 when empty.
  public var variance: [Double] {
    count == 0 ? m2.map { _ in 0 } : m2.map { $0 / Double(count) }
  }

  /// Per-bin population standard deviation.
  public var standardDeviation: [Double] { variance.map { $0.squareRoot() } }

  /// Accumulates the frames of one `frames × bins` row-major block.
  ///
  /// One pass in Double over values shifted by the block's first frame (`d = x − x₀`):
  /// `mean = x₀ + Σd/n`, `M2 = Σd² − (Σd)²/n`. The shift keeps the sums small, so the
  /// result equals the two-pass computation to Double rounding (tests compare them).
  public mutating func add(frames: Int, values: UnsafeBufferPointer<Float>) {
    precondition(values.count == frames * bins, "block does not match bins")
    guard frames > 0, let base = values.baseAddress else { return }
    var block = FeatureStatistics(bins: bins)
    block.count = frames
    let n = Double(frames)
    var sums = [Double](repeating: 0, count: bins)
    var squares = [Double](repeating: 0, count: bins)
    sums.withUnsafeMutableBufferPointer { sums in
      squares.withUnsafeMutableBufferPointer { squares in
        for t in 1..<max(frames, 1) {
          let row = base + t * bins
          for k in 0..<bins {
            let d = Double(row[k]) - Double(base[k])
            sums[k] += d
            squares[k] += d * d
          }
        }
      }
    }
    for k in 0..<bins {
      block.mean[k] = Double(base[k]) + sums[k] / n
      block.m2[k] = max(0, squares[k] - sums[k] * sums[k] / n)
    }
    merge(block)
  }

  /// Merges another accumulator into this one (Chan et al. 1979).
  public mutating func merge(_ other: FeatureStatistics) {
    precondition(other.bins == bins, "cannot merge statistics with different bin counts")
    guard other.count > 0 else { return }
    guard count > 0 else {
      self = other
      return
    }
    let na = Double(count)
    let nb = Double(other.count)
    let n = na + nb
    for k in 0..<bins {
      let delta = other.mean[k] - mean[k]
      mean[k] += delta * nb / n
      m2[k] += other.m2[k] + delta * delta * na * nb / n
    }
    count += other.count
  }
}
