import DS2Core
import Foundation
import Shards
import TestSupport
import Training
import XCTest

@testable import Trainer

final class DecodingTests: XCTestCase {
  private let arpa = """
    \\data\\
    ngram 1=4
    ngram 2=2

    \\1-grams:
    -1.0 <s> -0.5
    -0.5 the -0.3
    -1.0 cat
    -0.7 </s>

    \\2-grams:
    -0.2 <s> the
    -0.3 the cat

    \\end\\
    """

  func testARPAProbabilitiesWithBackoff() throws {
    let model = try LanguageModel(arpa: arpa)
    let ln10 = log(10.0)
    XCTAssertEqual(model.order, 2)
    XCTAssertEqual(model.logProbability(of: "the", after: ["<s>"]), -0.2 * ln10, accuracy: 1e-12)
    XCTAssertEqual(model.logProbability(of: "cat", after: ["<s>"]), (-0.5 - 1.0) * ln10, accuracy: 1e-12, "back-off of <s>, then the unigram")
    XCTAssertEqual(model.logProbability(of: "cat", after: ["<s>", "the"]), -0.3 * ln10, accuracy: 1e-12)
    XCTAssertEqual(model.logProbability(of: "dog", after: ["the"]), -10 * ln10, accuracy: 1e-12, "unknown word")
    XCTAssertEqual(model.logProbability(sentence: ["the", "cat"]), (-0.2 - 0.3 + -0.7 + 0) * ln10, accuracy: 1e-12)
    XCTAssertThrowsError(try LanguageModel(arpa: "not an arpa file")) { error in
      XCTAssertTrue("\(error)".contains("not an ARPA file"), "\(error)")
    }
    XCTAssertThrowsError(try LanguageModel(arpa: "\\data\\\n\\1-grams:\nx the\n")) { error in
      XCTAssertTrue("\(error)".contains(":3:"), "names the line: \(error)")
    }
  }

  /// Two frames of P(blank) = 0.6, P(a) = 0.4: the best path is blank–blank (0.36) but the
  /// labelling "a" has probability 0.64; the prefix search finds it.
  func testBeamSearchFindsTheMostProbableLabelling() {
    let vocabulary = Vocabulary(nonBlankSymbols: ["a"])
    let rows = [log(0.6), log(0.4), log(0.6), log(0.4)]
    let decoder = BeamSearchDecoder(vocabulary: vocabulary, beamWidth: 4)
    XCTAssertEqual(decoder.decode(logProbabilities: rows, symbols: 2), [1])
    // Repeats need a blank between them: a a (collapsed) versus a blank a.
    let repeated = [log(0.05), log(0.95), log(0.9), log(0.1), log(0.05), log(0.95)]
    XCTAssertEqual(decoder.decode(logProbabilities: repeated, symbols: 2), [1, 1])
  }

  /// Frames spelling "the ca" then a last frame slightly preferring d over t: without a
  /// language model the search says "the cad"; with it, "the cat".
  /// A language model path that is a FIFO, a folder or missing is refused by name at once
  /// (a FIFO is never opened for reading, so nothing waits on a writer).
  func testLanguageModelFileMustBeARegularFile() throws {
    let directory = TemporaryDirectory("arpa")
    let fifo = directory.path + "/lm.arpa"
    XCTAssertEqual(mkfifo(fifo, 0o644), 0)
    for (path, reason) in [(fifo, "not a regular file"), (directory.path, "not a regular file"), (directory.path + "/missing.arpa", "no such file")] {
      XCTAssertThrowsError(try LanguageModel(arpaPath: path)) { error in
        XCTAssertTrue("\(error)".contains(path) && "\(error)".contains(reason), "\(error)")
      }
    }
    let good = directory.path + "/good.arpa"
    try Data(arpa.utf8).write(to: URL(fileURLWithPath: good))
    XCTAssertEqual(try LanguageModel(arpaPath: good).order, try LanguageModel(arpa: arpa).order)
  }

