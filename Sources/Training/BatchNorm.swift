import DS2Core
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

  /// The threads this layer's computation runs on.
  public var pool: WorkerPool = .serial
  /// Set in data-parallel training: the batch statistics (forward) and the gradient sums
  /// (backward) are summed over the ranks, so every rank normalizes with the statistics of
  /// the whole global batch, as one process does. The γ and β gradients stay this rank's
  /// own (the gradient allreduce sums them).
  public var collective: (any Collective)?
  /// Result buffer of the out-of-place `forward`.
  private var output = Tensor<Scalar>(shape: [0])
  /// Result buffer of the out-of-place `backward`.
  private var inputGradient = Tensor<Scalar>(shape: [0])
  /// The last training output, held until `backward` as the clip mask (clipping layers only).
  private var clippedOutput: Tensor<Scalar>?
  /// x̂ = (x − mean)/σ at the valid rows (other rows undefined), from the last training forward pass.
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

  /// The valid rows cut into blocks of at most `blockRows` rows: the unit of parallel work
  /// and of summation. Blocks depend only on the rows, so every sum — and therefore every
  /// result — is the same whatever the thread count.
  private func blocks(of rows: [Range<Int>]) -> [Range<Int>] {
    let blockRows = max(1, 8192 / featureCount)
    var blocks: [Range<Int>] = []
    for range in rows {
      var first = range.lowerBound
      while first < range.upperBound {
        let last = min(range.upperBound, first + blockRows)
        blocks.append(first..<last)
        first = last
      }
    }
    return blocks
  }

  /// Runs `body(block)` for every block, split over the compute threads (each thread a
  /// contiguous run of blocks); `body` must write only what belongs to its block.
  private func forEachBlock(_ blocks: [Range<Int>], _ body: (_ index: Int, _ rows: Range<Int>) -> Void) {
    let elements = blocks.reduce(0) { $0 + $1.count } * featureCount
    let parts = min(blocks.count, pool.parts(for: Double(elements) * 16, minimumPartSize: 1_000_000))
    withoutActuallyEscaping(body) { body in
      nonisolated(unsafe) let body = body  // a block's call writes only that block's rows and partial sums
      pool.forEach(max(1, parts)) { part in
        let range = (blocks.count * part / max(1, parts))..<(blocks.count * (part + 1) / max(1, parts))
        for index in range { body(index, blocks[index]) }
      }
    }
  }

  /// Adds up `perBlock` (`blocks × C`, one row of partial sums per block) in block order.
  private func combine(_ perBlock: UnsafePointer<Scalar>, blocks: Int) -> [Double] {
    let c = featureCount
    var total = [Double](repeating: 0, count: c)
    for block in 0..<blocks {
      let row = perBlock + block * c
      for j in 0..<c { total[j] += Double(row[j]) }
    }
    return total
  }

  /// Writes the normalized valid rows of `x` to `y` (which may be `x` itself); rows outside
  /// `rows` of `y` are left untouched.
  private func normalize(_ x: UnsafePointer<Scalar>, into y: UnsafeMutablePointer<Scalar>, rows: [Range<Int>], training: Bool) {
    let c = featureCount
    withScratch(2 * c) { (scratch: UnsafeMutableBufferPointer<Scalar>) in
      // y = clip(x · factor + offset)
      let factor = scratch.baseAddress!
      let offset = factor + c
      let blocks = self.blocks(of: rows)
      if training {
        let count = rows.reduce(0) { $0 + $1.count }
        precondition(count > 0, "BatchNorm training needs at least one valid position")
        let (mean, globalCount) = computeBatchStatistics(x, blocks: blocks, count: count)
        let inverse = UnsafePointer(inverseDeviation.pointer)
        for j in 0..<c {
          factor[j] = scale.value.scalars[j] * inverse[j]
          offset[j] = shift.value.scalars[j] - mean[j] * factor[j]
        }
        let xHat = normalized.storage(rows.last!.upperBound * c)
        mean.withUnsafeBufferPointer { mean in
          nonisolated(unsafe) let (x, y, xHat, mean, factor, offset) = (x, y, xHat, mean.baseAddress!, UnsafePointer(factor), UnsafePointer(offset))  // blocks write disjoint rows of y and x̂
          let clips = clipsOutput
          forEachBlock(blocks) { _, block in
            BatchNormKernels.normalize(
              x, rows: block, columns: c, xHat: (xHat, mean, inverse), factor: factor, offset: offset, clips: clips, into: y)
          }
        }
        validRows = rows
        validCount = globalCount
      } else {
        for j in 0..<c {
          factor[j] = scale.value.scalars[j] / (runningVariance.scalars[j] + epsilon).squareRoot()
          offset[j] = shift.value.scalars[j] - runningMean.scalars[j] * factor[j]
        }
        nonisolated(unsafe) let (x, y, factor, offset) = (x, y, UnsafePointer(factor), UnsafePointer(offset))  // blocks write disjoint rows of y
        let clips = clipsOutput
        forEachBlock(blocks) { _, block in
          BatchNormKernels.normalize(x, rows: block, columns: c, xHat: nil, factor: factor, offset: offset, clips: clips, into: y)
        }
      }
    }
  }

  /// Computes the batch mean (returned) and 1/σ (into `inverseDeviation`) over the rows of
  /// `blocks`, and updates the running statistics. Two passes (mean, then squared
  /// deviations), each summed per block and then over blocks in order.
  private func computeBatchStatistics(_ x: UnsafePointer<Scalar>, blocks: [Range<Int>], count: Int) -> ([Scalar], Int) {
    let c = featureCount
    var m = Double(count)
    let partials = UnsafeMutablePointer<Scalar>.allocate(capacity: blocks.count * c)
    defer { partials.deallocate() }
    nonisolated(unsafe) let (source, sums) = (x, partials)  // blocks write disjoint rows of partial sums
    forEachBlock(blocks) { index, block in
      let sum = sums + index * c
      sum.initialize(repeating: 0, count: c)
      BatchNormKernels.addColumns(source, rows: block, columns: c, into: sum)
    }
    var columnSums = combine(partials, blocks: blocks.count)
    if let collective {
      let global = collective.sum(columnSums + [m])
      columnSums = Array(global.prefix(c))
      m = global[c]
    }
    let mean = columnSums.map { Scalar($0 / m) }
    mean.withUnsafeBufferPointer { mean in
      nonisolated(unsafe) let center = mean.baseAddress!  // read-only in the blocks
      forEachBlock(blocks) { index, block in
        let sum = sums + index * c
        sum.initialize(repeating: 0, count: c)
        BatchNormKernels.addSquaredDeviations(source, rows: block, columns: c, mean: center, into: sum)
      }
    }
    var squares = combine(partials, blocks: blocks.count)
    if let collective { squares = collective.sum(squares) }
    let inverse = inverseDeviation.zeroed(c)
    let unbiasing = m > 1 ? m / (m - 1) : 1
    for j in 0..<c {
      let variance = Scalar(squares[j] / m)
      inverse[j] = 1 / (variance + epsilon).squareRoot()
      runningMean.scalars[j] = (1 - momentum) * runningMean.scalars[j] + momentum * mean[j]
      runningVariance.scalars[j] = (1 - momentum) * runningVariance.scalars[j] + momentum * variance * Scalar(unbiasing)
    }
    return (mean, Int(m))
  }

  /// Takes part in a training forward and backward of a rank that has no utterance in this
  /// batch: contributes zeros to every sum the ranks with data make (forward statistics
  /// then, with `backward`, gradient sums), and updates the running statistics as they do.
  func participateWithoutData(backward: Bool) {
    guard let collective else { return }
    let c = featureCount
    if backward {
      _ = collective.sum([Double](repeating: 0, count: 2 * c))
      return
    }
    let global = collective.sum([Double](repeating: 0, count: c + 1))
    let m = global[c]
    let mean = global.prefix(c).map { Scalar($0 / m) }
    let squares = collective.sum([Double](repeating: 0, count: c))
    let unbiasing = m > 1 ? m / (m - 1) : 1
    for j in 0..<c {
      let variance = Scalar(squares[j] / m)
      runningMean.scalars[j] = (1 - momentum) * runningMean.scalars[j] + momentum * mean[j]
      runningVariance.scalars[j] = (1 - momentum) * runningVariance.scalars[j] + momentum * variance * Scalar(unbiasing)
    }
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
    let m = Double(validCount)
    let blocks = self.blocks(of: validRows)
    // Per block: Σg and Σg·x̂, where g = d(loss)/d(γx̂ + β) is dy through the optional clip.
    let partials = UnsafeMutablePointer<Scalar>.allocate(capacity: 2 * blocks.count * c)
    defer { partials.deallocate() }
    nonisolated(unsafe) let (dy, dx, mask, xHat, sums) = (dy, dx, y, UnsafePointer(normalized.pointer), partials)  // blocks write disjoint rows of dx and sums
    let blockCount = blocks.count
    // First pass: dx holds g.
    forEachBlock(blocks) { index, block in
      let sumGradient = sums + index * c
      let sumGradientNormalized = sums + (blockCount + index) * c
      sumGradient.initialize(repeating: 0, count: c)
      sumGradientNormalized.initialize(repeating: 0, count: c)
      BatchNormKernels.gradientSums(
        dy, mask: mask, xHat: xHat, rows: block, columns: c, into: dx, sumGradient: sumGradient,
        sumGradientNormalized: sumGradientNormalized)
    }
    let sumGradient = combine(partials, blocks: blockCount)
    let sumGradientNormalized = combine(partials + blockCount * c, blocks: blockCount)
    // dx needs the sums over the global batch; γ and β get this rank's own.
    var globalGradient = sumGradient
    var globalGradientNormalized = sumGradientNormalized
    if let collective {
      let global = collective.sum(sumGradient + sumGradientNormalized)
      globalGradient = Array(global.prefix(c))
      globalGradientNormalized = Array(global.suffix(c))
    }
    withScratch(3 * c) { (scratch: UnsafeMutableBufferPointer<Scalar>) in
      let factor = scratch.baseAddress!
      let meanGradient = factor + c
      let meanGradientNormalized = factor + 2 * c
      let inverse = inverseDeviation.pointer
      for j in 0..<c {
        factor[j] = scale.value.scalars[j] * inverse[j]
        meanGradient[j] = Scalar(globalGradient[j] / m)
        meanGradientNormalized[j] = Scalar(globalGradientNormalized[j] / m)
      }
      // Second pass: dx = γ/σ · (g − mean(g) − x̂ · mean(g x̂)).
      nonisolated(unsafe) let (f, a, b) = (UnsafePointer(factor), UnsafePointer(meanGradient), UnsafePointer(meanGradientNormalized))  // read-only in the blocks
      forEachBlock(blocks) { _, block in
        BatchNormKernels.inputGradient(dx, xHat: xHat, rows: block, columns: c, factor: f, a: a, b: b)
      }
      shift.gradient.withUnsafeMutableBufferPointer { dBeta in
        for j in 0..<c { dBeta[j] += Scalar(sumGradient[j]) }
      }
      scale.gradient.withUnsafeMutableBufferPointer { dGamma in
        for j in 0..<c { dGamma[j] += Scalar(sumGradientNormalized[j]) }
      }
    }
  }
}
