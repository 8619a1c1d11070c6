import Augmentation
import DS2Core
import Features
import Foundation
import Pipeline
import TestSupport
import XCTest

/// Every number of a recipe is checked (finite, within its documented range) before it
/// is used, and YAML that would overflow the parser's stack is refused before parsing.
final class RecipeValidationTests: XCTestCase {
  let base = "corpus: {kind: librispeech, root: /x, splits: [train-clean-100]}\n"

  /// Writes `yaml` as a recipe file and loads it.
  func load(_ yaml: String, in directory: TemporaryDirectory) throws -> Recipe {
    let path = directory.path + "/r.yaml"
    try yaml.write(toFile: path, atomically: true, encoding: .utf8)
    return try Recipe.load(path: path)
  }

  /// Asserts that `yaml` (after the base lines) loads but fails validation with a
  /// `ConfigurationError` whose message contains every string of `expected`.
  func assertRejected(_ yaml: String, _ expected: [String], in directory: TemporaryDirectory, line: UInt = #line) {
    do {
      let recipe = try load(base + yaml, in: directory)
      XCTAssertThrowsError(try recipe.validate(), yaml, line: line) { error in
        XCTAssertTrue(error is ConfigurationError, "\(type(of: error)): \(error)", line: line)
        for text in expected { XCTAssertTrue("\(error)".contains(text), "\(yaml) → \(error)", line: line) }
      }
    } catch {
      XCTFail("\(yaml): load failed: \(error)", line: line)
    }
  }

  func testNonFiniteFloatsAreNamed() {
    let directory = TemporaryDirectory("recipe-nan")
    let cases: [(String, String)] = [
      ("features: {windowSeconds: .nan}", "features.windowSeconds: nan is not a finite number (0.001 … 1 s)"),
      ("features: {hopSeconds: .inf}", "features.hopSeconds: inf is not a finite number"),
      ("features: {epsilon: -.inf}", "features.epsilon: -inf is not a finite number"),
      ("features: {loudnessTargetDecibels: .nan}", "features.loudnessTargetDecibels: nan is not a finite number"),
      ("normalization: {stdFloor: .inf}", "normalization.stdFloor: inf is not a finite number"),
      ("filters: {minDurationSeconds: .nan}", "filters.minDurationSeconds: nan is not a finite number"),
      ("filters: {maxDurationSeconds: .inf}", "filters.maxDurationSeconds: inf is not a finite number"),
      ("augment: {speedFactors: [0.9, .nan]}", "augment.speedFactors[1]: nan is not a finite number"),
      ("augment: {noise: {probability: .nan}}", "augment.noise.probability: nan is not a finite number (0 … 1)"),
      ("augment: {noise: {snrDecibels: [0, .inf]}}", "augment.noise.snrDecibels: [0, inf] is not a pair of finite numbers"),
      ("augment: {noise: {babbleSnrDecibels: [-.inf, 3]}}", "augment.noise.babbleSnrDecibels: [-inf, 3] is not"),
      ("augment: {volume: {gainDecibels: [.nan, 0]}}", "augment.volume.gainDecibels: [nan, 0] is not"),
      ("augment: {reverb: {probability: .inf}}", "augment.reverb.probability: inf is not a finite number"),
    ]
    for (yaml, expected) in cases { assertRejected(yaml, [expected], in: directory) }
  }

