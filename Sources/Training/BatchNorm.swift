/// Batch normalization over the valid positions of a padded, time-major batch (Ioffe & Szegedy
/// 2015; DS2 §3.2 "sequence-wise" normalization).
///
/// Input `x` has shape `[T × N × …]` whose per-position block is a whole number of rows of
/// `C` features (`C` innermost): `[T × N × F × C]` for a convolution output (per-channel
/// statistics over time, batch and frequency) or `[T × N × C]` for a recurrent projection
/// (sequence-wise statistics over all valid frames). Statistics cover every valid `(t, b, …)`
/// position, i.e. `t < lengths[b]`. Padding positions neither contribute to the statistics nor
/// receive output (they are set to 0), so a batch's padding never changes valid results.
///
/// Optionally fuses the clipped ReLU `min(max(y, 0), 20)` after the affine step.
public final class BatchNorm<Scalar: TensorScalar>: Layer {
  /// Prefix of the parameter and running-statistics names.
  public let name: String
  /// Number of normalized features `C`.
  public let featureCount: Int
  /// Added to the variance before the square root.
  public let epsilon: Scalar
  /// Weight of the current batch in the running statistics (PyTorch convention: 0.1).
  public let momentum: Scalar
  /// Whether the output passes through the clipped ReLU.
  public let clipsOutput: Bool
  /// γ, shape `[C]`, initialized to 1.
  public let scale: Parameter<Scalar>
  /// β, shape `[C]`, initialized to 0.
  public let shift: Parameter<Scalar>
  /// Running mean used in evaluation, shape `[C]`.
  public internal(set) var runningMean: Tensor<Scalar>
  /// Running unbiased variance used in evaluation, shape `[C]`.
  public internal(set) var runningVariance: Tensor<Scalar>

  public var parameters: [Parameter<Scalar>] { [scale, shift] }

  /// Result buffer of the out-of-place `forward`.
  private var output = Tensor<Scalar>(shape: [0])
  /// Result buffer of the out-of-place `backward`.
  private var inputGradient = Tensor<Scalar>(shape: [0])
  /// The last training output, held until `backward` as the clip mask (clipping layers only).
  private var clippedOutput: Tensor<Scalar>?
  /// x̂ = (x − mean)/σ at valid rows, 0 elsewhere, from the last training forward pass.
  private let normalized = Workspace<Scalar>()
  /// 1/σ per feature, `[C]`, from the last training forward pass.
  private let inverseDeviation = Workspace<Scalar>()
  /// Valid rows of the `rows × C` view in the last training forward pass, and their count.
  private var validRows: [Range<Int>] = []
  private var validCount = 0
  /// Shape of the last training forward pass; nil when `backward` is not allowed.
  private var trainingShape: [Int]?

  /// - Parameters:
  ///   - name: prefix of the parameter names (`name.scale`, `name.shift`).
  ///   - featureCount: `C`.
  ///   - clipsOutput: apply the clipped ReLU after normalization.
  public init(name: String, featureCount: Int, clipsOutput: Bool = false, epsilon: Scalar = 1e-5, momentum: Scalar = 0.1) {
    precondition(featureCount > 0, "BatchNorm needs at least one feature")
    self.name = name
    self.featureCount = featureCount
    self.epsilon = epsilon
    self.momentum = momentum
    self.clipsOutput = clipsOutput
    scale = Parameter(name: name + ".scale", value: Tensor(shape: [featureCount], repeating: 1))
    shift = Parameter(name: name + ".shift", value: Tensor(shape: [featureCount]))
    runningMean = Tensor(shape: [featureCount])
    runningVariance = Tensor(shape: [featureCount], repeating: 1)
  }

  /// Normalizes `x` (`[T × N × …]`, utterance `b` valid for `t < lengths[b]`).
  ///
  /// In training mode uses the batch statistics, caches what `backward` needs and updates the
  /// running statistics; otherwise uses the running statistics. The result is owned by the
  /// layer and overwritten by the next call.
  @_specialize(exported: true, where Scalar == Float)
  public func forward(_ x: Tensor<Scalar>, lengths: [Int], training: Bool) -> Tensor<Scalar> {
    let rows = validRows(of: x, lengths: lengths)
    output.reset(to: x.shape)
    x.withUnsafeBufferPointer { source in
      output.withUnsafeMutableBufferPointer { destination in
        normalize(source.baseAddress!, into: destination.baseAddress!, rows: rows, training: training)
      }
    }
    finishForward(output, training: training)
    return output
  }

