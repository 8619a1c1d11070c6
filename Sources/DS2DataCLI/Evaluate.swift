import ArgumentParser
import DS2Core
import Foundation
import Trainer

struct Evaluate: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "evaluate",
    abstract: "Score a trained run on a split: loss, CER and WER with greedy and beam decoding.",
    discussion: """
      Uses the run's best checkpoint (by dev CER) and the first dataset it trained on, \
      unless told otherwise. The beam search uses the model YAML's decoding settings; \
      --lm adds a word n-gram language model (ARPA) weighted by --alpha, with word bonus --beta.
        ds2-data evaluate runs/ls --split test-clean
      """)

  @Argument(help: "Run folder written by ds2-data train.")
  var runFolder: String

  @Option(help: "Split to score (default: the run's dev split).")
  var split: String?

  @Option(help: "Dataset directory (default: the first the run trained on).")
  var dataset: String?

  @Option(help: "Beam width of the CTC prefix beam search, 1–4096.")
  var beamWidth: Int?

  @OptionGroup var decoding: DecodingOptions

  @Flag(help: "Greedy decoding only (skip the beam search).")
  var greedy = false

  @Flag(help: "Print the result as one JSON object.")
  var json = false

  func validate() throws {
    if let beamWidth { try checkFlags { try ConfigurationCheck.value(beamWidth, in: DecodingSection.beamWidthRange, "--beam-width") } }
  }

  func run() throws {
    LoggingOptions.configureForTraining()
    var options = EvaluateOptions(run: runFolder)
    options.split = split
    options.dataset = dataset
    options.checkpoint = decoding.checkpoint
    options.beamWidth = beamWidth
    options.languageModel = decoding.languageModel
    options.alpha = decoding.alpha
    options.beta = decoding.beta
    options.greedyOnly = greedy
    let result = try evaluate(options)
    if json {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys]
      encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
      print(String(decoding: try encoder.encode(result), as: UTF8.self))
      return
    }
    var line = String(
      format: "%@ %@ (step %d): loss %.3f; greedy CER %.2f%% WER %.2f%%", runFolder, result.split, result.step, result.loss,
      100 * result.cer, 100 * result.wer)
    if let cer = result.beamCER, let wer = result.beamWER {
      line += String(format: "; beam CER %.2f%% WER %.2f%%", 100 * cer, 100 * wer)
    }
    print(line + " — \(result.utterances) utterances")
  }
}