  func testLanguageModelChangesTheDecision() throws {
    let vocabulary = Vocabulary.english
    var rows: [Double] = []
    func frame(_ probabilities: [Int32: Double]) {
      let rest = (1 - probabilities.values.reduce(0, +)) / Double(vocabulary.count - probabilities.count)
      rows += (0..<vocabulary.count).map { log(probabilities[Int32($0)] ?? rest) }
    }
    for character in "the ca".unicodeScalars {
      frame([vocabulary.id(of: character)!: 0.9])
      frame([0: 0.9])
    }
    frame([vocabulary.id(of: "d")!: 0.5, vocabulary.id(of: "t")!: 0.4])
    let plain = BeamSearchDecoder(vocabulary: vocabulary, beamWidth: 8)
    XCTAssertEqual(vocabulary.decode(plain.decode(logProbabilities: rows, symbols: vocabulary.count)), "the cad")
    let withModel = BeamSearchDecoder(vocabulary: vocabulary, beamWidth: 8, languageModel: try LanguageModel(arpa: arpa), alpha: 0.5, beta: 0)
    XCTAssertEqual(vocabulary.decode(withModel.decode(logProbabilities: rows, symbols: vocabulary.count)), "the cat")
  }

  func testCheckpointRoundTripIsExactAndAtomic() throws {
    let directory = NSTemporaryDirectory() + "ckpt-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let recipe = ModelRecipe.small
    let features = FeatureParameters(
      sampleRateHertz: 16000, windowSeconds: 0.02, hopSeconds: 0.01, windowSamples: 320, hopSamples: 160, fftSize: 320,
      bins: 161, window: .hann, epsilon: 1e-14, loudnessTargetDecibels: nil, dtype: .float16, channelRule: .mono,
      resampleQuality: .sincMedium)
    var statistics = FeatureStatistics(bins: 2)
    [Float](arrayLiteral: 1, 2).withUnsafeBufferPointer { statistics.add(frames: 1, values: $0) }
    var progress = TrainingProgress(learningRate: 0.5)
    progress.bestCER = .infinity
    let header = Checkpoint.Header(
      toolVersion: "test", recipe: recipe, model: recipe.model.config(bins: 161, vocabularySize: 29), datasets: ["d"],
      trainSplits: ["train"], evaluationSplit: nil, features: features,
      normalization: NormalizationInfo(mode: .global, statisticsSplits: ["train"], statistics: statistics),
      vocabulary: .english, progress: progress, optimizerStep: 7, tensors: [])
    let tensors = [
      "a": Tensor<Float>(shape: [2, 3], scalars: [1, -2, 3.5, .pi, -0, 1e-30]),
      "b": Tensor<Float>(shape: [1], scalars: [42]),
    ]
    let path = directory + "/x.ckpt"
    try Checkpoint(header: header, tensors: tensors).write(to: path)
    XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".tmp"))
    let read = try Checkpoint.read(path: path)
    XCTAssertEqual(read.tensors, tensors)
    XCTAssertEqual(read.header.progress, progress)
    XCTAssertEqual(read.header.recipe, recipe)
    XCTAssertEqual(read.header.optimizerStep, 7)
    let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
    try bytes.prefix(bytes.count - 4).write(to: URL(fileURLWithPath: path))
    XCTAssertThrowsError(try Checkpoint.read(path: path)) { XCTAssertTrue("\($0)".contains("truncated"), "\($0)") }
    try Data("nope".utf8).write(to: URL(fileURLWithPath: path))
    XCTAssertThrowsError(try Checkpoint.read(path: path)) { XCTAssertTrue("\($0)".contains("not a ds2-data checkpoint"), "\($0)") }
    // The settings it carries (threads, batch size, beam width) are checked like a model YAML's.
    var unchecked = header
    unchecked.recipe.decoding.beamWidth = 0
    try Checkpoint(header: unchecked, tensors: tensors).write(to: path)
    XCTAssertThrowsError(try Checkpoint.read(path: path)) {
      XCTAssertTrue("\($0)".contains("the checkpoint's model settings: decoding.beamWidth: 0 is out of range"), "\($0)")
    }
    // A vocabulary that does not fit the model, and impossible progress, are damage.
    var shortVocabulary = header
    shortVocabulary.vocabulary = Vocabulary(nonBlankSymbols: ["a"])
    try Checkpoint(header: shortVocabulary, tensors: tensors).write(to: path)
    XCTAssertThrowsError(try Checkpoint.read(path: path)) {
      XCTAssertTrue("\($0)".contains("vocabulary has 2 symbols, its model outputs 29"), "\($0)")
    }
    for change in [{ (p: inout TrainingProgress) in p.learningRate = .nan }, { $0.batchesDone = -1 }, { $0.trainingSeconds = -.infinity }] {
      var damaged = header
      change(&damaged.progress)
      try Checkpoint(header: damaged, tensors: tensors).write(to: path)
      XCTAssertThrowsError(try Checkpoint.read(path: path)) { XCTAssertTrue("\($0)".contains("the checkpoint's progress"), "\($0)") }
    }
  }
}
