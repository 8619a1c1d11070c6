import XCTest

@testable import Training

final class BLASTests: XCTestCase {
  /// Every transpose combination on odd shapes, against the triple loop, in both precisions.
  func testGemmMatchesNaiveProductForAllTransposes() {
    for (m, n, k) in [(5, 3, 7), (1, 1, 1), (4, 9, 2), (13, 1, 6)] {
      for transposeA in [false, true] {
        for transposeB in [false, true] {
          let aShape = transposeA ? [k, m] : [m, k]
          let bShape = transposeB ? [n, k] : [k, n]
          let seed = UInt64(m * 100 + n * 10 + k)
          let aDouble: Tensor<Double> = randomTensor(aShape, seed: seed)
          let bDouble: Tensor<Double> = randomTensor(bShape, seed: seed + 1)
          let cDouble: Tensor<Double> = randomTensor([m, n], seed: seed + 2)
          var resultDouble = cDouble
          gemm(aDouble, transposed: transposeA, bDouble, transposed: transposeB, alpha: 0.7, beta: -1.3, into: &resultDouble)
          let expected = naiveGemm(aDouble, transposeA, bDouble, transposeB, alpha: 0.7, beta: -1.3, c: cDouble)
          assertClose(resultDouble.scalars, expected.scalars, absolute: 1e-12, relative: 1e-12, "double \(m)×\(n)×\(k) \(transposeA) \(transposeB)")

          let aFloat: Tensor<Float> = randomTensor(aShape, seed: seed)
          let bFloat: Tensor<Float> = randomTensor(bShape, seed: seed + 1)
          var resultFloat: Tensor<Float> = randomTensor([m, n], seed: seed + 2)
          gemm(aFloat, transposed: transposeA, bFloat, transposed: transposeB, alpha: 0.7, beta: -1.3, into: &resultFloat)
          assertClose(resultFloat.scalars.map(Double.init), expected.scalars, absolute: 1e-5, relative: 1e-5, "float \(m)×\(n)×\(k) \(transposeA) \(transposeB)")
        }
      }
    }
  }

  /// With beta = 0 the previous contents of C (even NaN) must not leak into the result.
  func testGemmWithZeroBetaIgnoresPreviousResult() {
    let a: Tensor<Double> = randomTensor([3, 4], seed: 1)
    let b: Tensor<Double> = randomTensor([4, 2], seed: 2)
    var c = Tensor<Double>(shape: [3, 2], repeating: .nan)
    gemm(a, b, into: &c)
    let expected = naiveGemm(a, false, b, false, alpha: 1, beta: 0, c: Tensor(shape: [3, 2]))
    assertClose(c.scalars, expected.scalars, absolute: 1e-12, relative: 1e-12)
  }

  /// Sub-matrix products with leading dimensions larger than the logical width (as the
  /// recurrent layer uses), and an empty inner dimension (only the beta term remains).
  func testPointerGemmHonoursLeadingDimensionsAndEmptyInnerDimension() {
    let a: Tensor<Double> = randomTensor([3, 5], seed: 3)  // use columns 1..<4 as a 3×3 block
    let b: Tensor<Double> = randomTensor([3, 2], seed: 4)
    var c = Tensor<Double>(shape: [3, 4], repeating: 1)  // write columns 0..<2
    a.withUnsafeBufferPointer { pa in
      b.withUnsafeBufferPointer { pb in
        c.withUnsafeMutableBufferPointer { pc in
          BLAS.gemm(
            transposeA: false, transposeB: false, m: 3, n: 2, k: 3, alpha: 1, a: pa.baseAddress! + 1, lda: 5,
            b: pb.baseAddress, ldb: 2, beta: 2, c: pc.baseAddress, ldc: 4, pool: .serial)
        }
      }
    }
    for i in 0..<3 {
      for j in 0..<2 {
        let expected = (0..<3).reduce(2.0) { $0 + a[i, $1 + 1] * b[$1, j] }
        XCTAssertEqual(c[i, j], expected, accuracy: 1e-12)
      }
      XCTAssertEqual(c[i, 2], 1)
      XCTAssertEqual(c[i, 3], 1)
    }
    var d = Tensor<Double>(shape: [2, 2], repeating: 3)
    d.withUnsafeMutableBufferPointer { pd in
      BLAS.gemm(
        transposeA: false, transposeB: false, m: 2, n: 2, k: 0, alpha: 1, a: nil, lda: 1,
        b: nil, ldb: 2, beta: 0.5, c: pd.baseAddress, ldc: 2, pool: .serial)
    }
    XCTAssertEqual(d.scalars, [1.5, 1.5, 1.5, 1.5])
  }
}
