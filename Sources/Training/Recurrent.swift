import DS2Core
import Dispatch

/// The recurrent cell of a `BidirectionalRecurrent` layer.
public enum RecurrentCell: String, Codable, Sendable {
  /// Gated recurrent unit, PyTorch's formulation (reset gate applied after the hidden product).
  case gru
  /// Simple recurrence with DS2's clipped ReLU: `h_t = min(max(B(W x_t) + U h_{t−1}, 0), 20)`.
  case rnn

  /// Gate blocks per direction `G`: 3 (r, z, n) for GRU, 1 for the simple cell.
  public var gateCount: Int { self == .gru ? 3 : 1 }
}

/// Bidirectional recurrent layer with sequence-wise batch normalization on the input projection
/// (DS2 §3.2: `h_t = f(B(W x_t) + U h_{t−1})`) and the two directions summed.
///
/// Input `[T × N × I]`, output `[T × N × H]`, time-major; utterance `b` is valid for
/// `t < lengths[b]`. The input projection of both directions and all time steps is one gemm
/// `[T·N × I] · [I × 2GH]`; the recurrence is one `[n × H] · [H × GH]` gemm per step and
/// direction, over the prefix of the batch that is still active (the whole active set when
/// lengths are sorted in descending order). The backward direction starts at each utterance's
/// own last valid frame; padding never affects valid outputs, and outputs at padding are 0.
///
/// GRU (gates r, z, n; `q` = normalized input projection, `g = U h_{t−1} + b`):
/// `r = σ(q_r + g_r)`, `z = σ(q_z + g_z)`, `n = tanh(q_n + r ⊙ g_n)`, `h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}`.
/// The normalization shift acts as the input bias; `b` is PyTorch's hidden bias.
public final class BidirectionalRecurrent<Scalar: TensorScalar>: Layer {
  public let cell: RecurrentCell
  /// Input features `I`.
  public let inputCount: Int
  /// Hidden units `H` per direction (and output features).
  public let hiddenCount: Int
  /// `W`, shape `[I × 2GH]`; column `(d·G + g)·H + j` is direction `d`, gate `g`, unit `j`.
  public let inputWeight: Parameter<Scalar>
  /// Sequence-wise normalization of the `2GH` projected features.
  public let normalization: BatchNorm<Scalar>
  /// `U`, shape `[2 × H × GH]`, one `H × GH` block per direction.
  public let recurrentWeight: Parameter<Scalar>
  /// `b`, shape `[2 × GH]`; GRU only.
  public let recurrentBias: Parameter<Scalar>?

  public var parameters: [Parameter<Scalar>] {
    [inputWeight] + normalization.parameters + [recurrentWeight] + (recurrentBias.map { [$0] } ?? [])
  }

  private var input: Tensor<Scalar>?
  private var lengths: [Int] = []
  private var activePrefix: [Int] = []
  private var output = Tensor<Scalar>(shape: [0])
  /// Result buffer of `backward`; the model normalizes it in place for the conv stack.
  var inputGradient = Tensor<Scalar>(shape: [0])
  private let scratch: RecurrentScratch<Scalar>
  /// The threads this layer's computation runs on (its normalization's too).
  public var pool: WorkerPool = .serial { didSet { normalization.pool = pool } }
  /// Hidden states in step order, `[2 × (T + 1) × N × H]`: slot 0 of each direction is the zero
  /// initial state and slot `s + 1` holds step `s`, which is time `s` (forward direction) or
  /// `lengths[b] − 1 − s` (backward direction); 0 at inactive positions.
  private let hidden = Workspace<Scalar>()
  /// GRU activations r, z, n per step, `[2 × T × N × 3H]`.
  private let gates = Workspace<Scalar>()
  /// GRU `g_n = (U h_{t−1} + b)_n` per step, `[2 × T × N × H]`.
  private let hiddenCandidate = Workspace<Scalar>()

  private var gateWidth: Int { cell.gateCount * hiddenCount }

