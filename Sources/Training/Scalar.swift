import Foundation

/// Floating-point precision of a `TensorScalar`, selecting the BLAS routine family (`s…` or `d…`).
public enum ScalarPrecision: Sendable {
  case single
  case double
}

/// The element type of tensors and layers: `Float` for training, `Double` for gradient checks.
///
/// Only `Float` and `Double` conform; `precision` must describe the type's actual memory layout,
/// because the BLAS wrapper reinterprets buffers by it.
public protocol TensorScalar: BinaryFloatingPoint, Codable, Sendable {
  /// Which BLAS routine family handles this type.
  static var precision: ScalarPrecision { get }
  /// eˣ.
  static func exp(_ x: Self) -> Self
  /// Natural logarithm.
  static func log(_ x: Self) -> Self
  /// ln(1 + x), accurate for small x.
  static func log1p(_ x: Self) -> Self
  /// Hyperbolic tangent.
  static func tanh(_ x: Self) -> Self
}

extension Float: TensorScalar {
  public static var precision: ScalarPrecision { .single }
  public static func exp(_ x: Float) -> Float { Foundation.exp(x) }
  public static func log(_ x: Float) -> Float { Foundation.log(x) }
  public static func log1p(_ x: Float) -> Float { Foundation.log1p(x) }
  public static func tanh(_ x: Float) -> Float { Foundation.tanh(x) }
}

extension Double: TensorScalar {
  public static var precision: ScalarPrecision { .double }
  public static func exp(_ x: Double) -> Double { Foundation.exp(x) }
  public static func log(_ x: Double) -> Double { Foundation.log(x) }
  public static func log1p(_ x: Double) -> Double { Foundation.log1p(x) }
  public static func tanh(_ x: Double) -> Double { Foundation.tanh(x) }
}
