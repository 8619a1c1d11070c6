import ArgumentParser
import Augmentation
import DS2Core
import Foundation
import Pipeline

struct Augment: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "augment",
    abstract: "Prepare an augmented dataset: speed copies, noise from a noise bank, gain, reverberation.",
    discussion: """
      Like prepare, but every utterance of the augmented splits (default: the training \
      splits) becomes one labelled copy per speed factor (ids sp0.9-<id>, <id>, sp1.1-<id>), \
      and each copy gets noise at a random SNR with the given probability (DS2: 0.4), plus \
      optional babble, gain and reverberation (recipe's augment: section). Choices come \
      from (seed, utterance id, copy), so output is byte-identical for any thread count. \
      Other splits are written clean. Each record's info holds what was done to it \
      (inspect --json). Default output: <recipe output>-augmented.
      Exit status: 0 clean; 3 written with rejected items; 1 failure; 130/143 interrupted.
      """)

  @Argument(help: "Recipe file (YAML); its augment: section holds the defaults.")
  var recipe: String

  @Option(help: "Noise bank folder (MUSAN layout or any folder of audio).")
  var noiseBank: String?

  @Option(help: "Speed factors, comma-separated, each above 0.5 and at most 2 (default 0.9,1.0,1.1).")
  var speed: String?

  @Option(help: "Fraction of copies that get noise, 0–1 (default 0.4).")
  var noiseProbability: Double?

  @Option(help: "SNR range in dB, low:high within -50:100 (default 0:20).")
  var snr: String?

  @OptionGroup var options: RunOptions

  func validate() throws {
    if let speed {
      guard let factors = parseFactors(speed) else { throw ValidationError("--speed: expected numbers like 0.9,1.0,1.1") }
      try checkFlags { try AugmentConfig.validate(speedFactors: factors, "--speed") }
    }
    if let snr {
      guard let range = DecibelRange(parsing: snr) else { throw ValidationError("--snr: expected low:high with low ≤ high, e.g. 0:20") }
      try checkFlags { try range.validate(within: NoiseConfig.snrDecibelsRange, "--snr") }
    }
    if let noiseProbability {
      try checkFlags { try ConfigurationCheck.value(noiseProbability, in: 0...1, "--noise-probability") }
    }
  }

  func parseFactors(_ text: String) -> [Double]? {
    let values = text.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
    return values.isEmpty || values.contains(nil) ? nil : values.compactMap { $0 }
  }

  func run() throws {
    var recipe = try Recipe.load(path: self.recipe)
    var config = recipe.augment ?? AugmentConfig()
    if let noiseBank { config.noise.bank = noiseBank }
    if let speed, let factors = parseFactors(speed) { config.speedFactors = factors }
    if let noiseProbability { config.noise.probability = noiseProbability }
    if let snr, let range = DecibelRange(parsing: snr) { config.noise.snrDecibels = range }
    if config.noise.bank == nil && (config.noise.probability > 0 || config.noise.babbleProbability > 0) {
      FileHandle.standardError.write(Data("ds2-data: no noise bank (--noise-bank or augment.noise.bank): no noise or babble is added\n".utf8))
      config.noise.probability = 0
      config.noise.babbleProbability = 0
    }
    recipe.augment = config
    options.apply(to: &recipe)
    recipe.output = options.output ?? recipe.output + "-augmented"
    try options.run { try augment(recipe: recipe, options: $0) }
  }
}
