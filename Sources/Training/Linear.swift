import DS2Core
/// Fully connected layer without bias, `y = x · W`, applied to every row of `x`.
///
/// In DS2 it maps the (batch-normalized) last recurrent output to vocabulary logits; the
/// preceding normalization's shift plays the role of a bias, as in deepspeech.pytorch.
public final class Linear<Scalar: TensorScalar>: Layer {
  /// Input features `I`.
  public let inputCount: Int
  /// Output features `O`.
  public let outputCount: Int
  /// `W`, shape `[I × O]`, initialized uniform in `±1/√I` (PyTorch's default).
  public let weight: Parameter<Scalar>

  public var parameters: [Parameter<Scalar>] { [weight] }

  /// Input of the last forward pass, held until `backward`.
  /// The threads this layer's computation runs on.
  public var pool: WorkerPool = .serial
  private var input: Tensor<Scalar>?
  private var output = Tensor<Scalar>(shape: [0])
  private var inputGradient = Tensor<Scalar>(shape: [0])

  init(name: String, inputCount: Int, outputCount: Int, generator: inout Xoshiro256StarStar) {
    precondition(inputCount > 0 && outputCount > 0, "Linear needs positive sizes")
    self.inputCount = inputCount
    self.outputCount = outputCount
    let bound = 1 / Double(inputCount).squareRoot()
    weight = Parameter(name: name + ".weight", value: generator.uniformTensor(shape: [inputCount, outputCount], bound: bound))
  }

  /// `x` has shape `[… × I]`; returns `[… × O]` (owned by the layer until the next call).
  /// In training mode holds `x` until `backward`.
  @_specialize(exported: true, where Scalar == Float)
  public func forward(_ x: Tensor<Scalar>, training: Bool) -> Tensor<Scalar> {
    precondition(x.rank >= 1 && x.columns == inputCount, "Linear expects [… × \(inputCount)], got \(x.shape)")
    var shape = x.shape
    shape[shape.count - 1] = outputCount
    output.reset(to: shape)
    x.withUnsafeBufferPointer { px in
      weight.value.withUnsafeBufferPointer { pw in
        output.withUnsafeMutableBufferPointer { py in
          BLAS.gemm(
            transposeA: false, transposeB: false, m: x.rows, n: outputCount, k: inputCount,
            alpha: 1, a: px.baseAddress, lda: inputCount, b: pw.baseAddress, ldb: outputCount,
            beta: 0, c: py.baseAddress, ldc: outputCount, pool: pool)
        }
      }
    }
    input = training ? x : nil
    return output
  }

  /// Accumulates `dW += xᵀ · dy` and returns `dx = dy · Wᵀ` (owned by the layer until the next
  /// call), or nil when `computeInputGradient` is false. Requires a training-mode `forward`;
  /// releases the cached input.
  @_specialize(exported: true, where Scalar == Float)
  @discardableResult
  public func backward(_ outputGradient: Tensor<Scalar>, computeInputGradient: Bool = true) -> Tensor<Scalar>? {
    guard let x = input else { preconditionFailure("Linear.backward needs a forward pass") }
    precondition(outputGradient.shape == output.shape, "gradient shape \(outputGradient.shape) is not \(output.shape)")
    input = nil
    let rows = x.rows
    outputGradient.withUnsafeBufferPointer { dy in
      x.withUnsafeBufferPointer { px in
        weight.gradient.withUnsafeMutableBufferPointer { dw in
          BLAS.gemm(
            transposeA: true, transposeB: false, m: inputCount, n: outputCount, k: rows,
            alpha: 1, a: px.baseAddress, lda: inputCount, b: dy.baseAddress, ldb: outputCount,
            beta: 1, c: dw.baseAddress, ldc: outputCount, pool: pool)
        }
      }
    }
    guard computeInputGradient else { return nil }
    inputGradient.reset(to: x.shape)
    outputGradient.withUnsafeBufferPointer { dy in
      weight.value.withUnsafeBufferPointer { pw in
        inputGradient.withUnsafeMutableBufferPointer { dx in
          BLAS.gemm(
            transposeA: false, transposeB: true, m: rows, n: inputCount, k: outputCount,
            alpha: 1, a: dy.baseAddress, lda: outputCount, b: pw.baseAddress, ldb: outputCount,
            beta: 0, c: dx.baseAddress, ldc: inputCount, pool: pool)
        }
      }
    }
    return inputGradient
  }
}