  func testOutOfRangeValuesAreNamed() {
    let directory = TemporaryDirectory("recipe-range")
    let cases: [(String, [String])] = [
      ("features: {windowSeconds: 1e9}", ["features.windowSeconds: 1000000000 is out of range (0.001 … 1 s)"]),
      ("features: {hopSeconds: 0}", ["features.hopSeconds: 0 is out of range"]),
      ("features: {fftSize: 1099511627776}", ["features.fftSize: 1099511627776 is out of range", "65536"]),
      ("features: {fftSize: 256}", ["features.fftSize: 256 is out of range (the window's 320 … 65536 samples)"]),
      // 1 s at 384 kHz is a window longer than the longest FFT.
      ("audio: {sampleRateHertz: 384000}\nfeatures: {windowSeconds: 1}", ["features.windowSeconds: 1 s is 384000 samples"]),
      ("features: {epsilon: 0}", ["features.epsilon: 0 is out of range (1e-30 … 1)"]),
      ("features: {loudnessTargetDecibels: 3}", ["features.loudnessTargetDecibels: 3 is out of range (-100 … 0 dBFS)"]),
      ("audio: {sampleRateHertz: 500}", ["audio.sampleRateHertz: 500 is out of range (1000 … 384000 Hz)"]),
      ("audio: {sampleRateHertz: 9223372036854775807}", ["audio.sampleRateHertz: 9223372036854775807 is out of range"]),
      ("shards: {maxShardBytes: 9223372036854775807}", ["shards.maxShardBytes: 9223372036854775807 is out of range (1 MiB … 1 TiB)"]),
      ("shards: {maxShardBytes: 1000000000000000}", ["shards.maxShardBytes: 1000000000000000 is out of range"]),
      ("normalization: {stdFloor: 0}", ["normalization.stdFloor: 0 is out of range"]),
      ("filters: {minDurationSeconds: -1}", ["filters.minDurationSeconds: -1 is out of range (0 … 86400 s)"]),
      ("filters: {minDurationSeconds: 5, maxDurationSeconds: 2}", ["filters.maxDurationSeconds: 2 must exceed minDurationSeconds"]),
      ("threads: 100000", ["threads: 100000 is out of range (0 … 1024"]),
      ("threads: -1", ["threads: -1 is out of range"]),
      ("augment: {speedFactors: [0.5]}", ["augment.speedFactors[0]: 0.5 is out of range (> 0.5 … 2)"]),
      ("augment: {speedFactors: [1.0, 2.5]}", ["augment.speedFactors[1]: 2.5 is out of range"]),
      ("augment: {speedFactors: []}", ["augment.speedFactors: 0 factors"]),
      ("augment: {noise: {probability: 1.5}}", ["augment.noise.probability: 1.5 is out of range (0 … 1)"]),
      ("augment: {noise: {snrDecibels: [-80, 0]}}", ["augment.noise.snrDecibels: [-80, 0] is out of range (-50 … 100 dB, low ≤ high)"]),
      ("augment: {noise: {snrDecibels: [20, 0]}}", ["augment.noise.snrDecibels: [20, 0] is out of range"]),
      ("augment: {noise: {babbleSpeakers: [1, 9223372036854775807]}}", ["augment.noise.babbleSpeakers", "≤ 64"]),
      ("augment: {volume: {gainDecibels: [-70, 0]}}", ["augment.volume.gainDecibels: [-70, 0] is out of range (-60 … 60 dB"]),
    ]
    for (yaml, expected) in cases { assertRejected(yaml, expected, in: directory) }
  }

  /// The derived sample counts never overflow: extreme values are refused by range, not trapped on.
  func testDerivedSampleCountsAreCheckedBeforeConversion() {
    var features = SpectrogramConfig()
    features.windowSeconds = 1
    XCTAssertThrowsError(try features.validate(sampleRateHertz: Int.max)) { XCTAssertTrue("\($0)".contains("windowSeconds"), "\($0)") }
    features.windowSeconds = 0.02
    features.hopSeconds = 1
    XCTAssertThrowsError(try features.validate(sampleRateHertz: 65_536 * 100)) { XCTAssertTrue("\($0)".contains("windowSeconds"), "\($0)") }
    XCTAssertThrowsError(try features.validate(sampleRateHertz: 0)) { XCTAssertTrue("\($0)".contains("sampleRateHertz"), "\($0)") }
  }

