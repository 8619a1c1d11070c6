/// The collective operations of data-parallel training over `size` processes (ranks), each
/// holding a replica of the model and computing on its share of every batch (DS2 §4:
/// synchronous SGD, gradients summed with allreduce).
///
/// Implementations (the `Distributed` module's MPI one) must give every rank the same
/// bits: a sum is added up in an order fixed by the rank count alone, never by timing, so
/// replicas never drift apart and a rerun repeats the run. A failure (a rank that died, a
/// timeout) is not recoverable: an implementation reports it and ends the process.
public protocol Collective: AnyObject {
  /// This process's index, `0 ..< size`; rank 0 writes the run's files.
  var rank: Int { get }
  /// The number of ranks.
  var size: Int { get }
  /// Replaces `values` on every rank by their element-wise sum over the ranks.
  func sum(_ values: UnsafeMutableBufferPointer<Float>)
  /// Replaces `values` on every rank by their element-wise sum over the ranks.
  func sum(_ values: UnsafeMutableBufferPointer<Double>)
  /// Every rank's `bytes`, in rank order (for start-up checks; lengths may differ).
  func gather(_ bytes: [UInt8]) -> [[UInt8]]
  /// Seconds this rank has spent in collectives so far (sending, receiving, adding, and
  /// waiting for the other ranks).
  var communicationSeconds: Double { get }
}

extension Collective {
  /// The sum over ranks of `values`.
  public func sum(_ values: [Double]) -> [Double] {
    var result = values
    result.withUnsafeMutableBufferPointer { sum($0) }
    return result
  }
}

/// Sums every parameter's gradient over the ranks of `collective` (one allreduce of all of
/// them, packed in parameter order). With each rank's loss scaled by 1 / global batch size,
/// the result is the gradient of the global batch's mean loss, as one process computes it
/// up to the order of float additions.
public func sumGradients(_ parameters: [Parameter<Float>], over collective: any Collective) {
  let total = parameters.reduce(0) { $0 + $1.count }
  var packed = [Float](repeating: 0, count: total)
  packed.withUnsafeMutableBufferPointer { packed in
    var offset = 0
    for parameter in parameters {
      parameter.gradient.withUnsafeBufferPointer { g in
        _ = UnsafeMutableBufferPointer(rebasing: packed[offset..<(offset + g.count)]).initialize(from: g)
      }
      offset += parameter.count
    }
    collective.sum(packed)
    offset = 0
    for parameter in parameters {
      parameter.gradient.withUnsafeMutableBufferPointer { g in
        _ = g.initialize(from: UnsafeBufferPointer(rebasing: packed[offset..<(offset + g.count)]))
      }
      offset += parameter.count
    }
  }
}
