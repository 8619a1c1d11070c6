import ArgumentParser
import DS2Core
import Foundation
import Pipeline

struct Prepare: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "prepare",
    abstract: "Prepare a corpus into length-sorted LMDB shards of DS2 log spectrograms.",
    discussion: """
      Reads the recipe (YAML), lists the corpus, probes audio headers, then decodes, \
      resamples and featurizes every utterance on all cores and writes each split in \
      ascending length into LMDB shards, with manifest.json, recipe.yaml (resolved) and \
      rejected.jsonl in the output directory. Rerunning a finished command is a no-op;       rerunning a killed or interrupted one resumes after its last completed shard.
      Exit status: 0 clean; 3 written with rejected items; 1 failure; 130/143 interrupted.
      """)

  @Argument(help: "Recipe file (YAML), e.g. recipes/mini-librispeech.yaml.")
  var recipe: String

  @OptionGroup var options: RunOptions

  func run() throws {
    var recipe = try Recipe.load(path: self.recipe)
    options.apply(to: &recipe)
    if let output = options.output { recipe.output = output }
    try options.run { try prepare(recipe: recipe, options: $0) }
  }
}