  /// `forward` that overwrites `x` with the result instead of using the layer's own buffer.
  func normalizeInPlace(_ x: inout Tensor<Scalar>, lengths: [Int], training: Bool) {
    let rows = validRows(of: x, lengths: lengths)
    x.withUnsafeMutableBufferPointer { values in
      zeroOutside(rows, values)
      normalize(values.baseAddress!, into: values.baseAddress!, rows: rows, training: training)
    }
    finishForward(x, training: training)
  }

  /// Given d(loss)/d(output), accumulates the γ and β gradients and returns d(loss)/d(x)
  /// (0 at padding positions). Requires a preceding training-mode `forward` and frees what it
  /// cached; the result is owned by the layer and overwritten by the next call.
  @_specialize(exported: true, where Scalar == Float)
  public func backward(_ outputGradient: Tensor<Scalar>) -> Tensor<Scalar> {
    inputGradient.reset(to: outputGradient.shape)
    checkBackward(outputGradient)
    outputGradient.withUnsafeBufferPointer { source in
      inputGradient.withUnsafeMutableBufferPointer { destination in
        backpropagate(source.baseAddress!, into: destination.baseAddress!)
      }
    }
    clippedOutput = nil
    normalized.release()
    trainingShape = nil
    return inputGradient
  }

  /// `backward` that overwrites `gradient` with d(loss)/d(x).
  func backpropagateInPlace(_ gradient: inout Tensor<Scalar>) {
    checkBackward(gradient)
    gradient.withUnsafeMutableBufferPointer { values in
      backpropagate(values.baseAddress!, into: values.baseAddress!)
      zeroOutside(validRows, values)
    }
    clippedOutput = nil
    normalized.release()
    trainingShape = nil
  }

  private func validRows(of x: Tensor<Scalar>, lengths: [Int]) -> [Range<Int>] {
    precondition(x.rank >= 3, "BatchNorm expects [T × N × …], got \(x.shape)")
    let positions = x.shape[0] * x.shape[1]
    precondition(positions == 0 || x.count % (positions * featureCount) == 0, "\(x.shape) is not [T × N × … × \(featureCount)]")
    precondition(x.shape[1] == lengths.count, "batch size \(x.shape[1]) does not match \(lengths.count) lengths")
    SequenceLayout.check(lengths: lengths, steps: x.shape[0])
    let rowsPerPosition = positions == 0 ? 0 : x.count / (positions * featureCount)
    return SequenceLayout.validRows(lengths: lengths, steps: x.shape[0], rowsPerPosition: rowsPerPosition)
  }

  private func finishForward(_ result: Tensor<Scalar>, training: Bool) {
    trainingShape = training ? result.shape : nil
    clippedOutput = training && clipsOutput ? result : nil
  }

  /// The gradient must have the training output's elements; only the `[T × N]` axes of its
  /// shape must agree (the model passes `[T × N × F·C]` for a `[T × N × F × C]` output).
  private func checkBackward(_ gradient: Tensor<Scalar>) {
    guard let shape = trainingShape else { preconditionFailure("BatchNorm.backward needs a training-mode forward pass") }
    precondition(
      gradient.count == shape.reduce(1, *) && gradient.shape.prefix(2) == shape.prefix(2),
      "gradient shape \(gradient.shape) does not match \(shape)")
  }

  /// Sets the rows outside `rows` (ascending ranges) of a `rows × C` buffer to zero.
  private func zeroOutside(_ rows: [Range<Int>], _ values: UnsafeMutableBufferPointer<Scalar>) {
    let c = featureCount
    var next = 0
    for range in rows + [(values.count / c)..<(values.count / c)] {
      (values.baseAddress! + next * c).update(repeating: 0, count: (range.lowerBound - next) * c)
      next = range.upperBound
    }
  }

  /// Writes the normalized valid rows of `x` to `y` (which may be `x` itself); rows outside
  /// `rows` of `y` are left untouched.
  private func normalize(_ x: UnsafePointer<Scalar>, into y: UnsafeMutablePointer<Scalar>, rows: [Range<Int>], training: Bool) {
    let c = featureCount
    withScratch(2 * c) { (scratch: UnsafeMutableBufferPointer<Scalar>) in
      // y = clip(x · factor + offset)
      let factor = scratch.baseAddress!
      let offset = factor + c
      if training {
        let count = rows.reduce(0) { $0 + $1.count }
        precondition(count > 0, "BatchNorm training needs at least one valid position")
        let mean = computeBatchStatistics(x, rows: rows, count: count)
        let inverse = inverseDeviation.pointer
        let xHat = normalized.zeroed(rows.last!.upperBound * c)
        for range in rows {
          for row in range {
            let base = row * c
            for j in 0..<c { xHat[base + j] = (x[base + j] - mean[j]) * inverse[j] }
          }
        }
        for j in 0..<c {
          factor[j] = scale.value.scalars[j] * inverse[j]
          offset[j] = shift.value.scalars[j] - mean[j] * factor[j]
        }
        validRows = rows
        validCount = count
      } else {
        for j in 0..<c {
          factor[j] = scale.value.scalars[j] / (runningVariance.scalars[j] + epsilon).squareRoot()
          offset[j] = shift.value.scalars[j] - runningMean.scalars[j] * factor[j]
        }
      }
      for range in rows {
        for row in range {
          let base = row * c
          for j in 0..<c {
            let affine = x[base + j] * factor[j] + offset[j]
            y[base + j] = clipsOutput ? ClippedReLU.apply(affine) : affine
          }
        }
      }
    }
  }

