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
  /// A rational approximation (Eigen's `generic_fast_tanh_float`: odd degree-13 numerator,
  /// even degree-6 denominator, inputs clamped to ±7.9053) within a few ulp of `tanhf`, and
  /// several times faster than glibc's `tanhf`, which the GRU calls for every unit and step.
  public static func tanh(_ x: Float) -> Float {
    let clamped = min(max(x, -7.90531110763549805), 7.90531110763549805)
    if abs(clamped) < 0.0004 { return clamped }
    let x2 = clamped * clamped
    var p: Float = -2.76076847742355e-16
    p = p * x2 + 2.00018790482477e-13
    p = p * x2 - 8.60467152213735e-11
    p = p * x2 + 5.12229709037114e-08
    p = p * x2 + 1.48572235717979e-05
    p = p * x2 + 6.37261928875436e-04
    p = p * x2 + 4.89352455891786e-03
    p *= clamped
    var q: Float = 1.19825839466702e-06
    q = q * x2 + 1.18534705686654e-04
    q = q * x2 + 2.26843463243900e-03
    q = q * x2 + 4.89352518554385e-03
    return p / q
  }
}

extension Double: TensorScalar {
  public static var precision: ScalarPrecision { .double }
  public static func exp(_ x: Double) -> Double { Foundation.exp(x) }
  public static func log(_ x: Double) -> Double { Foundation.log(x) }
  public static func log1p(_ x: Double) -> Double { Foundation.log1p(x) }
  public static func tanh(_ x: Double) -> Double { Foundation.tanh(x) }
}
