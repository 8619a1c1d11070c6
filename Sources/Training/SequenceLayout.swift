/// Helpers for padded, time-major batches `[T × N × …]` whose utterance `b` is valid for
/// time steps `0 ..< lengths[b]`.
enum SequenceLayout {
  /// Rows of a `[T × N × k × C]` tensor viewed as a `(T·N·k) × C` matrix that belong to valid
  /// time steps, as ascending, merged ranges.
  static func validRows(lengths: [Int], steps: Int, rowsPerPosition k: Int) -> [Range<Int>] {
    var ranges: [Range<Int>] = []
    let batch = lengths.count
    for t in 0..<steps {
      for b in 0..<batch where t < lengths[b] {
        let start = (t * batch + b) * k
        if let last = ranges.last, last.upperBound == start {
          ranges[ranges.count - 1] = last.lowerBound..<(start + k)
        } else {
          ranges.append(start..<(start + k))
        }
      }
    }
    return ranges
  }

  /// For each time step `s`, the smallest `n` such that every utterance valid at `s` has index
  /// below `n` (a prefix of the batch; exactly the active utterances when lengths are sorted
  /// in descending order).
  static func activePrefix(lengths: [Int], steps: Int) -> [Int] {
    (0..<steps).map { s in
      (lengths.lastIndex { $0 > s } ?? -1) + 1
    }
  }

  /// Output length of a strided window: `⌊(length + 2·padding − kernel) / stride⌋ + 1`
  /// (PyTorch's formula with floor division), and 0 for an empty input or when no window fits.
  static func convolvedLength(_ length: Int, kernel: Int, stride: Int, padding: Int) -> Int {
    let span = length + 2 * padding - kernel
    return length == 0 || span < 0 ? 0 : span / stride + 1
  }

  /// Checks that `lengths` describe a padded batch of `steps` time steps.
  static func check(lengths: [Int], steps: Int) {
    precondition(!lengths.isEmpty, "empty batch")
    precondition(lengths.allSatisfy { $0 >= 0 && $0 <= steps }, "lengths \(lengths) must lie in 0...\(steps)")
  }
}