  /// A recipe holding NaN (as a library caller may build one) is refused by `prepare`,
  /// not trapped on while its identity is computed.
  func testPrepareRefusesANonFiniteRecipe() throws {
    let directory = TemporaryDirectory("recipe-nan-prepare")
    var recipe = Recipe(name: "x", corpus: CorpusConfig(kind: .librispeech, root: directory.path, splits: ["train"]), output: directory.path + "/out")
    recipe.features.windowSeconds = .nan
    XCTAssertNotNil(recipe.contentIdentity)
    XCTAssertThrowsError(try prepare(recipe: recipe)) { XCTAssertTrue("\($0)".contains("features.windowSeconds: nan"), "\($0)") }
    recipe.features.windowSeconds = 0.02
    recipe.augment = AugmentConfig()
    recipe.augment?.noise.snrDecibels = DecibelRange(0, .infinity)
    XCTAssertThrowsError(try augment(recipe: recipe)) { XCTAssertTrue("\($0)".contains("augment.noise.snrDecibels"), "\($0)") }
  }

  func testDeeplyNestedRecipesAreRefusedBeforeParsing() throws {
    let directory = TemporaryDirectory("recipe-deep")
    let path = directory.path + "/r.yaml"
    func assertRefused(_ text: String, _ expected: String, line: UInt = #line) throws {
      try text.write(toFile: path, atomically: true, encoding: .utf8)
      XCTAssertThrowsError(try Recipe.load(path: path), line: line) { error in
        XCTAssertTrue(error is ConfigurationError, "\(error)", line: line)
        XCTAssertTrue("\(error)".contains("recipe \(path): "), "\(error)", line: line)
        XCTAssertTrue("\(error)".contains(expected), "\(error)", line: line)
      }
    }
    // 5,000 nested flow sequences in about 10 KB: Yams would overflow the stack.
    try assertRefused(base + "name: " + String(repeating: "[", count: 5_000) + String(repeating: "]", count: 5_000), "line 2 nests deeper than 64 levels")
    try assertRefused(base + "name: " + String(repeating: "{a: ", count: 5_000), "nests deeper than 64 levels")
    // Block nesting by indentation, and sequences opened on one line.
    let mappings = (0..<100).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n")
    try assertRefused(base + mappings, "nests deeper than 64 levels")
    try assertRefused(base + "x: \n" + String(repeating: "- ", count: 3_000) + "a", "line 3 nests deeper than 64 levels")
    // Aliases chained into a deep tree (Yams built it, then overflowed the stack freeing it).
    let chain = (1..<40_000).map { "  - &a\($0) [*a\($0 - 1)]" }.joined(separator: "\n")
    try assertRefused(base + "augment: {splits: &a0 [x]}\nname:\n" + chain, "nests deeper than 64 levels")
    // Size before anything else.
    try assertRefused(base + "# " + String(repeating: "x", count: 1 << 20), "larger than 1 MiB")
    // Quotes in odd places, which a reader of the nesting could misplace, hide nothing
    // from the safe bound (the parser would nest 5,000 deep in each).
    let deep = String(repeating: "[", count: 5_000)
    try assertRefused(base + "x: [{\"a\":']'}, a\n'b, " + deep, "may nest deeper than 96 levels")
    try assertRefused(base + "k: a:[\nj:\n  " + String(repeating: "- ", count: 3_000) + "x", "may nest deeper than 96 levels")
    let cycle = String(repeating: "[", count: 40) + " \"\n" + String(repeating: "]", count: 40) + "\n\", "
    try assertRefused(base + "x: " + String(repeating: cycle, count: 100), "may nest deeper than 96 levels")
    // A recipe at ordinary depth, with brackets in quotes and comments, still loads.
    let quoted = String(repeating: "[", count: 30)
    try (base + "name: '\(quoted)'  # \(quoted)\noutput: \"\(quoted)\"\n").write(toFile: path, atomically: true, encoding: .utf8)
    XCTAssertEqual(try Recipe.load(path: path).name, quoted)
  }