  /// `scratch` may be shared by layers that never run concurrently (those of one model).
  init(
    name: String, cell: RecurrentCell, inputCount: Int, hiddenCount: Int,
    scratch: RecurrentScratch<Scalar> = RecurrentScratch(), generator: inout Xoshiro256StarStar
  ) {
    precondition(inputCount > 0 && hiddenCount > 0, "recurrent sizes must be positive")
    self.scratch = scratch
    self.cell = cell
    self.inputCount = inputCount
    self.hiddenCount = hiddenCount
    let width = cell.gateCount * hiddenCount
    let bound = 1 / Double(hiddenCount).squareRoot()
    inputWeight = Parameter(name: name + ".inputWeight", value: generator.uniformTensor(shape: [inputCount, 2 * width], bound: bound))
    normalization = BatchNorm(name: name + ".norm", featureCount: 2 * width)
    recurrentWeight = Parameter(name: name + ".recurrentWeight", value: generator.uniformTensor(shape: [2, hiddenCount, width], bound: bound))
    recurrentBias = cell == .gru
      ? Parameter(name: name + ".recurrentBias", value: generator.uniformTensor(shape: [2, width], bound: bound)) : nil
  }

  /// Runs both directions over `x` (`[T × N × I]`); returns `[T × N × H]`, owned by the layer
  /// until the next call. In training mode normalizes with batch statistics and holds `x` until
  /// `backward`; otherwise uses the running statistics.
  @_specialize(exported: true, where Scalar == Float)
  public func forward(_ x: Tensor<Scalar>, lengths: [Int], training: Bool) -> Tensor<Scalar> {
    precondition(x.rank == 3 && x.shape[2] == inputCount, "BidirectionalRecurrent expects [T × N × \(inputCount)], got \(x.shape)")
    precondition(x.shape[1] == lengths.count, "batch size \(x.shape[1]) does not match \(lengths.count) lengths")
    let (steps, batch) = (x.shape[0], x.shape[1])
    SequenceLayout.check(lengths: lengths, steps: steps)
    self.lengths = lengths
    activePrefix = SequenceLayout.activePrefix(lengths: lengths, steps: steps)
    let width = gateWidth
    scratch.projection.reset(to: [steps, batch, 2 * width])
    x.withUnsafeBufferPointer { px in
      inputWeight.value.withUnsafeBufferPointer { w in
        scratch.projection.withUnsafeMutableBufferPointer { p in
          BLAS.gemm(
            transposeA: false, transposeB: false, m: steps * batch, n: 2 * width, k: inputCount,
            alpha: 1, a: px.baseAddress, lda: inputCount, b: w.baseAddress, ldb: 2 * width,
            beta: 0, c: p.baseAddress, ldc: 2 * width, pool: pool)
        }
      }
    }
    normalization.normalizeInPlace(&scratch.projection, lengths: lengths, training: training)
    let perDirection = steps * batch * hiddenCount
    _ = hidden.zeroed(2 * (steps + 1) * batch * hiddenCount)
    if cell == .gru {
      _ = gates.zeroed(2 * perDirection * 3)
      _ = hiddenCandidate.zeroed(2 * perDirection)
    }
    _ = scratch.stepProduct.zeroed(2 * batch * width)
    scratch.projection.withUnsafeBufferPointer { q in
      let normalized = q.baseAddress!
      bothDirections { direction in runDirection(direction, normalized: normalized, steps: steps, batch: batch) }
    }
    output.reset(to: [steps, batch, hiddenCount])
    output.withUnsafeMutableBufferPointer { y in sumDirections(into: y.baseAddress!, steps: steps, batch: batch) }
    input = training ? x : nil
    return output
  }