  /// Computes the batch mean (returned) and 1/σ (into `inverseDeviation`) over `rows`, and
  /// updates the running statistics.
  private func computeBatchStatistics(_ x: UnsafePointer<Scalar>, rows: [Range<Int>], count: Int) -> [Scalar] {
    let c = featureCount
    let m = Scalar(count)
    var mean = [Scalar](repeating: 0, count: c)
    var variance = [Scalar](repeating: 0, count: c)
    mean.withUnsafeMutableBufferPointer { mean in
      variance.withUnsafeMutableBufferPointer { variance in
        for range in rows {
          for row in range {
            for j in 0..<c { mean[j] += x[row * c + j] }
          }
        }
        for j in 0..<c { mean[j] /= m }
        for range in rows {
          for row in range {
            for j in 0..<c {
              let d = x[row * c + j] - mean[j]
              variance[j] += d * d
            }
          }
        }
      }
    }
    let inverse = inverseDeviation.zeroed(c)
    let unbiasing = count > 1 ? m / (m - 1) : 1
    for j in 0..<c {
      variance[j] /= m
      inverse[j] = 1 / (variance[j] + epsilon).squareRoot()
      runningMean.scalars[j] = (1 - momentum) * runningMean.scalars[j] + momentum * mean[j]
      runningVariance.scalars[j] = (1 - momentum) * runningVariance.scalars[j] + momentum * variance[j] * unbiasing
    }
    return mean
  }

  /// Writes d(loss)/d(x) for the valid rows from d(loss)/d(y) (`dx` may be `dy` itself) and
  /// accumulates the γ and β gradients.
  private func backpropagate(_ dy: UnsafePointer<Scalar>, into dx: UnsafeMutablePointer<Scalar>) {
    if let clippedOutput {
      clippedOutput.withUnsafeBufferPointer { backpropagate(dy, into: dx, clipMask: $0.baseAddress!) }
    } else {
      backpropagate(dy, into: dx, clipMask: nil)
    }
  }

  /// `clipMask` is the clipped output y, or nil without clipping.
  private func backpropagate(_ dy: UnsafePointer<Scalar>, into dx: UnsafeMutablePointer<Scalar>, clipMask y: UnsafePointer<Scalar>?) {
    let c = featureCount
    let m = Scalar(validCount)
    let xHat = UnsafePointer(normalized.pointer)
    let inverse = inverseDeviation.pointer
    withScratch(3 * c) { (scratch: UnsafeMutableBufferPointer<Scalar>) in
      let sumGradient = scratch.baseAddress!
      let sumGradientNormalized = sumGradient + c
      let factor = sumGradient + 2 * c
      // First pass: dx holds g = d(loss)/d(γx̂ + β), i.e. dy through the optional clip.
      for range in validRows {
        for row in range {
          let base = row * c
          for j in 0..<c {
            let g = y.map { dy[base + j] * ClippedReLU.derivative(output: $0[base + j]) } ?? dy[base + j]
            dx[base + j] = g
            sumGradient[j] += g
            sumGradientNormalized[j] += g * xHat[base + j]
          }
        }
      }
      for j in 0..<c { factor[j] = scale.value.scalars[j] * inverse[j] }
      // Second pass: dx = γ/σ · (g − mean(g) − x̂ · mean(g x̂)).
      for range in validRows {
        for row in range {
          let base = row * c
          for j in 0..<c {
            dx[base + j] = factor[j] * (dx[base + j] - sumGradient[j] / m - xHat[base + j] * (sumGradientNormalized[j] / m))
          }
        }
      }
      shift.gradient.withUnsafeMutableBufferPointer { dBeta in
        for j in 0..<c { dBeta[j] += sumGradient[j] }
      }
      scale.gradient.withUnsafeMutableBufferPointer { dGamma in
        for j in 0..<c { dGamma[j] += sumGradientNormalized[j] }
      }
    }
  }
}
