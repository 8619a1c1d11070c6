import ArgumentParser

/// Options shared by the commands that decode with a trained run (`evaluate`, `transcribe`).
struct DecodingOptions: ParsableArguments {
  @Option(help: "best, latest, or a checkpoint file.")
  var checkpoint = "best"

  @Option(name: .customLong("lm"), help: "Word n-gram language model, ARPA format.")
  var languageModel: String?

  @Option(help: "Language-model weight α.")
  var alpha: Double?

  @Option(help: "Word bonus β.")
  var beta: Double?

  func validate() throws {
    if let alpha, alpha < 0 { throw ValidationError("--alpha must be ≥ 0") }
  }
}