  /// The scanner's depth: quotes and comments hide no structure, and no quote can
  /// hide flow nesting on a line YAML reads as structure.
  /// The safe bound counts brackets inside quotes and comments as open, and does not
  /// depend on telling quotes apart.
  func testSafeDepthBound() {
    func boundExceeded(_ text: String, _ limit: Int) -> Int? { YAMLText.firstLine(depthBoundAbove: limit, in: Array(text.utf8)) }
    XCTAssertNil(boundExceeded("a: [[1], {b: [2]}]\nc:\n  d:\n    - e\n", 5))
    XCTAssertNil(boundExceeded(String(repeating: "a: [[1], {b: [2]}]\n", count: 1_000), 4), "closed brackets close")
    XCTAssertEqual(boundExceeded("a: ['x', 'y']\nb: ['x']\nc: [1]", 3), 3, "brackets holding quotes stay open")
    XCTAssertEqual(boundExceeded("a: x[\nb: [[1]]", 3), 2, "brackets in plain text count")
    XCTAssertEqual(boundExceeded(String(repeating: "- ", count: 5) + "x", 5), 1)
    XCTAssertEqual(boundExceeded("a: &a [[1]]\nb: [*a]", 4), 2)
    for name in (try? FileManager.default.contentsOfDirectory(atPath: repositoryRoot + "/recipes")) ?? [] where name.hasSuffix(".yaml") {
      let bytes = Array(FileManager.default.contents(atPath: repositoryRoot + "/recipes/" + name)!)
      XCTAssertNil(YAMLText.firstLine(depthBoundAbove: 8, in: bytes), name)
    }
  }

  func testNestingScanner() {
    func depthExceeded(_ text: String, _ limit: Int = 64) -> Int? { YAMLText.firstLine(nestedDeeperThan: limit, in: Array(text.utf8)) }
    let deep = String(repeating: "[", count: 100)
    XCTAssertNil(depthExceeded("a: [[1], {b: [2]}]\nc:\n  d:\n    - e\n"))
    XCTAssertNil(depthExceeded("a: '\(deep)'"))
    XCTAssertNil(depthExceeded("a: 'it''s \(deep)'"))
    XCTAssertNil(depthExceeded("a: \"x\\\" \(deep)\""))
    XCTAssertNil(depthExceeded("a: b # \(deep)"))
    XCTAssertEqual(depthExceeded("a: b\nc: \(deep)"), 2)
    XCTAssertEqual(depthExceeded("a: b#\(deep)"), 1, "# inside a plain scalar starts no comment")
    XCTAssertEqual(depthExceeded("a: it's \(deep)"), 1, "an apostrophe inside a plain scalar opens no quote")
    XCTAssertEqual(depthExceeded("a: \"x\n\(deep)"), 2, "a quote ends, for the scanner, at its line's end")
    XCTAssertEqual(depthExceeded("[a\n'b, \(deep)"), 2, "a flow scalar continued on the next line opens no quote")
    XCTAssertEqual(depthExceeded("[a,\n'b', \(deep)"), 2)
    // An alias is as deep as its place plus the deepest node before it.
    XCTAssertNil(depthExceeded("d: &d {x: 1}\nfeatures: *d\nmore: [*d, *d]\n<<: *d"))
    XCTAssertEqual(depthExceeded("a: &a [[[1]]]\nb: &b [*a]\nc: &c [*b]\nd: [*c]", 7), 3)
    XCTAssertNil(depthExceeded("a: 2*3\n", 1), "an asterisk inside a scalar")
    // The line's own level and one per entry opened on it.
    XCTAssertEqual(depthExceeded(String(repeating: "- ", count: 9) + "x", 9), 1)
    XCTAssertNil(depthExceeded(String(repeating: "- ", count: 8) + "x", 9))
  }
}