  /// Given d(loss)/d(output), accumulates all parameter gradients and, when
  /// `computeInputGradient`, returns d(loss)/d(x) (`[T × N × I]`, owned by the layer until the
  /// next call). Requires a training-mode `forward`; releases the cached input and states.
  @_specialize(exported: true, where Scalar == Float)
  @discardableResult
  public func backward(_ outputGradient: Tensor<Scalar>, computeInputGradient: Bool = true) -> Tensor<Scalar>? {
    guard let x = input else { preconditionFailure("BidirectionalRecurrent.backward needs a forward pass") }
    precondition(outputGradient.shape == output.shape, "gradient shape \(outputGradient.shape) is not \(output.shape)")
    input = nil
    let (steps, batch) = (x.shape[0], x.shape[1])
    let width = gateWidth
    // The projection is not needed any more: its buffer receives the gradient.
    scratch.projection.reset(to: [steps, batch, 2 * width])
    _ = scratch.recurrentGradient.zeroed(2 * steps * batch * width)
    _ = scratch.carry.zeroed(2 * batch * hiddenCount)
    outputGradient.withUnsafeBufferPointer { dy in
      scratch.projection.withUnsafeMutableBufferPointer { dq in
        // The directions write disjoint columns of dq and disjoint gradient blocks.
        let (outputGradient, normalizedGradient) = (dy.baseAddress!, dq.baseAddress!)
        bothDirections { direction in
          backpropagateDirection(direction, outputGradient: outputGradient, normalizedGradient: normalizedGradient, steps: steps, batch: batch)
        }
      }
    }
    for direction in 0..<2 { accumulateRecurrentGradients(direction, steps: steps, batch: batch) }
    // The step's caches are no longer needed; the layers below need the memory.
    hidden.release()
    gates.release()
    hiddenCandidate.release()
    normalization.backpropagateInPlace(&scratch.projection)
    let projectionGradient = scratch.projection
    projectionGradient.withUnsafeBufferPointer { dp in
      x.withUnsafeBufferPointer { px in
        inputWeight.gradient.withUnsafeMutableBufferPointer { dw in
          BLAS.gemm(
            transposeA: true, transposeB: false, m: inputCount, n: 2 * width, k: steps * batch,
            alpha: 1, a: px.baseAddress, lda: inputCount, b: dp.baseAddress, ldb: 2 * width,
            beta: 1, c: dw.baseAddress, ldc: 2 * width, pool: pool)
        }
      }
    }
    guard computeInputGradient else { return nil }
    inputGradient.reset(to: x.shape)
    projectionGradient.withUnsafeBufferPointer { dp in
      inputWeight.value.withUnsafeBufferPointer { w in
        inputGradient.withUnsafeMutableBufferPointer { dx in
          BLAS.gemm(
            transposeA: false, transposeB: true, m: steps * batch, n: inputCount, k: 2 * width,
            alpha: 1, a: dp.baseAddress, lda: 2 * width, b: w.baseAddress, ldb: 2 * width,
            beta: 0, c: dx.baseAddress, ldc: inputCount, pool: pool)
        }
      }
    }
    return inputGradient
  }

  /// Frees the buffers only `backward` uses (the input gradient and the recurrent-gradient
  /// scratch), so that they do not add to the next forward pass's peak memory.
  func releaseGradientBuffers() {
    inputGradient = Tensor(shape: [0])
    scratch.recurrentGradient.release()
  }

  /// Time index of step `s` of utterance `b` in `direction`.
  @inline(__always)
  private func time(step s: Int, utterance b: Int, direction: Int) -> Int {
    direction == 0 ? s : lengths[b] - 1 - s
  }

  /// Runs `body(0)` and `body(1)`, on two threads when the pool has them.
  private func bothDirections(_ body: (Int) -> Void) {
    withoutActuallyEscaping(body) { body in
      nonisolated(unsafe) let body = body  // direction d touches only direction d's halves of the buffers
      pool.forEach(2) { body($0) }
    }
  }

