import ArgumentParser
import DS2Core
import Trainer

/// Options shared by the commands that decode with a trained run (`evaluate`, `transcribe`).
struct DecodingOptions: ParsableArguments {
  @Option(help: "best, latest, or a checkpoint file.")
  var checkpoint = "best"

  @Option(name: .customLong("lm"), help: "Word n-gram language model, ARPA format.")
  var languageModel: String?

  @Option(help: "Language-model weight α, 0–100.")
  var alpha: Double?

  @Option(help: "Word bonus β, -100–100.")
  var beta: Double?

  func validate() throws {
    try checkFlags {
      if let alpha { try ConfigurationCheck.value(alpha, in: DecodingSection.alphaRange, "--alpha") }
      if let beta { try ConfigurationCheck.value(beta, in: DecodingSection.betaRange, "--beta") }
    }
  }
}
