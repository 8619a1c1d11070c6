import Foundation

/// A first-order optimizer updating parameters in place from their accumulated gradients.
///
/// The optimizer's state (`state`) is a plain `Codable` value holding one array per parameter,
/// in the order of the parameter list passed to `step`, for checkpointing.
public protocol Optimizer<Scalar>: AnyObject {
  associatedtype Scalar: TensorScalar
  associatedtype State: Codable
  /// Step size; change it between steps for annealing.
  var learningRate: Scalar { get set }
  /// Everything besides the hyper-parameters needed to continue identically after a restart.
  var state: State { get set }
  /// Applies one update to every parameter from its `gradient`. The parameter list must be the
  /// same (same order and shapes) on every call.
  func step(_ parameters: [Parameter<Scalar>])
}

/// SGD with momentum, optionally Nesterov's (PyTorch formulation, DS2 used μ = 0.99):
/// `v ← μ v + g`, then `θ ← θ − lr · (g + μ v)` (Nesterov) or `θ ← θ − lr · v`.
public final class SGD<Scalar: TensorScalar>: Optimizer {
  public struct State: Codable, Equatable, Sendable {
    /// Momentum buffer `v` per parameter (empty before the first step).
    public var velocity: [[Scalar]]
    public init(velocity: [[Scalar]] = []) { self.velocity = velocity }
  }

  public var learningRate: Scalar
  /// μ.
  public let momentum: Scalar
  /// Use Nesterov's look-ahead form.
  public let nesterov: Bool
  private var velocity: [[Scalar]]

  public var state: State {
    get { State(velocity: velocity) }
    set { velocity = newValue.velocity }
  }

  public init(learningRate: Scalar, momentum: Scalar = 0.99, nesterov: Bool = true, state: State = State()) {
    precondition(momentum >= 0, "momentum must not be negative")
    self.learningRate = learningRate
    self.momentum = momentum
    self.nesterov = nesterov
    velocity = state.velocity
  }

  @_specialize(exported: true, where Scalar == Float)
  public func step(_ parameters: [Parameter<Scalar>]) {
    if velocity.isEmpty { velocity = parameters.map { [Scalar](repeating: 0, count: $0.count) } }
    checkState(velocity, parameters)
    let (lr, mu) = (learningRate, momentum)
    for (index, parameter) in parameters.enumerated() {
      parameter.gradient.withUnsafeBufferPointer { g in
        parameter.value.withUnsafeMutableBufferPointer { theta in
          velocity[index].withUnsafeMutableBufferPointer { v in
            for i in 0..<theta.count {
              v[i] = mu * v[i] + g[i]
              theta[i] -= lr * (nesterov ? g[i] + mu * v[i] : v[i])
            }
          }
        }
      }
    }
  }
}

/// Adam (Kingma & Ba 2015) with bias correction:
/// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `θ ← θ − lr · m̂ / (√v̂ + ε)`.
public final class Adam<Scalar: TensorScalar>: Optimizer {
  public struct State: Codable, Equatable, Sendable {
    /// Steps taken so far.
    public var step: Int
    /// First moment `m` per parameter (empty before the first step).
    public var firstMoment: [[Scalar]]
    /// Second moment `v` per parameter (empty before the first step).
    public var secondMoment: [[Scalar]]
    public init(step: Int = 0, firstMoment: [[Scalar]] = [], secondMoment: [[Scalar]] = []) {
      self.step = step
      self.firstMoment = firstMoment
      self.secondMoment = secondMoment
    }
  }

  public var learningRate: Scalar
  public let beta1: Scalar
  public let beta2: Scalar
  public let epsilon: Scalar
  private var stepCount: Int
  private var firstMoment: [[Scalar]]
  private var secondMoment: [[Scalar]]

  public var state: State {
    get { State(step: stepCount, firstMoment: firstMoment, secondMoment: secondMoment) }
    set { (stepCount, firstMoment, secondMoment) = (newValue.step, newValue.firstMoment, newValue.secondMoment) }
  }