  /// `y[t, b] = h_forward(t) + h_backward(t)` at valid positions, 0 at padding.
  private func sumDirections(into y: UnsafeMutablePointer<Scalar>, steps: Int, batch: Int) {
    let h = hiddenCount
    let forwardStates = hidden.pointer
    let backwardStates = hidden.pointer + (steps + 1) * batch * h
    for b in 0..<batch {
      let length = lengths[b]
      for t in 0..<length {
        // Forward step t is slot t + 1; backward step length − 1 − t is slot length − t.
        let a = forwardStates + ((t + 1) * batch + b) * h
        let c = backwardStates + ((length - t) * batch + b) * h
        let out = y + (t * batch + b) * h
        for j in 0..<h { out[j] = a[j] + c[j] }
      }
    }
  }

  private func runDirection(_ direction: Int, normalized q: UnsafePointer<Scalar>, steps: Int, batch: Int) {
    let h = hiddenCount
    let width = gateWidth
    let positions = steps * batch
    // `states + s·N·H` is h_{s−1}; `states + (s + 1)·N·H` is h_s.
    let states = hidden.pointer + direction * (positions + batch) * h
    let activations = gates.pointer + direction * positions * 3 * h
    let candidates = hiddenCandidate.pointer + direction * positions * h
    // Stays 0 for step 0, whose previous state is 0.
    let product = scratch.stepProduct.pointer + direction * batch * width
    // The simple cell has no recurrent bias; it is never read then.
    let biases = recurrentBias?.value ?? Tensor(shape: [2, width])
    recurrentWeight.value.withUnsafeBufferPointer { u in
      biases.withUnsafeBufferPointer { biasBuffer in
        let bias = biasBuffer.baseAddress! + direction * width
        for s in 0..<steps {
          let active = activePrefix[s]
          guard active > 0 else { break }
          if s > 0 {
            BLAS.gemm(
              transposeA: false, transposeB: false, m: active, n: width, k: h,
              alpha: 1, a: states + s * batch * h, lda: h, b: u.baseAddress! + direction * h * width, ldb: width,
              beta: 0, c: product, ldc: width, pool: pool)
          }
          for b in 0..<active where s < lengths[b] {
            let t = time(step: s, utterance: b, direction: direction)
            let qRow = q + (t * batch + b) * 2 * width + direction * width
            let gRow = product + b * width
            let previous = states + (s * batch + b) * h
            let state = previous + batch * h
            switch cell {
            case .rnn:
              for j in 0..<h {
                state[j] = ClippedReLU.apply(qRow[j] + gRow[j])
              }
            case .gru:
              let gate = activations + (s * batch + b) * 3 * h
              let candidate = candidates + (s * batch + b) * h
              for j in 0..<h {
                let recurrentN = gRow[2 * h + j] + bias[2 * h + j]
                let r = sigmoid(qRow[j] + gRow[j] + bias[j])
                let z = sigmoid(qRow[h + j] + gRow[h + j] + bias[h + j])
                let n = Scalar.tanh(qRow[2 * h + j] + r * recurrentN)
                state[j] = (1 - z) * n + z * previous[j]
                gate[j] = r
                gate[h + j] = z
                gate[2 * h + j] = n
                candidate[j] = recurrentN
              }
            }
          }
        }
      }
    }
  }

