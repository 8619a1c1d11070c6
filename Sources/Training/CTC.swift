import DS2Core
import Dispatch

/// Result of `CTC.loss`.
public struct CTCResult<Scalar: TensorScalar> {
  /// Negative log-likelihood `−ln p(labels | x)` per utterance; `+∞` when the labels cannot be
  /// aligned to the utterance's frames.
  public var losses: [Scalar]
  /// `d(gradientScale · Σ finite losses) / d(logits)`, shape `[T × N × V]`: softmax minus the
  /// label occupancy per frame. Zero at padding frames and for utterances with infinite loss.
  public var gradient: Tensor<Scalar>

  /// Number of utterances whose loss is infinite (labels longer than the frames allow).
  public var infiniteCount: Int { losses.count { !$0.isFinite } }
}

/// Connectionist temporal classification loss (Graves et al. 2006) with the softmax fused in:
/// log-space forward–backward over the label sequence extended with blanks (blank id 0).
public enum CTC {
  /// Label id of the blank.
  public static let blank: Int32 = 0

  /// Fewest frames that can emit `labels`: one per label plus a blank between equal neighbours.
  public static func minimumFrames(_ labels: [Int32]) -> Int {
    labels.count + zip(labels, labels.dropFirst()).count { $0 == $1 }
  }

  /// Loss and gradient for a batch of pre-softmax activations.
  ///
  /// - Parameters:
  ///   - logits: `[T × N × V]` pre-softmax scores (time-major, as `DS2Model.forward` returns).
  ///   - lengths: valid frames per utterance, each in `0...T`.
  ///   - labels: target label ids per utterance, each in `1..<V`; may be empty.
  ///   - gradientScale: factor applied to the gradient, e.g. `1/N` for a batch-mean loss.
  ///   - pool: utterances run in parallel on its threads.
  @_specialize(exported: true, where Scalar == Float)
  public static func loss<Scalar: TensorScalar>(
    logits: Tensor<Scalar>, lengths: [Int], labels: [[Int32]], gradientScale: Scalar = 1, pool: WorkerPool = .serial
  ) -> CTCResult<Scalar> {
    precondition(logits.rank == 3, "CTC expects logits [T × N × V], got \(logits.shape)")
    let (steps, batch, vocabulary) = (logits.shape[0], logits.shape[1], logits.shape[2])
    precondition(lengths.count == batch && labels.count == batch, "need one length and one label sequence per utterance")
    SequenceLayout.check(lengths: lengths, steps: steps)
    for sequence in labels {
      precondition(sequence.allSatisfy { $0 > blank && Int($0) < vocabulary }, "labels must lie in 1..<\(vocabulary)")
    }
    var gradient = Tensor<Scalar>(shape: logits.shape)
    var losses = [Scalar](repeating: 0, count: batch)
    logits.withUnsafeBufferPointer { x in
      gradient.withUnsafeMutableBufferPointer { g in
        losses.withUnsafeMutableBufferPointer { l in
          // Each utterance writes only its own gradient rows and loss slot.
          nonisolated(unsafe) let (input, output, loss) = (x.baseAddress!, g.baseAddress!, l.baseAddress!)
          pool.forEach(batch) { b in
            let utterance = Utterance(
              input: input + b * vocabulary, gradient: output + b * vocabulary, rowStride: batch * vocabulary,
              frames: lengths[b], vocabulary: vocabulary, labels: labels[b])
            loss[b] = utterance.lossAndGradient(scale: gradientScale)
          }
        }
      }
    }
    return CTCResult(losses: losses, gradient: gradient)
  }

  /// One utterance's frames inside the batch buffers: frame `t` is the row at `t · rowStride`.
  private struct Utterance<Scalar: TensorScalar> {
    let input: UnsafePointer<Scalar>
    let gradient: UnsafeMutablePointer<Scalar>
    let rowStride: Int
    let frames: Int
    let vocabulary: Int
    let labels: [Int32]

