import DS2Core
/// 2-D convolution over (time × frequency) with channels, as im2col + one gemm per chunk of
/// output time steps; no bias (a batch normalization follows in DS2).
///
/// Layout: input `[T × N × F × Cin]`, output `[T' × N × F' × Cout]` (time-major, batch inside,
/// channels last), so the conv stack hands the recurrent layers `[T' × N × (F'·Cout)]` without
/// a copy. Utterance `b` is valid for `t < lengths[b]`; input frames at or past that length are
/// read as zeros (as if each utterance were convolved alone), and output frames at or past
/// `outputLength(lengths[b])` are exactly 0.
///
/// The weight corresponds to PyTorch's `Conv2d` weight `[Cout, Cin, kernelFrequency, kernelTime]`
/// on a `(N, Cin, F, T)` spectrogram, stored as `[Cout × (kernelTime · kernelFrequency · Cin)]`.
public final class Convolution2D<Scalar: TensorScalar>: Layer {
  public let inputChannels: Int
  public let outputChannels: Int
  /// Kernel extent along time (frames) and frequency (bins).
  public let kernelTime: Int, kernelFrequency: Int
  /// Stride along time and frequency.
  public let strideTime: Int, strideFrequency: Int
  /// Zero padding added on both sides along time and frequency.
  public let paddingTime: Int, paddingFrequency: Int
  /// Shape `[Cout × (kernelTime · kernelFrequency · Cin)]`, index `(kt, kf, ci)` in the second
  /// axis; initialized uniform in `±1/√fanIn` (PyTorch's default).
  public let weight: Parameter<Scalar>

  public var parameters: [Parameter<Scalar>] { [weight] }

  /// Upper bound on the im2col buffer, in scalars; one chunk covers at least one output step.
  var columnBudget = 1 << 18

  /// The threads this layer's computation runs on.
  public var pool: WorkerPool = .serial
  private var input: Tensor<Scalar>?
  private var inputLengths: [Int] = []
  /// Result buffers of `forward` and `backward`; the model normalizes them in place.
  var output = Tensor<Scalar>(shape: [0])
  var inputGradient = Tensor<Scalar>(shape: [0])
  private var columns = Tensor<Scalar>(shape: [0])

  private var patchSize: Int { kernelTime * kernelFrequency * inputChannels }

  init(
    name: String, inputChannels: Int, outputChannels: Int,
    kernelTime: Int, kernelFrequency: Int, strideTime: Int, strideFrequency: Int,
    paddingTime: Int, paddingFrequency: Int, generator: inout Xoshiro256StarStar
  ) {
    precondition(inputChannels > 0 && outputChannels > 0, "channel counts must be positive")
    precondition(kernelTime > 0 && kernelFrequency > 0 && strideTime > 0 && strideFrequency > 0, "kernel and stride must be positive")
    precondition(paddingTime >= 0 && paddingFrequency >= 0, "padding must not be negative")
    self.inputChannels = inputChannels
    self.outputChannels = outputChannels
    self.kernelTime = kernelTime
    self.kernelFrequency = kernelFrequency
    self.strideTime = strideTime
    self.strideFrequency = strideFrequency
    self.paddingTime = paddingTime
    self.paddingFrequency = paddingFrequency
    let fanIn = kernelTime * kernelFrequency * inputChannels
    weight = Parameter(
      name: name + ".weight",
      value: generator.uniformTensor(shape: [outputChannels, fanIn], bound: 1 / Double(fanIn).squareRoot()))
  }

  /// Output frames for an utterance of `length` input frames.
  public func outputLength(_ length: Int) -> Int {
    SequenceLayout.convolvedLength(length, kernel: kernelTime, stride: strideTime, padding: paddingTime)
  }

  /// Output frequency bins for `bins` input bins.
  public func outputFrequencies(_ bins: Int) -> Int {
    SequenceLayout.convolvedLength(bins, kernel: kernelFrequency, stride: strideFrequency, padding: paddingFrequency)
  }