  private func backpropagateDirection(
    _ direction: Int, outputGradient dy: UnsafePointer<Scalar>, normalizedGradient dq: UnsafeMutablePointer<Scalar>,
    steps: Int, batch: Int
  ) {
    let h = hiddenCount
    let width = gateWidth
    let positions = steps * batch
    let states = hidden.pointer + direction * (positions + batch) * h
    let activations = gates.pointer + direction * positions * 3 * h
    let candidates = hiddenCandidate.pointer + direction * positions * h
    let preGradient = scratch.recurrentGradient.pointer + direction * positions * width
    let carried = scratch.carry.pointer + direction * batch * h
    recurrentWeight.value.withUnsafeBufferPointer { u in
      let uDirection = u.baseAddress! + direction * h * width
      for s in stride(from: steps - 1, through: 0, by: -1) {
        let active = activePrefix[s]
        guard active > 0 else { continue }
        for b in 0..<active where s < lengths[b] {
          let t = time(step: s, utterance: b, direction: direction)
          let dOut = dy + (t * batch + b) * h
          let dqRow = dq + (t * batch + b) * 2 * width + direction * width
          let dg = preGradient + (s * batch + b) * width
          let c = carried + b * h
          switch cell {
          case .rnn:
            let state = states + ((s + 1) * batch + b) * h
            for j in 0..<h {
              let da = (dOut[j] + c[j]) * ClippedReLU.derivative(output: state[j])
              dqRow[j] = da
              dg[j] = da
              c[j] = 0
            }
          case .gru:
            let gate = activations + (s * batch + b) * 3 * h
            let candidate = candidates + (s * batch + b) * h
            let previous = states + (s * batch + b) * h
            // dn, dz, dr: gradients with respect to the pre-activations of n, z and r.
            for j in 0..<h {
              let dh = dOut[j] + c[j]
              let (r, z, n) = (gate[j], gate[h + j], gate[2 * h + j])
              let dn = dh * (1 - z) * (1 - n * n)
              let dz = dh * (previous[j] - n) * z * (1 - z)
              let dr = dn * candidate[j] * r * (1 - r)
              dqRow[j] = dr
              dqRow[h + j] = dz
              dqRow[2 * h + j] = dn
              dg[j] = dr
              dg[h + j] = dz
              dg[2 * h + j] = dn * r
              c[j] = dh * z
            }
          }
        }
        if s > 0 {
          // d(loss)/d(h_{s−1}) += d(loss)/d(U h_{s−1}) · Uᵀ
          BLAS.gemm(
            transposeA: false, transposeB: true, m: active, n: h, k: width,
            alpha: 1, a: preGradient + s * batch * width, lda: width, b: uDirection, ldb: width,
            beta: 1, c: carried, ldc: h, pool: pool)
        }
      }
    }
  }

  /// dU += Σ_s h_{s−1}ᵀ · d(U h_{s−1}) (one gemm over all steps; h_{−1} = 0 adds nothing) and
  /// db += Σ_s d(U h_{s−1} + b), for one direction after `backpropagateDirection`.
  private func accumulateRecurrentGradients(_ direction: Int, steps: Int, batch: Int) {
    let h = hiddenCount
    let width = gateWidth
    let positions = steps * batch
    let states = hidden.pointer + direction * (positions + batch) * h
    let preGradient = scratch.recurrentGradient.pointer + direction * positions * width
    recurrentWeight.gradient.withUnsafeMutableBufferPointer { du in
      BLAS.gemm(
        transposeA: true, transposeB: false, m: h, n: width, k: positions,
        alpha: 1, a: states, lda: h, b: preGradient, ldb: width,
        beta: 1, c: du.baseAddress! + direction * h * width, ldc: width, pool: pool)
    }
    recurrentBias?.gradient.withUnsafeMutableBufferPointer { db in
      let dbDirection = db.baseAddress! + direction * width
      for row in 0..<positions {
        for j in 0..<width { dbDirection[j] += preGradient[row * width + j] }
      }
    }
  }
}

/// Buffers a `BidirectionalRecurrent` layer needs only within one `forward` or `backward` call.
final class RecurrentScratch<Scalar: TensorScalar> {
  /// `[T × N × 2GH]` input projection, normalized in place; in `backward` the gradient of the
  /// normalized projection, turned in place into that of the raw projection.
  var projection = Tensor<Scalar>(shape: [0])
  /// d(loss)/d(U h_{t−1} + b) in step order, `[2 × T × N × GH]`.
  let recurrentGradient = Workspace<Scalar>()
  /// Per step and direction `U h_{t−1}` of the active prefix, `[2 × N × GH]`.
  let stepProduct = Workspace<Scalar>()
  /// d(loss)/d(h_{s−1}) flowing back from step `s`, per direction, `[2 × N × H]`.
  let carry = Workspace<Scalar>()

  init() {}
}
