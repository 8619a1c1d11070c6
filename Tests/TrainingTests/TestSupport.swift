import XCTest

@testable import Training

/// Naive row-major `alpha · op(A) · op(B) + beta · C` by the definition, the reference for gemm.
func naiveGemm<Scalar: TensorScalar>(
  _ a: Tensor<Scalar>, _ transposeA: Bool, _ b: Tensor<Scalar>, _ transposeB: Bool,
  alpha: Scalar, beta: Scalar, c: Tensor<Scalar>
) -> Tensor<Scalar> {
  let m = transposeA ? a.shape[1] : a.shape[0]
  let k = transposeA ? a.shape[0] : a.shape[1]
  let n = transposeB ? b.shape[0] : b.shape[1]
  var result = c
  for i in 0..<m {
    for j in 0..<n {
      var sum: Scalar = 0
      for p in 0..<k {
        sum += (transposeA ? a[p, i] : a[i, p]) * (transposeB ? b[j, p] : b[p, j])
      }
      result[i, j] = alpha * sum + beta * c[i, j]
    }
  }
  return result
}

/// A tensor with elements uniform in `[-bound, bound)` from a seeded generator.
func randomTensor<Scalar: TensorScalar>(_ shape: [Int], seed: UInt64, bound: Double = 1) -> Tensor<Scalar> {
  var generator = Xoshiro256StarStar(seed: seed)
  return generator.uniformTensor(shape: shape, bound: bound)
}

/// Σ y ⊙ weights: a scalar loss whose gradient with respect to `y` is `weights`.
func weightedSum(_ y: Tensor<Double>, _ weights: Tensor<Double>) -> Double {
  precondition(y.shape == weights.shape)
  return zip(y.scalars, weights.scalars).reduce(0) { $0 + $1.0 * $1.1 }
}

/// Central differences `(f(x + h) − f(x − h)) / 2h` of `loss` with respect to every element of
/// the tensor reached through `tensor` (read and written in place).
func numericalGradient(
  of tensor: ReferenceWritableKeyPath<Parameter<Double>, Tensor<Double>>, in parameter: Parameter<Double>,
  step: Double = 1e-6, loss: () -> Double
) -> [Double] {
  (0..<parameter[keyPath: tensor].count).map { index in
    let original = parameter[keyPath: tensor].scalars[index]
    parameter[keyPath: tensor].scalars[index] = original + step
    let plus = loss()
    parameter[keyPath: tensor].scalars[index] = original - step
    let minus = loss()
    parameter[keyPath: tensor].scalars[index] = original
    return (plus - minus) / (2 * step)
  }
}

/// Central differences of `loss(x)` with respect to every element of `x`.
func numericalGradient(of x: Tensor<Double>, step: Double = 1e-6, loss: (Tensor<Double>) -> Double) -> [Double] {
  (0..<x.count).map { index in
    var shifted = x
    shifted.scalars[index] = x.scalars[index] + step
    let plus = loss(shifted)
    shifted.scalars[index] = x.scalars[index] - step
    let minus = loss(shifted)
    return (plus - minus) / (2 * step)
  }
}

/// Asserts `|actual − expected| ≤ absolute + relative · max(|actual|, |expected|)` elementwise.
func assertClose(
  _ actual: [Double], _ expected: [Double], absolute: Double = 1e-7, relative: Double = 1e-5,
  _ message: String = "", file: StaticString = #filePath, line: UInt = #line
) {
  XCTAssertEqual(actual.count, expected.count, "count mismatch \(message)", file: file, line: line)
  var worst = 0.0
  var worstIndex = -1
  for (index, (a, e)) in zip(actual, expected).enumerated() {
    let excess = abs(a - e) - (absolute + relative * max(abs(a), abs(e)))
    if !(excess <= 0) && (worstIndex < 0 || excess > worst || excess.isNaN) {
      worst = excess
      worstIndex = index
    }
  }
  if worstIndex >= 0 {
    XCTFail("\(message): element \(worstIndex) is \(actual[worstIndex]), expected \(expected[worstIndex])", file: file, line: line)
  }
}

/// Sets padding positions `t ≥ lengths[b]` of a `[T × N × …]` tensor to `value`.
func fillPadding(_ x: inout Tensor<Double>, lengths: [Int], value: Double) {
  let (steps, batch) = (x.shape[0], x.shape[1])
  let perPosition = x.count / (steps * batch)
  for t in 0..<steps {
    for b in 0..<batch where t >= lengths[b] {
      for i in 0..<perPosition { x.scalars[(t * batch + b) * perPosition + i] = value }
    }
  }
}

/// The valid part of utterance `b` of a `[T × N × …]` tensor as `[lengths[b] × 1 × …]`.
func utterance(_ x: Tensor<Double>, _ b: Int, length: Int) -> Tensor<Double> {
  let (steps, batch) = (x.shape[0], x.shape[1])
  let perPosition = x.count / (steps * batch)
  var scalars: [Double] = []
  for t in 0..<length {
    let start = (t * batch + b) * perPosition
    scalars += x.scalars[start..<(start + perPosition)]
  }
  var shape = x.shape
  shape[0] = length
  shape[1] = 1
  return Tensor(shape: shape, scalars: scalars)
}
