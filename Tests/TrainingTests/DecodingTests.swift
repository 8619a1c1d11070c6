import XCTest

@testable import Training

final class DecodingTests: XCTestCase {
  /// One-hot scores spelling frame argmaxes; repeats collapse, blanks separate, length cuts.
  func testGreedyDecodeCollapsesRepeatsAndDropsBlanks() {
    let paths: [[Int]] = [[0, 1, 1, 0, 1, 2, 2, 0], [3, 3, 3, 0, 0, 2, 1, 1]]
    let lengths = [8, 6]
    var scores = Tensor<Float>(shape: [8, 2, 4], repeating: -1)
    for (b, path) in paths.enumerated() {
      for (t, symbol) in path.enumerated() { scores[t, b, symbol] = 2 }
    }
    XCTAssertEqual(GreedyDecoder.decode(scores, lengths: lengths), [[1, 1, 2], [3, 2]])
  }

  func testEditDistance() {
    XCTAssertEqual(editDistance(Array("kitten"), Array("sitting")), 3)
    XCTAssertEqual(editDistance(Array(""), Array("abc")), 3)
    XCTAssertEqual(editDistance(Array("abc"), Array("")), 3)
    XCTAssertEqual(editDistance([1, 2, 3], [1, 2, 3]), 0)
    XCTAssertEqual(editDistance(Array("flaw"), Array("lawn")), 2)
  }

  /// "the bat sat down" against "the cat sat": 1 substitution + 1 insertion over 3 words;
  /// 1 substitution + 5 inserted characters (" down") over 11 characters.
  func testErrorRates() {
    let words = ErrorCounts.words(hypothesis: "the bat sat down", reference: "the cat sat")
    XCTAssertEqual(words, ErrorCounts(edits: 2, referenceLength: 3))
    XCTAssertEqual(words.rate, 2.0 / 3, accuracy: 1e-12)
    let characters = ErrorCounts.characters(hypothesis: "the bat sat down", reference: "the cat sat")
    XCTAssertEqual(characters, ErrorCounts(edits: 6, referenceLength: 11))
    var corpus = ErrorCounts()
    corpus += characters
    corpus += ErrorCounts.characters(hypothesis: "abc", reference: "abc")
    XCTAssertEqual(corpus.rate, 6.0 / 14, accuracy: 1e-12)
    XCTAssertEqual(ErrorCounts.words(hypothesis: "  spaced   out ", reference: "spaced out").edits, 0)
    XCTAssertEqual(ErrorCounts().rate, 0)
  }
}
