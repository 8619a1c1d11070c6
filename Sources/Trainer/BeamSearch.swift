import DS2Core
import Foundation
import Training

/// CTC prefix beam search (Hannun et al. 2014) with an optional word language model scored
/// as in DS2 §7: `Q(y) = ln p_ctc(y | x) + α ln p_lm(y) + β · words(y)`.
///
/// Words are the runs of symbols between spaces; for a vocabulary without a space (Mandarin
/// characters) every symbol is a word. A word is scored by the language model when it is
/// completed (a space follows it, or the utterance ends, which also scores `</s>`).
public struct BeamSearchDecoder: Sendable {
  public let vocabulary: Vocabulary
  /// Prefixes kept after each frame.
  public var beamWidth: Int
  public var languageModel: LanguageModel?
  /// Language-model weight α.
  public var alpha: Double
  /// Word bonus β (only with a language model).
  public var beta: Double
  /// Symbols less likely than this (natural log) at a frame are not tried as extensions.
  public var pruneLogProbability = -12.0
  private let delimiter: Int32?

  /// - Precondition: `beamWidth ≥ 1`.
  public init(vocabulary: Vocabulary, beamWidth: Int, languageModel: LanguageModel? = nil, alpha: Double = 0.5, beta: Double = 1) {
    precondition(beamWidth >= 1, "beam width must be at least 1")
    self.vocabulary = vocabulary
    self.beamWidth = beamWidth
    self.languageModel = languageModel
    self.alpha = alpha
    self.beta = beta
    delimiter = vocabulary.id(of: " ")
  }

  private struct Beam {
    /// ln of the probability of the prefix's alignments ending in blank / in its last symbol.
    var blank = -Double.infinity
    var nonBlank = -Double.infinity
    /// α·ln p_lm + β·words over the completed words.
    var languageScore = 0.0
    /// Completed words (with `<s>` first) and the word being spelled.
    var words: [String] = ["<s>"]
    var partial = ""

    var acoustic: Double { logAdd(blank, nonBlank) }

    /// The same prefix with no probability mass yet (for the next frame).
    func resetting() -> Beam {
      var copy = self
      copy.blank = -.infinity
      copy.nonBlank = -.infinity
      return copy
    }
  }

  /// Decodes each utterance of `[T × N × V]` logits (its first `lengths[b]` frames).
  public func decode(logits: Tensor<Float>, lengths: [Int]) -> [[Int32]] {
    precondition(logits.rank == 3 && logits.shape[1] == lengths.count, "expected [T × N × V] logits and one length per utterance")
    let logProbabilities = Softmax.logProbabilities(logits)
    let (batch, symbols) = (logits.shape[1], logits.shape[2])
    return (0..<batch).map { b in
      var rows = [Double](repeating: 0, count: lengths[b] * symbols)
      for t in 0..<lengths[b] {
        for k in 0..<symbols { rows[t * symbols + k] = Double(logProbabilities.scalars[(t * batch + b) * symbols + k]) }
      }
      return decode(logProbabilities: rows, symbols: symbols)
    }
  }

  /// Decodes one utterance from natural-log symbol probabilities, `[frames × symbols]`
  /// row-major; returns the best label sequence.
  public func decode(logProbabilities: [Double], symbols: Int) -> [Int32] {
    precondition(symbols > 0 && logProbabilities.count % symbols == 0, "need whole frames of \(symbols) symbols")
    let frames = logProbabilities.count / symbols
    var beams: [[Int32]: Beam] = [[]: Beam(blank: 0)]
    for t in 0..<frames {
      let row = logProbabilities[(t * symbols)..<((t + 1) * symbols)]
      let candidates = (1..<symbols).filter { row[row.startIndex + $0] >= pruneLogProbability }
      var next: [[Int32]: Beam] = [:]
      let blankProbability = row[row.startIndex]
      for (prefix, beam) in beams {
        let total = beam.acoustic
        next[prefix, default: beam.resetting()].blank = logAdd(next[prefix, default: beam.resetting()].blank, total + blankProbability)
        for symbol in candidates {
          let p = row[row.startIndex + symbol]
          let label = Int32(symbol)
          var extended = prefix
          extended.append(label)
          if prefix.last == label {
            // A repeat collapses unless a blank separates the two.
            next[prefix, default: beam.resetting()].nonBlank = logAdd(next[prefix, default: beam.resetting()].nonBlank, beam.nonBlank + p)
            if next[extended] == nil { next[extended] = extend(beam, with: label) }
            next[extended]!.nonBlank = logAdd(next[extended]!.nonBlank, beam.blank + p)
          } else {
            if next[extended] == nil { next[extended] = extend(beam, with: label) }
            next[extended]!.nonBlank = logAdd(next[extended]!.nonBlank, total + p)
          }
        }
      }
      let kept = next.sorted { $0.value.acoustic + $0.value.languageScore > $1.value.acoustic + $1.value.languageScore }
        .prefix(beamWidth)
      beams = Dictionary(uniqueKeysWithValues: kept.map { ($0.key, $0.value) })
    }
    let best = beams.max { a, b in finalScore(a.value) < finalScore(b.value) }
    return best?.key ?? []
  }

  /// `beam` extended by `label`: scores a completed word when `label` ends one.
  private func extend(_ beam: Beam, with label: Int32) -> Beam {
    var result = beam.resetting()
    let symbol = vocabulary.symbols[Int(label)]
    if let delimiter {
      if label == delimiter {
        if !result.partial.isEmpty { completeWord(&result) }
      } else {
        result.partial += symbol
      }
    } else {
      result.partial = symbol
      completeWord(&result)
    }
    return result
  }

  private func completeWord(_ beam: inout Beam) {
    if let languageModel {
      beam.languageScore += alpha * languageModel.logProbability(of: beam.partial, after: beam.words) + beta
    }
    beam.words.append(beam.partial)
    beam.partial = ""
  }

  private func finalScore(_ beam: Beam) -> Double {
    guard let languageModel else { return beam.acoustic }
    var finished = beam
    if !finished.partial.isEmpty { completeWord(&finished) }
    return finished.acoustic + finished.languageScore + alpha * languageModel.logProbability(of: "</s>", after: finished.words)
  }
}

/// ln(eᵃ + eᵇ), exact for −∞ operands.
@inline(__always)
func logAdd(_ a: Double, _ b: Double) -> Double {
  if a == -.infinity { return b }
  if b == -.infinity { return a }
  return max(a, b) + log1p(exp(-abs(a - b)))
}
