/// A trainable tensor and the gradient accumulated for it by `backward` calls.
///
/// Layers hold their parameters by reference, so an optimizer updating `value` updates the layer.
/// Gradients accumulate (`+=`) across backward calls until `zeroGradient()`.
public final class Parameter<Scalar: TensorScalar> {
  /// Stable, unique name within a model, e.g. `"rnn1.inputWeight"`; used for checkpoints.
  public let name: String
  /// Current value.
  public internal(set) var value: Tensor<Scalar>
  /// d(loss)/d(value), same shape as `value`.
  public internal(set) var gradient: Tensor<Scalar>

  init(name: String, value: Tensor<Scalar>) {
    self.name = name
    self.value = value
    self.gradient = Tensor(shape: value.shape)
  }

  /// Number of scalars.
  public var count: Int { value.count }

  /// Sets the gradient to zero.
  public func zeroGradient() { gradient.zero() }
}

/// A component with trainable parameters.
public protocol Layer: AnyObject {
  associatedtype Scalar: TensorScalar
  /// Trainable parameters, in a fixed order that optimizer state and checkpoints rely on.
  var parameters: [Parameter<Scalar>] { get }
}

extension Layer {
  /// Sets every parameter gradient to zero.
  public func zeroGradients() {
    for parameter in parameters { parameter.zeroGradient() }
  }
}
