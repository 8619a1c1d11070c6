import Foundation
import XCTest

@testable import Training

/// Optimizers against hand-computed update sequences.
final class OptimizerTests: XCTestCase {
  private func scalarParameter(_ value: Double) -> Parameter<Double> {
    Parameter(name: "p", value: Tensor(shape: [1], scalars: [value]))
  }

  private func setGradient(_ parameter: Parameter<Double>, _ gradient: Double) {
    parameter.gradient = Tensor(shape: [1], scalars: [gradient])
  }

  /// θ₀ = 1, g = 0.5, lr = 0.1, μ = 0.9. Nesterov: v₁ = 0.5, θ₁ = 1 − 0.1·(0.5 + 0.45) = 0.905;
  /// v₂ = 0.95, θ₂ = 0.905 − 0.1·(0.5 + 0.855) = 0.7695. Classical: θ₁ = 0.95, θ₂ = 0.855.
  func testSGDMomentumMatchesHandComputedSteps() {
    for (nesterov, expected) in [(true, [0.905, 0.7695]), (false, [0.95, 0.855])] {
      let parameter = scalarParameter(1)
      let optimizer = SGD<Double>(learningRate: 0.1, momentum: 0.9, nesterov: nesterov)
      for value in expected {
        setGradient(parameter, 0.5)
        optimizer.step([parameter])
        XCTAssertEqual(parameter.value[0], value, accuracy: 1e-12, "nesterov=\(nesterov)")
      }
    }
  }

  /// Gradients 0.5 then −0.25, lr = 0.1, β = (0.9, 0.999), ε = 1e-8: the first step moves by
  /// lr·sign(g) (bias correction), the second to 0.8733662987078463 (reference arithmetic).
  func testAdamMatchesHandComputedSteps() {
    let parameter = scalarParameter(1)
    let optimizer = Adam<Double>(learningRate: 0.1)
    setGradient(parameter, 0.5)
    optimizer.step([parameter])
    XCTAssertEqual(parameter.value[0], 0.900000002, accuracy: 1e-12)
    setGradient(parameter, -0.25)
    optimizer.step([parameter])
    XCTAssertEqual(parameter.value[0], 0.8733662987078463, accuracy: 1e-12)
    XCTAssertEqual(optimizer.state.step, 2)
  }

  func testGradientNormClipping() {
    let a = Parameter<Double>(name: "a", value: Tensor(shape: [1]))
    let b = Parameter<Double>(name: "b", value: Tensor(shape: [1, 1]))
    a.gradient = Tensor(shape: [1], scalars: [3])
    b.gradient = Tensor(shape: [1, 1], scalars: [4])
    XCTAssertEqual(clipGradientNorm([a, b], maxNorm: 10), 5, accuracy: 1e-12)
    XCTAssertEqual(a.gradient[0], 3)  // below the limit: unchanged
    XCTAssertEqual(clipGradientNorm([a, b], maxNorm: 1), 5, accuracy: 1e-12)
    XCTAssertEqual(a.gradient[0], 0.6, accuracy: 1e-6)
    XCTAssertEqual(b.gradient[0, 0], 0.8, accuracy: 1e-6)
  }

  /// Encoding the state mid-run and restoring it into a fresh optimizer continues identically.
  func testOptimizerStateRoundTripsThroughJSON() throws {
    func run<O: Optimizer>(_ make: (O.State?) -> O) throws where O.Scalar == Double {
      let gradients: [[Double]] = [[0.3, -1], [0.1, 0.4], [-0.7, 0.2], [0.5, 0.5]]
      let original = Parameter<Double>(name: "p", value: Tensor(shape: [2], scalars: [1, 2]))
      let optimizer = make(nil)
      for g in gradients.prefix(2) {
        original.gradient = Tensor(shape: [2], scalars: g)
        optimizer.step([original])
      }
      let data = try JSONEncoder().encode(optimizer.state)
      let restoredParameter = Parameter<Double>(name: "p", value: original.value)
      let restored = make(try JSONDecoder().decode(O.State.self, from: data))
      for g in gradients.dropFirst(2) {
        original.gradient = Tensor(shape: [2], scalars: g)
        restoredParameter.gradient = original.gradient
        optimizer.step([original])
        restored.step([restoredParameter])
      }
      XCTAssertEqual(original.value, restoredParameter.value, "\(O.self)")
    }
    try run { (state: SGD<Double>.State?) in SGD(learningRate: 0.05, state: state ?? .init()) }
    try run { (state: Adam<Double>.State?) in Adam(learningRate: 0.05, state: state ?? .init()) }
  }

  func testLearningRateAnnealing() {
    let schedule = LearningRateSchedule(initial: 3e-4, annealingFactor: 1.1)
    XCTAssertEqual(schedule.rate(epoch: 0), 3e-4)
    XCTAssertEqual(schedule.rate(epoch: 2), 3e-4 / 1.21, accuracy: 1e-15)
  }
}