  /// Convolves `x` (`[T × N × F × Cin]`); returns `[outputLength(T) × N × outputFrequencies(F) × Cout]`,
  /// owned by the layer until the next call. In training mode holds `x` until `backward`.
  @_specialize(exported: true, where Scalar == Float)
  public func forward(_ x: Tensor<Scalar>, lengths: [Int], training: Bool) -> Tensor<Scalar> {
    precondition(x.rank == 4 && x.shape[3] == inputChannels, "Convolution2D expects [T × N × F × \(inputChannels)], got \(x.shape)")
    precondition(x.shape[1] == lengths.count, "batch size \(x.shape[1]) does not match \(lengths.count) lengths")
    SequenceLayout.check(lengths: lengths, steps: x.shape[0])
    let steps = outputLength(x.shape[0])
    let frequencies = outputFrequencies(x.shape[2])
    precondition(frequencies > 0, "kernel is wider than the \(x.shape[2]) input bins")
    output.reset(to: [steps, x.shape[1], frequencies, outputChannels])
    let k = patchSize
    let cout = outputChannels
    forEachChunk(of: x, lengths: lengths) { firstRow, rowCount, patches in
      weight.value.withUnsafeBufferPointer { w in
        output.withUnsafeMutableBufferPointer { y in
          BLAS.gemm(
            transposeA: false, transposeB: true, m: rowCount, n: cout, k: k,
            alpha: 1, a: patches, lda: k, b: w.baseAddress, ldb: k,
            beta: 0, c: y.baseAddress! + firstRow * cout, ldc: cout, pool: pool)
        }
      }
      return false
    }
    input = training ? x : nil
    inputLengths = lengths
    return output
  }

  /// Given d(loss)/d(output), accumulates the weight gradient and, when `computeInputGradient`,
  /// returns d(loss)/d(x) (`[T × N × F × Cin]`, 0 at padding, owned by the layer until the next
  /// call); the first layer of a model does not need it. Requires a training-mode `forward`;
  /// releases the cached input.
  @_specialize(exported: true, where Scalar == Float)
  @discardableResult
  public func backward(_ outputGradient: Tensor<Scalar>, computeInputGradient: Bool = true) -> Tensor<Scalar>? {
    guard let x = input else { preconditionFailure("Convolution2D.backward needs a forward pass") }
    precondition(outputGradient.shape == output.shape, "gradient shape \(outputGradient.shape) is not \(output.shape)")
    input = nil
    if computeInputGradient { inputGradient.reset(to: x.shape) }
    let k = patchSize
    let cout = outputChannels
    forEachChunk(of: x, lengths: inputLengths) { firstRow, rowCount, patches in
      outputGradient.withUnsafeBufferPointer { dy in
        let dyChunk = dy.baseAddress! + firstRow * cout
        weight.gradient.withUnsafeMutableBufferPointer { dw in
          BLAS.gemm(
            transposeA: true, transposeB: false, m: cout, n: k, k: rowCount,
            alpha: 1, a: dyChunk, lda: cout, b: patches, ldb: k,
            beta: 1, c: dw.baseAddress, ldc: k, pool: pool)
        }
        guard computeInputGradient else { return false }
        // The patch buffer now receives d(loss)/d(patches), scattered back by the caller.
        weight.value.withUnsafeBufferPointer { w in
          BLAS.gemm(
            transposeA: false, transposeB: false, m: rowCount, n: k, k: cout,
            alpha: 1, a: dyChunk, lda: cout, b: w.baseAddress, ldb: k,
            beta: 0, c: patches, ldc: k, pool: pool)
        }
        return true
      }
    }
    return computeInputGradient ? inputGradient : nil
  }

