import Foundation
import TestSupport
import XCTest

/// Numeric flags out of range are usage errors (exit status 64) naming the flag; recipe
/// and model values out of range are configuration errors (exit status 1) naming the
/// field. Neither traps.
final class ValidationCLITests: XCTestCase {
  func testNumericFlagsOutOfRangeExit64NamingTheFlag() throws {
    let recipe = "recipes/mini-librispeech.yaml"
    let cases: [([String], String)] = [
      (["augment", recipe, "--snr", "0:inf"], "--snr: [0, inf] is not a pair of finite numbers"),
      (["augment", recipe, "--snr=-80:0"], "--snr: [-80, 0] is out of range (-50 … 100 dB"),
      (["augment", recipe, "--snr", "nan:0"], "--snr"),
      (["augment", recipe, "--speed", "nan"], "--speed[0]: nan is not a finite number"),
      (["augment", recipe, "--speed", "0.9,1.0,3"], "--speed[2]: 3 is out of range (> 0.5 … 2)"),
      (["augment", recipe, "--noise-probability", "nan"], "--noise-probability: nan is not a finite number"),
      (["augment", recipe, "--noise-probability", "1.5"], "--noise-probability: 1.5 is out of range (0 … 1)"),
      (["prepare", recipe, "--threads", "100000"], "--threads: 100000 is out of range (0 … 1024"),
      (["prepare", recipe, "--threads=-1"], "--threads: -1 is out of range"),
      (["train", "out/x", "--epochs", "9223372036854775807"], "--epochs: 9223372036854775807 is out of range (1 … 1000000)"),
      (["train", "out/x", "--epochs", "0"], "--epochs: 0 is out of range"),
      (["train", "out/x", "--threads", "5000"], "--threads: 5000 is out of range"),
      (["train", "--benchmark", "--batch-size", "100000"], "--batch-size: 100000 is out of range (1 … 512)"),
      (["evaluate", "runs/x", "--beam-width", "0"], "--beam-width: 0 is out of range (1 … 4096)"),
      (["evaluate", "runs/x", "--alpha", "inf"], "--alpha: inf is not a finite number"),
      (["transcribe", "runs/x", "a.wav", "--beta", "nan"], "--beta: nan is not a finite number"),
      (["inspect", "out/x", "--records=-1"], "--records: -1 is out of range"),
      (["prepare", recipe, "--partition", "3/2"], "--partition: index 3 is outside 0 … 1"),
      (["prepare", recipe, "--partition=-1/4"], "-1 is neither an index (0 … 3) nor auto"),
      (["prepare", recipe, "--partition", "0/0"], "the partition count 0 must be 1"),
      (["augment", recipe, "--partition", "a/b"], "expected K/N or auto/N"),
      (["prepare", recipe, "--partition", "auto/4"], "none of SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX is set"),
    ]
    for (arguments, expected) in cases {
      let result = try runBinary(arguments)
      XCTAssertEqual(result.status, 64, "\(arguments): \(result.stderr)")
      XCTAssertTrue(result.stderr.contains(expected), "\(arguments): \(result.stderr)")
    }
  }

  func testRecipeAndModelValuesOutOfRangeExit1NamingTheField() throws {
    let directory = TemporaryDirectory("cli-validation")
    let recipe = directory.file("r.yaml")
    let base = "corpus: {kind: librispeech, root: corpora/mini-librispeech, splits: [train-clean-100]}\noutput: \(directory.path)/out\n"
    let cases: [(String, String)] = [
      ("features: {windowSeconds: .nan}", "features.windowSeconds: nan is not a finite number"),
      ("features: {windowSeconds: 1e9}", "features.windowSeconds: 1000000000 is out of range (0.001 … 1 s)"),
      ("features: {fftSize: 1099511627776}", "features.fftSize: 1099511627776 is out of range"),
      ("shards: {maxShardBytes: 9223372036854775807}", "shards.maxShardBytes: 9223372036854775807 is out of range (1 MiB … 1 TiB)"),
      ("shards: {maxShardBytes: 1000000000000000}", "shards.maxShardBytes: 1000000000000000 is out of range"),
      ("threads: 100000", "threads: 100000 is out of range"),
      ("name: " + String(repeating: "[", count: 5_000), "recipe \(recipe): line 3 nests deeper than 64 levels"),
    ]
    for (yaml, expected) in cases {
      try (base + yaml).write(toFile: recipe, atomically: true, encoding: .utf8)
      let result = try runBinary(["prepare", recipe, "-q"])
      XCTAssertEqual(result.status, 1, "\(yaml): \(result.stderr)")
      XCTAssertTrue(result.stderr.contains(expected), "\(yaml): \(result.stderr)")
    }
    // The augment section's NaN, too (it once trapped while the run's identity was computed).
    try (base + "augment: {noise: {snrDecibels: [.nan, 3]}}").write(toFile: recipe, atomically: true, encoding: .utf8)
    let augmented = try runBinary(["augment", recipe, "-q"])
    XCTAssertEqual(augmented.status, 1, augmented.stderr)
    XCTAssertTrue(augmented.stderr.contains("augment.noise.snrDecibels: [nan, 3] is not a pair of finite numbers"), augmented.stderr)

    let model = directory.file("m.yaml")
    for (yaml, expected) in [
      ("training: {learningRate: .nan}", "training.learningRate: nan is not a finite number"),
      ("model: " + String(repeating: "[", count: 5_000), "model \(model): line 1 nests deeper than 64 levels"),
    ] {
      try yaml.write(toFile: model, atomically: true, encoding: .utf8)
      let result = try runBinary(["train", "out/x", "--model", model, "-q"])
      XCTAssertEqual(result.status, 1, "\(yaml): \(result.stderr)")
      XCTAssertTrue(result.stderr.contains(expected), "\(yaml): \(result.stderr)")
    }
  }
}
