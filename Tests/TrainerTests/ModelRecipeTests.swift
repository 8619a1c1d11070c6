import DS2Core
import Foundation
import TestSupport
import Training
import XCTest

@testable import Trainer

final class ModelRecipeTests: XCTestCase {
  func testBundledModelFilesLoad() throws {
    let folder = repositoryRoot + "/recipes/models"
    let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".yaml") }.sorted()
    XCTAssertTrue(files.contains("ds2-small.yaml") && files.contains("ds2-mini.yaml"), "\(files)")
    for file in files { XCTAssertNoThrow(try ModelRecipe.load(path: folder + "/" + file), file) }
    let small = try ModelRecipe.load(path: folder + "/ds2-small.yaml")
    var config = small.model.config(bins: 161, vocabularySize: 29)
    config.seed = ModelConfig.ds2Small.seed
    XCTAssertEqual(config, .ds2Small, "ds2-small.yaml is the PyTorch peer's model")
    XCTAssertEqual(small.training.momentum, 0.99)
    XCTAssertEqual(small.training.annealing, 1.2)
    XCTAssertEqual(try ModelRecipe.load(path: folder + "/ds2-mini.yaml"), .small, "ds2-mini.yaml mirrors the built-in default")
  }

  func testDefaultsUnknownKeysAndBadValues() throws {
    let directory = TemporaryDirectory("model-yaml")
    let path = directory.file("m.yaml")
    try "model: {hidden: 64}\n".write(toFile: path, atomically: true, encoding: .utf8)
    let recipe = try ModelRecipe.load(path: path)
    XCTAssertEqual(recipe.model.hidden, 64)
    XCTAssertEqual(recipe.model.recurrentLayers, 3)
    XCTAssertEqual(recipe.training, TrainingSection())
    try "model: {hiden: 64}\n".write(toFile: path, atomically: true, encoding: .utf8)
    XCTAssertThrowsError(try ModelRecipe.load(path: path)) { error in
      XCTAssertTrue("\(error)".contains("unknown key hiden"), "\(error)")
      XCTAssertTrue("\(error)".contains(path), "\(error)")
    }
    try "model: {recurrentLayers: 9}\n".write(toFile: path, atomically: true, encoding: .utf8)
    XCTAssertThrowsError(try ModelRecipe.load(path: path)) { XCTAssertTrue("\($0)".contains("model.recurrentLayers: 9 is out of range (1 … 7)"), "\($0)") }
    try "model: {cell: lstm}\n".write(toFile: path, atomically: true, encoding: .utf8)
    XCTAssertThrowsError(try ModelRecipe.load(path: path)) { XCTAssertTrue("\($0)".contains("model.cell"), "\($0)") }
  }
}
