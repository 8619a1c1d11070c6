/// A dense tensor: contiguous row-major storage plus a shape.
///
/// Layers treat a tensor as a matrix whose columns are the last axis and whose rows are all
/// leading axes folded together (`rows × columns`). Activations are time-major: `[T × N × …]`,
/// so one time step of the whole batch is a contiguous block of rows.
public struct Tensor<Scalar: TensorScalar>: Equatable, Codable, Sendable {
  /// Extent of each axis; the last axis is contiguous in memory.
  public private(set) var shape: [Int]

  /// Elements in row-major order; the count always equals the product of `shape`.
  public internal(set) var scalars: [Scalar]

  /// A tensor of `shape` holding `scalars` in row-major order.
  /// - Precondition: `scalars.count` equals the product of `shape`; no extent is negative.
  public init(shape: [Int], scalars: [Scalar]) {
    precondition(scalars.count == Self.elementCount(shape), "scalar count \(scalars.count) does not match shape \(shape)")
    self.shape = shape
    self.scalars = scalars
  }

  /// A tensor of `shape` with every element `value` (zero by default).
  public init(shape: [Int], repeating value: Scalar = 0) {
    self.init(shape: shape, scalars: [Scalar](repeating: value, count: Self.elementCount(shape)))
  }

  /// Number of axes.
  public var rank: Int { shape.count }

  /// Number of elements.
  public var count: Int { scalars.count }

  /// Extent of the last axis (matrix view: columns); 1 for a rank-0 tensor.
  public var columns: Int { shape.last ?? 1 }

  /// Product of all leading axes (matrix view: rows).
  public var rows: Int { columns == 0 ? 0 : count / columns }

  /// The element at a full multi-index. Bounds-checked; meant for tests and setup, not hot loops.
  public subscript(indices: Int...) -> Scalar {
    get { scalars[offset(of: indices)] }
    set { scalars[offset(of: indices)] = newValue }
  }

  /// The same elements under another shape with the same element count.
  public func reshaped(to newShape: [Int]) -> Tensor {
    precondition(Self.elementCount(newShape) == count, "cannot reshape \(shape) to \(newShape)")
    var result = self
    result.shape = newShape
    return result
  }

  /// Makes this tensor all zeros of `newShape`, reusing the storage capacity when it is not shared.
  mutating func reset(to newShape: [Int]) {
    let newCount = Self.elementCount(newShape)
    shape = newShape
    // Emptying first means a shared buffer is never copied, only replaced.
    scalars.removeAll(keepingCapacity: true)
    scalars.append(contentsOf: repeatElement(0, count: newCount))
  }

  /// Sets every element to zero, keeping the shape.
  mutating func zero() {
    withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
  }

  func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Scalar>) throws -> R) rethrows -> R {
    try scalars.withUnsafeBufferPointer(body)
  }

  mutating func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Scalar>) throws -> R) rethrows -> R {
    try scalars.withUnsafeMutableBufferPointer { try body($0) }
  }

  private func offset(of indices: [Int]) -> Int {
    precondition(indices.count == shape.count, "index rank \(indices.count) does not match shape \(shape)")
    var offset = 0
    for (index, extent) in zip(indices, shape) {
      precondition(index >= 0 && index < extent, "index \(indices) out of bounds for shape \(shape)")
      offset = offset * extent + index
    }
    return offset
  }

  private static func elementCount(_ shape: [Int]) -> Int {
    shape.reduce(1) { product, extent in
      precondition(extent >= 0, "negative extent in shape \(shape)")
      return product * extent
    }
  }
}

/// Runs `body` with a temporary, zero-initialized buffer of `count` scalars.
func withScratch<Scalar: TensorScalar, Result>(
  _ count: Int, _ body: (UnsafeMutableBufferPointer<Scalar>) throws -> Result
) rethrows -> Result {
  let buffer = UnsafeMutableBufferPointer<Scalar>.allocate(capacity: max(count, 1))
  defer { buffer.deallocate() }
  buffer.initialize(repeating: 0)
  return try body(UnsafeMutableBufferPointer(rebasing: buffer[0..<count]))
}

/// Private storage for a layer's caches and scratch: a growable buffer that keeps its capacity
/// across calls, so steady-state training does not allocate.
final class Workspace<Scalar: TensorScalar> {
  private(set) var pointer: UnsafeMutablePointer<Scalar>
  private var capacity = 1

  init() { pointer = .allocate(capacity: 1) }

  deinit { pointer.deallocate() }

  /// Frees the storage (a later `zeroed` allocates again). Layers release the caches of a
  /// training step once their backward pass no longer needs them, which bounds peak memory
  /// by what one layer's backward pass holds rather than by every layer's caches at once.
  func release() {
    guard capacity > 1 else { return }
    pointer.deallocate()
    pointer = .allocate(capacity: 1)
    capacity = 1
  }

  /// Storage for `count` scalars, uninitialized (for callers that write every element they
  /// later read); invalidates earlier contents.
  func storage(_ count: Int) -> UnsafeMutablePointer<Scalar> {
    if count > capacity {
      pointer.deallocate()
      pointer = .allocate(capacity: count)
      capacity = count
    }
    return pointer
  }

  /// Storage for `count` scalars, all set to zero; invalidates earlier contents.
  func zeroed(_ count: Int) -> UnsafeMutablePointer<Scalar> {
    if count > capacity {
      pointer.deallocate()
      pointer = .allocate(capacity: count)
      capacity = count
    }
    pointer.initialize(repeating: 0, count: count)
    return pointer
  }
}
