/// The clipped rectified linear unit of DS2: `min(max(x, 0), 20)`.
public enum ClippedReLU {
  /// Upper clip value.
  public static let ceiling = 20.0

  /// `min(max(x, 0), 20)`.
  @inline(__always)
  public static func apply<Scalar: TensorScalar>(_ x: Scalar) -> Scalar {
    min(max(x, 0), Scalar(ceiling))
  }

  /// The derivative expressed through the output `y = apply(x)`: 1 where `0 < y < 20`, else 0
  /// (PyTorch's hardtanh convention at the two kinks).
  @inline(__always)
  public static func derivative<Scalar: TensorScalar>(output y: Scalar) -> Scalar {
    y > 0 && y < Scalar(ceiling) ? 1 : 0
  }
}

/// Logistic sigmoid `1 / (1 + e^(−x))`.
@inline(__always)
func sigmoid<Scalar: TensorScalar>(_ x: Scalar) -> Scalar {
  1 / (1 + Scalar.exp(-x))
}

/// Row-wise softmax and log-softmax over the last axis (the vocabulary for logits).
public enum Softmax {
  /// `exp(x − logsumexp(x))` for every row of the `rows × columns` view of `x`.
  @_specialize(exported: true, where Scalar == Float)
  public static func probabilities<Scalar: TensorScalar>(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
    var result = logProbabilities(x)
    result.withUnsafeMutableBufferPointer { values in
      for index in values.indices { values[index] = Scalar.exp(values[index]) }
    }
    return result
  }

  /// `x − logsumexp(x)` for every row of the `rows × columns` view of `x`.
  @_specialize(exported: true, where Scalar == Float)
  public static func logProbabilities<Scalar: TensorScalar>(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
    var result = x
    let columns = x.columns
    result.withUnsafeMutableBufferPointer { values in
      for row in 0..<x.rows {
        logNormalize(UnsafeMutableBufferPointer(rebasing: values[(row * columns)..<((row + 1) * columns)]))
      }
    }
    return result
  }

  /// Replaces `row` by `row − logsumexp(row)` and returns `logsumexp(row)`.
  @discardableResult
  static func logNormalize<Scalar: TensorScalar>(_ row: UnsafeMutableBufferPointer<Scalar>) -> Scalar {
    guard var maximum = row.first else { return -.infinity }
    for value in row where value > maximum { maximum = value }
    var sum: Scalar = 0
    for value in row { sum += Scalar.exp(value - maximum) }
    let logSum = maximum + Scalar.log(sum)
    for index in row.indices { row[index] -= logSum }
    return logSum
  }
}
