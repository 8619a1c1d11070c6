import XCTest

@testable import Training

/// CTC against a brute-force sum over every alignment: all Vᵀ paths are enumerated, collapsed
/// (merge repeats, drop blanks) and kept when equal to the labels.
final class CTCTests: XCTestCase {
  /// Loss `−ln Σ_paths Π softmax` and gradient `softmax − occupancy` from explicit paths.
  private func bruteForce(_ logits: [[Double]], _ labels: [Int32]) -> (loss: Double, gradient: [[Double]]) {
    let probabilities = logits.map { row -> [Double] in
      let maximum = row.max()!
      let exps = row.map { exp($0 - maximum) }
      let sum = exps.reduce(0, +)
      return exps.map { $0 / sum }
    }
    let (steps, vocabulary) = (logits.count, logits.first?.count ?? 0)
    var total = 0.0
    var occupancy = [[Double]](repeating: [Double](repeating: 0, count: vocabulary), count: steps)
    var path = [Int](repeating: 0, count: steps)
    let pathCount = Int(pow(Double(vocabulary), Double(steps)))
    for code in 0..<pathCount {
      var rest = code
      for t in 0..<steps {
        path[t] = rest % vocabulary
        rest /= vocabulary
      }
      var collapsed: [Int32] = []
      var previous = -1
      for symbol in path {
        if symbol != previous && symbol != 0 { collapsed.append(Int32(symbol)) }
        previous = symbol
      }
      guard collapsed == labels else { continue }
      let p = (0..<steps).reduce(1.0) { $0 * probabilities[$1][path[$1]] }
      total += p
      for t in 0..<steps { occupancy[t][path[t]] += p }
    }
    guard total > 0 else {
      return (.infinity, [[Double]](repeating: [Double](repeating: 0, count: vocabulary), count: steps))
    }
    let gradient = (0..<steps).map { t in (0..<vocabulary).map { probabilities[t][$0] - occupancy[t][$0] / total } }
    return (-log(total), gradient)
  }

  /// Runs CTC on a batch built from per-utterance `[T_b × V]` logits (padding filled with
  /// garbage) and compares each utterance with the brute force.
  private func check(_ cases: [(steps: Int, labels: [Int32])], vocabulary: Int, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
    let maxSteps = cases.map(\.steps).max()!
    let batch = cases.count
    let logits: Tensor<Double> = randomTensor([maxSteps, batch, vocabulary], seed: seed, bound: 2)
    let lengths = cases.map(\.steps)
    let scale = 0.5
    let result = CTC.loss(logits: logits, lengths: lengths, labels: cases.map(\.labels), gradientScale: scale)
    for (b, testCase) in cases.enumerated() {
      let rows = (0..<testCase.steps).map { t in (0..<vocabulary).map { logits[t, b, $0] } }
      let expected = bruteForce(rows, testCase.labels)
      let name = "labels \(testCase.labels) T=\(testCase.steps)"
      if expected.loss.isInfinite {
        XCTAssertEqual(result.losses[b], .infinity, name, file: file, line: line)
      } else {
        XCTAssertEqual(result.losses[b], expected.loss, accuracy: 1e-10, name, file: file, line: line)
      }
      for t in 0..<maxSteps {
        let actual = (0..<vocabulary).map { result.gradient[t, b, $0] }
        let wanted = t < testCase.steps ? expected.gradient[t].map { $0 * scale } : [Double](repeating: 0, count: vocabulary)
        assertClose(actual, wanted, absolute: 1e-12, relative: 1e-9, "\(name) frame \(t)", file: file, line: line)
      }
    }
    XCTAssertFalse(result.gradient.scalars.contains { $0.isNaN }, file: file, line: line)
  }

  func testDistinctLabels() {
    check([(4, [1, 2]), (5, [2, 1, 3]), (3, [3])], vocabulary: 4, seed: 1)
  }

  /// Equal neighbours need a blank between them: no skip transition.
  func testRepeatedLabels() {
    check([(5, [1, 1]), (6, [2, 2, 2]), (4, [1, 1, 2])], vocabulary: 3, seed: 2)
  }

  /// T equal to the minimum: exactly one alignment for [1, 1] at T = 3 (1, blank, 1).
  func testMinimalLength() {
    check([(3, [1, 1]), (3, [1, 2, 1]), (6, [2, 2, 1, 1])], vocabulary: 3, seed: 3)
    XCTAssertEqual(CTC.minimumFrames([1, 1]), 3)
    XCTAssertEqual(CTC.minimumFrames([2, 2, 1, 1]), 6)
  }

  func testEmptyLabels() {
    check([(3, []), (1, [])], vocabulary: 3, seed: 4)
  }

  /// Too few frames: infinite loss, zero gradient, no NaN, and the other utterances unaffected.
  func testTooFewFramesGiveInfiniteLossAndZeroGradient() {
    check([(2, [1, 1]), (4, [1, 2]), (1, [1, 2])], vocabulary: 3, seed: 5)
    let result = CTC.loss(
      logits: randomTensor([2, 1, 3], seed: 6) as Tensor<Double>, lengths: [2], labels: [[1, 1]])
    XCTAssertEqual(result.infiniteCount, 1)
    XCTAssertTrue(result.gradient.scalars.allSatisfy { $0 == 0 })
  }

  /// Zero frames: an empty label has probability 1, any other label is impossible.
  func testZeroFrames() {
    let result = CTC.loss(
      logits: randomTensor([2, 3, 3], seed: 7) as Tensor<Double>, lengths: [0, 0, 2], labels: [[], [1], [2]])
    XCTAssertEqual(result.losses[0], 0)
    XCTAssertEqual(result.losses[1], .infinity)
    XCTAssertTrue(result.losses[2].isFinite)
  }

  /// The fused softmax + CTC gradient against central differences of the loss.
  func testGradientMatchesNumericalDifferentiation() {
    let logits: Tensor<Double> = randomTensor([7, 2, 5], seed: 8, bound: 3)
    let lengths = [7, 5]
    let labels: [[Int32]] = [[1, 3, 3, 4], [2, 2]]
    let analytic = CTC.loss(logits: logits, lengths: lengths, labels: labels).gradient.scalars
    let numeric = numericalGradient(of: logits) { CTC.loss(logits: $0, lengths: lengths, labels: labels).losses.reduce(0, +) }
    assertClose(analytic, numeric, "ctc")
  }

  /// Longer sequences in Float agree with Double (log-space recursions stay accurate).
  func testFloatMatchesDoubleOnLongSequence() {
    let logits: Tensor<Double> = randomTensor([80, 2, 6], seed: 9, bound: 4)
    let labels: [[Int32]] = [Array(repeating: [1, 2, 2, 3, 4, 5], count: 5).flatMap { $0 }, [5, 5, 5, 1]]
    let lengths = [80, 61]
    let double = CTC.loss(logits: logits, lengths: lengths, labels: labels)
    let float = CTC.loss(logits: Tensor<Float>(shape: logits.shape, scalars: logits.scalars.map(Float.init)), lengths: lengths, labels: labels)
    for b in 0..<2 {
      XCTAssertEqual(Double(float.losses[b]), double.losses[b], accuracy: 1e-4 * double.losses[b])
    }
    assertClose(float.gradient.scalars.map(Double.init), double.gradient.scalars, absolute: 1e-4, relative: 1e-3, "float gradient")
  }
}
