import DS2Core
import Foundation
import Plots
import TestSupport
import XCTest

/// `ds2-data plot`: valid PNGs (read back with libpng) of the expected size with real
/// content, for a record (and an augmented one beside its clean source), the lengths and a
/// training run; bad targets are named.
final class PlotTests: XCTestCase {
  func testPictures() throws {
    let directory = TemporaryDirectory("plots")
    let clean = directory.path + "/clean"
    let augmented = directory.path + "/augmented"
    let recipe = repositoryRoot + "/recipes/mini-librispeech.yaml"
    let root = ["--corpus-root", repositoryRoot + "/corpora/mini-librispeech"]
    XCTAssertEqual(try runBinary(["prepare", recipe, "--output", clean, "-q"] + root).status, 0)
    XCTAssertTrue([0, 3].contains(try runBinary(["augment", recipe, "--output", augmented, "-q"] + root).status))
    let listing = try runBinary(["inspect", augmented, "--records", "1000", "--split", "train-clean-100", "--json"]).stdout
    let records = listing.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    let copy = try XCTUnwrap(records.first { ($0["id"] as? String)?.hasPrefix("sp1.1-") ?? false })
    let id = try XCTUnwrap(copy["id"] as? String)
    let source = String(id.dropFirst("sp1.1-".count))

    let single = directory.path + "/record.png"
    XCTAssertEqual(try runBinary(["plot", clean, "--record", source, "--output", single]).status, 0)
    let pair = directory.path + "/pair.png"
    let drawn = try runBinary(["plot", augmented, "--record", id, "--clean", clean, "--output", pair])
    XCTAssertEqual(drawn.status, 0, drawn.stderr)
    let lengths = directory.path + "/lengths.png"
    XCTAssertEqual(try runBinary(["plot", clean, "--lengths", "--output", lengths]).status, 0)
    let run = directory.path + "/run"
    let model = try writeTinyModel(
      to: directory.file("model.yaml"), hidden: 8, training: "{epochs: 2, batchSize: 8, optimizer: adam, learningRate: 1.0e-3, threads: 1}")
    XCTAssertEqual(try runBinary(["train", clean, "--model", model, "--output", run, "-q"]).status, 0)
    let curves = directory.path + "/training.png"
    XCTAssertEqual(try runBinary(["plot", run, "--output", curves]).status, 0)

    let record = try Canvas.readPNG(single)
    let both = try Canvas.readPNG(pair)
    XCTAssertEqual(both.width, record.width, "the copy (shorter at speed 1.1) is drawn beside its source at the same scale")
    XCTAssertGreaterThan(both.height, record.height * 3 / 2, "two panels")
    XCTAssertGreaterThan(record.distinctColors, 100, "a spectrogram has many colors")
    let histogram = try Canvas.readPNG(lengths)
    XCTAssertEqual(histogram.width, 1060)
    XCTAssertGreaterThan(histogram.distinctColors, 3)
    let training = try Canvas.readPNG(curves)
    XCTAssertEqual(training.width, 1500)
    XCTAssertGreaterThan(training.distinctColors, 3)

    let missing = try runBinary(["plot", clean, "--record", "no-such-id", "--output", directory.path + "/x.png"])
    XCTAssertEqual(missing.status, 1)
    XCTAssertTrue(missing.stderr.contains("no record \"no-such-id\" in splits train-clean-100, dev-clean, test-clean"), missing.stderr)
    let noMetrics = try runBinary(["plot", directory.path, "--output", directory.path + "/x.png"])
    XCTAssertEqual(noMetrics.status, 1)
    XCTAssertTrue(noMetrics.stderr.contains("no metrics.jsonl"), noMetrics.stderr)
    XCTAssertFalse(FileManager.default.fileExists(atPath: directory.path + "/x.png"))
    // Only a picture ds2-data wrote is replaced: not a user's file, nor a PNG of another tool
    // (here one of ours with its Software chunk altered).
    XCTAssertEqual(try runBinary(["plot", clean, "--lengths", "--output", single]).status, 0, "its own picture is replaced")
    let text = directory.file("notes.png")
    try "mine".write(toFile: text, atomically: true, encoding: .utf8)
    var foreign = try Data(contentsOf: URL(fileURLWithPath: lengths))
    let marker = Data("Software\0ds2-data".utf8)
    let at = try XCTUnwrap(foreign.range(of: marker))
    foreign.replaceSubrange(at, with: Data("Software\0gimp-2.1".utf8))
    let photo = directory.file("holiday.png")
    try foreign.write(to: URL(fileURLWithPath: photo))
    for (target, before) in [(text, Data("mine".utf8)), (photo, foreign)] {
      let refused = try runBinary(["plot", clean, "--lengths", "--output", target])
      XCTAssertEqual(refused.status, 1)
      XCTAssertTrue(refused.stderr.contains("exists and was not written by ds2-data plot"), refused.stderr)
      XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: target)), before, "left as it is")
    }
    XCTAssertEqual(try runBinary(["plot", clean, "--lengths", "--output", directory.file("x.jpg")]).status, 64)
    XCTAssertEqual(try runBinary(["plot", clean, "--lengths", "--output", directory.path]).status, 64)
    // A dataset without --record or --lengths, a missing target, and --clean for a record
    // that is not an augmented copy are named.
    let dataset = try runBinary(["plot", clean, "--output", directory.file("y.png")])
    XCTAssertTrue(dataset.stderr.contains("is a dataset: give --record ID"), dataset.stderr)
    let nothing = try runBinary(["plot", directory.path + "/nothing", "--output", directory.file("y.png")])
    XCTAssertTrue(nothing.stderr.contains("no such file or folder"), nothing.stderr)
    let notCopy = try runBinary(["plot", clean, "--record", source, "--clean", clean, "--output", directory.file("y.png")])
    XCTAssertEqual(notCopy.status, 1)
    XCTAssertTrue(notCopy.stderr.contains("is not an augmented copy"), notCopy.stderr)
    XCTAssertFalse(FileManager.default.fileExists(atPath: directory.file("y.png")))
  }
}