  /// Splits the output rows `(t', b, f')` into chunks of whole time steps, fills the patch matrix
  /// (`rows × patchSize`) of each chunk from `x`, and calls `body(firstRow, rowCount, patches)`.
  /// When `body` returns true, the patch buffer holds patch gradients, which are added into
  /// `inputGradient` (col2im).
  private func forEachChunk(
    of x: Tensor<Scalar>, lengths: [Int],
    _ body: (_ firstRow: Int, _ rowCount: Int, _ patches: UnsafeMutablePointer<Scalar>) -> Bool
  ) {
    let batch = x.shape[1]
    let frequencies = outputFrequencies(x.shape[2])
    let steps = outputLength(x.shape[0])
    let rowsPerStep = batch * frequencies
    let stepsPerChunk = max(1, min(steps, columnBudget / max(1, rowsPerStep * patchSize)))
    columns.reset(to: [stepsPerChunk * rowsPerStep, patchSize])
    let outputLengths = lengths.map(outputLength)
    x.withUnsafeBufferPointer { source in
      var first = 0
      while first < steps {
        let last = min(steps, first + stepsPerChunk)
        let rowCount = (last - first) * rowsPerStep
        let scatter = columns.withUnsafeMutableBufferPointer { patches in
          // Gathering only reads `source`; workers fill disjoint rows of the patch matrix.
          nonisolated(unsafe) let (input, rows) = (UnsafeMutablePointer(mutating: source.baseAddress!), patches.baseAddress!)
          let batch = x.shape[1]
          let parts = min(batch, pool.parts(for: Double(rowCount * patchSize * outputChannels), minimumPartSize: 1_000_000))
          nonisolated(unsafe) let layer = self  // transferPatches only reads the layer's settings
          pool.forEach(parts) { [shape = x.shape, lengths, outputLengths, first] part in
            layer.transferPatches(
              steps: first..<last, utterances: (batch * part / parts)..<(batch * (part + 1) / parts), source: input,
              patches: rows, inputShape: shape, lengths: lengths, outputLengths: outputLengths, gather: true)
          }
          return body(first * rowsPerStep, rowCount, patches.baseAddress!)
        }
        if scatter {
          columns.withUnsafeMutableBufferPointer { patches in
            inputGradient.withUnsafeMutableBufferPointer { dx in
              transferPatches(
                steps: first..<last, utterances: 0..<x.shape[1], source: dx.baseAddress!, patches: patches.baseAddress!,
                inputShape: x.shape, lengths: lengths, outputLengths: outputLengths, gather: false)
            }
          }
        }
        first = last
      }
    }
  }

  /// im2col (`gather`: copy input windows into patch rows, zeros outside the valid input and for
  /// output frames past an utterance's output length) or col2im (`!gather`: add patch rows back
  /// into the input-shaped buffer `source`, skipping the same positions), for the output
  /// steps `steps` (the chunk) and the utterances `utterances`.
  private func transferPatches(
    steps: Range<Int>, utterances: Range<Int>, source: UnsafeMutablePointer<Scalar>, patches: UnsafeMutablePointer<Scalar>,
    inputShape: [Int], lengths: [Int], outputLengths: [Int], gather: Bool
  ) {
    let (batch, bins, cin) = (inputShape[1], inputShape[2], inputChannels)
    let frequencies = outputFrequencies(bins)
    let k = patchSize
    let segment = kernelFrequency * cin
    for tOut in steps {
      for b in utterances {
        let rowBase = ((tOut - steps.lowerBound) * batch + b) * frequencies
        guard tOut < outputLengths[b] else {
          if gather { (patches + rowBase * k).update(repeating: 0, count: frequencies * k) }
          continue
        }
        for fOut in 0..<frequencies {
          let row = patches + (rowBase + fOut) * k
          let f0 = fOut * strideFrequency - paddingFrequency
          let lo = max(0, -f0)
          let hi = max(lo, min(kernelFrequency, bins - f0))
          for kt in 0..<kernelTime {
            let t = tOut * strideTime + kt - paddingTime
            let patch = row + kt * segment
            guard t >= 0 && t < lengths[b] else {
              if gather { patch.update(repeating: 0, count: segment) }
              continue
            }
            let window = source + ((t * batch + b) * bins + f0 + lo) * cin
            let width = (hi - lo) * cin
            if gather {
              patch.update(repeating: 0, count: lo * cin)
              (patch + lo * cin).update(from: window, count: width)
              (patch + hi * cin).update(repeating: 0, count: segment - hi * cin)
            } else {
              for i in 0..<width { window[i] += patch[lo * cin + i] }
            }
          }
        }
      }
    }
  }
}
