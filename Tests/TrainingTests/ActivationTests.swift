import Foundation
import XCTest

@testable import Training

final class ActivationTests: XCTestCase {
  func testClippedReLUAndItsDerivative() {
    XCTAssertEqual([-3.0, 0, 0.5, 19.5, 20, 25].map(ClippedReLU.apply), [0, 0, 0.5, 19.5, 20, 20])
    XCTAssertEqual([0.0, 0.5, 19.5, 20].map { ClippedReLU.derivative(output: $0) }, [0, 1, 1, 0])
  }

  /// Row-wise softmax and log-softmax against the definition, including rows with large
  /// values that would overflow a naive exp.
  func testSoftmaxMatchesDefinition() {
    let x = Tensor<Double>(shape: [2, 1, 3], scalars: [1, 2, 3, 1000, 1001, 999])
    let logProbabilities = Softmax.logProbabilities(x)
    let probabilities = Softmax.probabilities(x)
    let rows: [[Double]] = [[1, 2, 3], [1, 2, 0]]  // the second row shifted by 999 (softmax is shift-invariant)
    for (r, row) in rows.enumerated() {
      let sum = row.map { exp($0) }.reduce(0, +)
      for k in 0..<3 {
        XCTAssertEqual(probabilities[r, 0, k], exp(row[k]) / sum, accuracy: 1e-12)
        XCTAssertEqual(logProbabilities[r, 0, k], row[k] - log(sum), accuracy: 1e-12)
      }
    }
    let floats = Softmax.probabilities(Tensor<Float>(shape: [1, 4], scalars: [0, 0, 0, 0]))
    XCTAssertEqual(floats.scalars, [0.25, 0.25, 0.25, 0.25])
  }

  /// Float's tanh (a rational approximation) against Double's over the whole useful range.
  func testFloatTanhIsAccurate() {
    var worst = 0.0
    for i in -200_000...200_000 {
      let x = Float(i) * 1e-4
      worst = max(worst, abs(Double(Float.tanh(x)) - Foundation.tanh(Double(x))))
    }
    XCTAssertLessThan(worst, 5e-7, "a few ulp")
    XCTAssertEqual(Float.tanh(100), 1, accuracy: 1e-7)
    XCTAssertEqual(Float.tanh(-100), -1, accuracy: 1e-7)
    XCTAssertEqual(Float.tanh(1e-6), 1e-6)
  }
}
