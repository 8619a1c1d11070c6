/// Best-path CTC decoding: the most likely symbol per frame, repeats collapsed, blanks dropped.
public enum GreedyDecoder {
  /// Decodes `[T × N × V]` scores (logits or log-probabilities; only the per-frame argmax
  /// matters) for the first `lengths[b]` frames of each utterance.
  @_specialize(exported: true, where Scalar == Float)
  public static func decode<Scalar: TensorScalar>(_ scores: Tensor<Scalar>, lengths: [Int]) -> [[Int32]] {
    precondition(scores.rank == 3 && scores.shape[1] == lengths.count && scores.shape[2] > 0, "expected [T × N × V] scores and one length per utterance")
    let (steps, batch, vocabulary) = (scores.shape[0], scores.shape[1], scores.shape[2])
    SequenceLayout.check(lengths: lengths, steps: steps)
    return scores.withUnsafeBufferPointer { x in
      (0..<batch).map { b in
        var labels: [Int32] = []
        var previous = Int(CTC.blank)
        for t in 0..<lengths[b] {
          let row = (t * batch + b) * vocabulary
          var best = 0
          for k in 1..<vocabulary where x[row + k] > x[row + best] { best = k }
          if best != previous && best != Int(CTC.blank) { labels.append(Int32(best)) }
          previous = best
        }
        return labels
      }
    }
  }
}

/// Levenshtein distance: the fewest insertions, deletions and substitutions turning `hypothesis`
/// into `reference`.
public func editDistance<Element: Equatable>(_ hypothesis: [Element], _ reference: [Element]) -> Int {
  if hypothesis.isEmpty { return reference.count }
  var previous = Array(0...reference.count)
  var current = previous
  for (i, h) in hypothesis.enumerated() {
    current[0] = i + 1
    for (j, r) in reference.enumerated() {
      current[j + 1] = min(previous[j + 1] + 1, current[j] + 1, previous[j] + (h == r ? 0 : 1))
    }
    swap(&previous, &current)
  }
  return previous[reference.count]
}

/// Edit counts for an error rate (CER or WER); sum over a corpus, then read `rate`.
public struct ErrorCounts: Equatable, Sendable, Codable {
  /// Total edit distance.
  public var edits: Int
  /// Total reference length (characters or words).
  public var referenceLength: Int

  public init(edits: Int = 0, referenceLength: Int = 0) {
    self.edits = edits
    self.referenceLength = referenceLength
  }

  /// `edits / referenceLength`; 0 for an empty reference with no edits, +∞ with edits.
  public var rate: Double {
    referenceLength > 0 ? Double(edits) / Double(referenceLength) : (edits == 0 ? 0 : .infinity)
  }

  /// Character-level counts: every Character counts, spaces included.
  public static func characters(hypothesis: String, reference: String) -> ErrorCounts {
    ErrorCounts(edits: editDistance(Array(hypothesis), Array(reference)), referenceLength: reference.count)
  }

  /// Word-level counts: words are the whitespace-separated tokens.
  public static func words(hypothesis: String, reference: String) -> ErrorCounts {
    let h = hypothesis.split(whereSeparator: \.isWhitespace)
    let r = reference.split(whereSeparator: \.isWhitespace)
    return ErrorCounts(edits: editDistance(h, r), referenceLength: r.count)
  }

  public static func + (a: ErrorCounts, b: ErrorCounts) -> ErrorCounts {
    ErrorCounts(edits: a.edits + b.edits, referenceLength: a.referenceLength + b.referenceLength)
  }

  public static func += (a: inout ErrorCounts, b: ErrorCounts) { a = a + b }
}
