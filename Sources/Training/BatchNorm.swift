/// Batch normalization over the valid positions of a padded, time-major batch (Ioffe & Szegedy
/// 2015; DS2 §3.2 "sequence-wise" normalization).
///
/// Input `x` has shape `[T × N × … × C]`: `C` features (the last axis) are normalized
/// independently, with statistics over every valid `(t, b, …)` position, i.e. `t < lengths[b]`.
/// For a convolution output `[T × N × F × C]` that is per-channel normalization over time,
/// batch and frequency; for a recurrent projection `[T × N × H]` it is sequence-wise
/// normalization over all valid frames. Padding positions neither contribute to the statistics
/// nor receive output (they are set to 0), so a batch's padding never changes valid results.
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

  /// Last output, `[T × N × … × C]`; also the clip mask source in `backward`.
  private var output = Tensor<Scalar>(shape: [0])
  /// x̂ = (x − mean)/σ at valid rows, 0 elsewhere; same shape as the input.
  private var normalized = Tensor<Scalar>(shape: [0])
  /// 1/σ per feature, `[C]`, from the last training forward pass.
  private var inverseDeviation = Tensor<Scalar>(shape: [0])
  /// Valid rows of the `rows × C` view in the last training forward pass.
  private var validRows: [Range<Int>] = []
  private var validCount = 0
  private var inputGradient = Tensor<Scalar>(shape: [0])
  private var hasTrainingCache = false

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

  /// Normalizes `x` (`[T × N × … × C]`, utterance `b` valid for `t < lengths[b]`).
  ///
  /// In training mode uses the batch statistics, caches what `backward` needs and updates the
  /// running statistics; otherwise uses the running statistics. The result is owned by the
  /// layer and overwritten by the next call.
  @_specialize(exported: true, where Scalar == Float)
  public func forward(_ x: Tensor<Scalar>, lengths: [Int], training: Bool) -> Tensor<Scalar> {
    precondition(x.rank >= 3 && x.columns == featureCount, "BatchNorm expects [T × N × … × \(featureCount)], got \(x.shape)")
    precondition(x.shape[1] == lengths.count, "batch size \(x.shape[1]) does not match \(lengths.count) lengths")
    SequenceLayout.check(lengths: lengths, steps: x.shape[0])
    let positions = x.shape[0] * x.shape[1]
    let rowsPerPosition = positions == 0 ? 0 : x.rows / positions
    let rows = SequenceLayout.validRows(lengths: lengths, steps: x.shape[0], rowsPerPosition: rowsPerPosition)
    output.reset(to: x.shape)
    if training {
      let count = rows.reduce(0) { $0 + $1.count }
      precondition(count > 0, "BatchNorm training needs at least one valid position")
      normalizeWithBatchStatistics(x, rows: rows, count: count)
    } else {
      normalizeWithRunningStatistics(x, rows: rows)
      hasTrainingCache = false
    }
    return output
  }

  /// Given d(loss)/d(output), accumulates the γ and β gradients and returns d(loss)/d(x)
  /// (0 at padding positions). Requires a preceding training-mode `forward`; the result is
  /// owned by the layer and overwritten by the next call.
  @_specialize(exported: true, where Scalar == Float)
  public func backward(_ outputGradient: Tensor<Scalar>) -> Tensor<Scalar> {
    precondition(hasTrainingCache, "BatchNorm.backward needs a training-mode forward pass")
    precondition(outputGradient.shape == output.shape, "gradient shape \(outputGradient.shape) is not \(output.shape)")
    let c = featureCount
    let m = Scalar(validCount)
    inputGradient.reset(to: output.shape)
    withScratch(3 * c) { (scratch: UnsafeMutableBufferPointer<Scalar>) in
      let sumGradient = scratch.baseAddress!
      let sumGradientNormalized = sumGradient + c
      let factor = sumGradient + 2 * c
      outputGradient.withUnsafeBufferPointer { dy in
        normalized.withUnsafeBufferPointer { xHat in
          output.withUnsafeBufferPointer { y in
            inputGradient.withUnsafeMutableBufferPointer { dx in
              // First pass: dx holds g = d(loss)/d(γx̂ + β), i.e. dy through the optional clip.
              for range in validRows {
                for row in range {
                  let base = row * c
                  for j in 0..<c {
                    let g = clipsOutput ? dy[base + j] * ClippedReLU.derivative(output: y[base + j]) : dy[base + j]
                    dx[base + j] = g
                    sumGradient[j] += g
                    sumGradientNormalized[j] += g * xHat[base + j]
                  }
                }
              }
              scale.value.withUnsafeBufferPointer { gamma in
                inverseDeviation.withUnsafeBufferPointer { inverse in
                  for j in 0..<c { factor[j] = gamma[j] * inverse[j] }
                }
              }
              // Second pass: dx = γ/σ · (g − mean(g) − x̂ · mean(g x̂)).
              for range in validRows {
                for row in range {
                  let base = row * c
                  for j in 0..<c {
                    dx[base + j] = factor[j] * (dx[base + j] - sumGradient[j] / m - xHat[base + j] * (sumGradientNormalized[j] / m))
                  }
                }
              }
            }
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
    return inputGradient
  }

  private func normalizeWithBatchStatistics(_ x: Tensor<Scalar>, rows: [Range<Int>], count: Int) {
    let c = featureCount
    let m = Scalar(count)
    normalized.reset(to: x.shape)
    inverseDeviation.reset(to: [c])
    withScratch(2 * c) { (scratch: UnsafeMutableBufferPointer<Scalar>) in
      let mean = scratch.baseAddress!
      let variance = mean + c
      x.withUnsafeBufferPointer { x in
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
        inverseDeviation.withUnsafeMutableBufferPointer { inverse in
          for j in 0..<c {
            variance[j] /= m
            inverse[j] = 1 / (variance[j] + epsilon).squareRoot()
          }
          scale.value.withUnsafeBufferPointer { gamma in
            shift.value.withUnsafeBufferPointer { beta in
              normalized.withUnsafeMutableBufferPointer { xHat in
                output.withUnsafeMutableBufferPointer { y in
                  for range in rows {
                    for row in range {
                      let base = row * c
                      for j in 0..<c {
                        let h = (x[base + j] - mean[j]) * inverse[j]
                        xHat[base + j] = h
                        let affine = gamma[j] * h + beta[j]
                        y[base + j] = clipsOutput ? ClippedReLU.apply(affine) : affine
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
      let unbiasing = count > 1 ? m / (m - 1) : 1
      for j in 0..<c {
        runningMean.scalars[j] = (1 - momentum) * runningMean.scalars[j] + momentum * mean[j]
        runningVariance.scalars[j] = (1 - momentum) * runningVariance.scalars[j] + momentum * variance[j] * unbiasing
      }
    }
    validRows = rows
    validCount = count
    hasTrainingCache = true
  }

  private func normalizeWithRunningStatistics(_ x: Tensor<Scalar>, rows: [Range<Int>]) {
    let c = featureCount
    withScratch(2 * c) { (scratch: UnsafeMutableBufferPointer<Scalar>) in
      let factor = scratch.baseAddress!
      let offset = factor + c
      for j in 0..<c {
        factor[j] = scale.value.scalars[j] / (runningVariance.scalars[j] + epsilon).squareRoot()
        offset[j] = shift.value.scalars[j] - runningMean.scalars[j] * factor[j]
      }
      x.withUnsafeBufferPointer { x in
        output.withUnsafeMutableBufferPointer { y in
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
    }
  }
}