  public init(learningRate: Scalar, beta1: Scalar = 0.9, beta2: Scalar = 0.999, epsilon: Scalar = 1e-8, state: State = State()) {
    precondition(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "Adam betas must lie in [0, 1)")
    self.learningRate = learningRate
    self.beta1 = beta1
    self.beta2 = beta2
    self.epsilon = epsilon
    (stepCount, firstMoment, secondMoment) = (state.step, state.firstMoment, state.secondMoment)
  }

  @_specialize(exported: true, where Scalar == Float)
  public func step(_ parameters: [Parameter<Scalar>]) {
    if firstMoment.isEmpty {
      firstMoment = parameters.map { [Scalar](repeating: 0, count: $0.count) }
      secondMoment = firstMoment
    }
    checkState(firstMoment, parameters)
    checkState(secondMoment, parameters)
    stepCount += 1
    let correction1 = 1 - Scalar(pow(Double(beta1), Double(stepCount)))
    let correction2 = 1 - Scalar(pow(Double(beta2), Double(stepCount)))
    let (b1, b2, eps) = (beta1, beta2, epsilon)
    let stepSize = learningRate / correction1
    let root2 = correction2.squareRoot()
    for (index, parameter) in parameters.enumerated() {
      parameter.gradient.withUnsafeBufferPointer { g in
        parameter.value.withUnsafeMutableBufferPointer { theta in
          firstMoment[index].withUnsafeMutableBufferPointer { m in
            secondMoment[index].withUnsafeMutableBufferPointer { v in
              for i in 0..<theta.count {
                m[i] = b1 * m[i] + (1 - b1) * g[i]
                v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
                // m̂/(√v̂ + ε) = (m/c₁) / (√v/√c₂ + ε)
                theta[i] -= stepSize * m[i] / (v[i].squareRoot() / root2 + eps)
              }
            }
          }
        }
      }
    }
  }
}

private func checkState<Scalar>(_ slots: [[Scalar]], _ parameters: [Parameter<Scalar>]) {
  precondition(
    slots.count == parameters.count && zip(slots, parameters).allSatisfy { $0.count == $1.count },
    "optimizer state does not match the parameter list")
}

/// Scales all gradients together so that their global L2 norm is at most `maxNorm`
/// (PyTorch's `clip_grad_norm_`: factor `maxNorm / (norm + 1e-6)` when below 1).
/// - Returns: the global norm before clipping (may be non-finite).
@_specialize(exported: true, where Scalar == Float)
@discardableResult
public func clipGradientNorm<Scalar: TensorScalar>(_ parameters: [Parameter<Scalar>], maxNorm: Scalar) -> Scalar {
  var sumOfSquares = 0.0
  for parameter in parameters {
    parameter.gradient.withUnsafeBufferPointer { g in
      var partial: Scalar = 0
      for value in g { partial += value * value }
      sumOfSquares += Double(partial)
    }
  }
  let norm = Scalar(sumOfSquares.squareRoot())
  let factor = maxNorm / (norm + Scalar(1e-6))
  if factor < 1 {
    for parameter in parameters {
      parameter.gradient.withUnsafeMutableBufferPointer { g in
        for i in g.indices { g[i] *= factor }
      }
    }
  }
  return norm
}

/// Learning-rate annealing by a constant factor per epoch (deepspeech.pytorch uses 1.1):
/// `rate(epoch) = initial / factor^epoch`, epochs counted from 0.
public struct LearningRateSchedule: Codable, Equatable, Sendable {
  public var initial: Double
  public var annealingFactor: Double

  public init(initial: Double, annealingFactor: Double = 1.1) {
    precondition(initial > 0 && annealingFactor >= 1, "need a positive rate and a factor of at least 1")
    self.initial = initial
    self.annealingFactor = annealingFactor
  }

  /// The learning rate for `epoch` (0-based).
  public func rate(epoch: Int) -> Double {
    initial / pow(annealingFactor, Double(epoch))
  }
}