    /// Writes the scaled gradient rows and returns the loss.
    func lossAndGradient(scale: Scalar) -> Scalar {
      guard frames >= CTC.minimumFrames(labels) else { return .infinity }
      guard frames > 0 else { return 0 }  // empty labels over zero frames: probability 1
      let states = 2 * labels.count + 1
      let logProbabilities = UnsafeMutablePointer<Scalar>.allocate(capacity: frames * vocabulary)
      let alpha = UnsafeMutablePointer<Scalar>.allocate(capacity: frames * states)
      let beta = UnsafeMutablePointer<Scalar>.allocate(capacity: frames * states)
      defer {
        logProbabilities.deallocate()
        alpha.deallocate()
        beta.deallocate()
      }
      for t in 0..<frames {
        let row = UnsafeMutableBufferPointer(start: logProbabilities + t * vocabulary, count: vocabulary)
        _ = row.initialize(from: UnsafeBufferPointer(start: input + t * rowStride, count: vocabulary))
        Softmax.logNormalize(row)
      }
      // Extended label sequence: blank, l1, blank, l2, …, blank.
      let extended = (0..<states).map { $0 % 2 == 1 ? Int(labels[$0 / 2]) : Int(CTC.blank) }
      // A state may be entered from two states back unless it is a blank or repeats that label.
      let allowsSkip = (0..<states).map { $0 >= 2 && extended[$0] != Int(CTC.blank) && extended[$0] != extended[$0 - 2] }

      // alpha[t][s]: log-probability of all prefixes π_0…π_t that end in state s.
      alpha.initialize(repeating: -.infinity, count: frames * states)
      alpha[0] = logProbabilities[extended[0]]
      if states > 1 { alpha[1] = logProbabilities[extended[1]] }
      for t in 1..<frames {
        let previous = alpha + (t - 1) * states
        let current = alpha + t * states
        let emission = logProbabilities + t * vocabulary
        for s in 0..<states {
          var sum = previous[s]
          if s >= 1 { sum = logAdd(sum, previous[s - 1]) }
          if allowsSkip[s] { sum = logAdd(sum, previous[s - 2]) }
          current[s] = sum + emission[extended[s]]
        }
      }
      // beta[t][s]: log-probability of all suffixes π_{t+1}…π_{T−1} given state s at frame t.
      beta.initialize(repeating: -.infinity, count: frames * states)
      let lastRow = beta + (frames - 1) * states
      lastRow[states - 1] = 0
      if states > 1 { lastRow[states - 2] = 0 }
      for t in stride(from: frames - 2, through: 0, by: -1) {
        let next = beta + (t + 1) * states
        let current = beta + t * states
        let emission = logProbabilities + (t + 1) * vocabulary
        for s in 0..<states {
          var sum = next[s] + emission[extended[s]]
          if s + 1 < states { sum = logAdd(sum, next[s + 1] + emission[extended[s + 1]]) }
          if s + 2 < states && allowsSkip[s + 2] { sum = logAdd(sum, next[s + 2] + emission[extended[s + 2]]) }
          current[s] = sum
        }
      }
      let finalAlpha = alpha + (frames - 1) * states
      let logLikelihood = states > 1 ? logAdd(finalAlpha[states - 1], finalAlpha[states - 2]) : finalAlpha[0]
      guard logLikelihood.isFinite else { return .infinity }
      // gradient = softmax − occupancy, occupancy[t][k] = Σ_{s: ext(s) = k} exp(α + β − ln p).
      for t in 0..<frames {
        let row = gradient + t * rowStride
        let logRow = logProbabilities + t * vocabulary
        for k in 0..<vocabulary { row[k] = Scalar.exp(logRow[k]) }
        for s in 0..<states {
          row[extended[s]] -= Scalar.exp(alpha[t * states + s] + beta[t * states + s] - logLikelihood)
        }
        for k in 0..<vocabulary { row[k] *= scale }
      }
      return -logLikelihood
    }

    /// ln(eᵃ + eᵇ), exact for −∞ operands.
    @inline(__always)
    private func logAdd(_ a: Scalar, _ b: Scalar) -> Scalar {
      if a == -.infinity { return b }
      if b == -.infinity { return a }
      return max(a, b) + Scalar.log1p(Scalar.exp(-abs(a - b)))
    }
  }
}
