import ArgumentParser
import Foundation
import Plots

struct Plot: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "plot",
    abstract: "Draw a PNG: a record's spectrogram, a dataset's length histograms, or a run's training curves.",
    discussion: """
        ds2-data plot out/mini-librispeech --record 3939-30185-0001 --output record.png
        ds2-data plot out/mini-librispeech-augmented --record sp1.1-508-70508-0000 --clean out/mini-librispeech --output copy.png
        ds2-data plot out/mini-librispeech --lengths --output lengths.png
        ds2-data plot runs/mini --output training.png
      """)

  @Argument(help: "A dataset folder (with --record or --lengths) or a training run folder.")
  var target: String

  @Option(help: "The PNG file to write.")
  var output: String

  @Option(help: "Draw this record's spectrogram (normalized, as the trainer sees it).")
  var record: String?

  @Option(help: "With --record of an augmented dataset: the clean dataset, to draw the source beside it.")
  var clean: String?

  @Flag(help: "Draw the utterance-length histogram of every split.")
  var lengths = false

  func validate() throws {
    if record != nil && lengths { throw ValidationError("give --record or --lengths, not both") }
    if clean != nil && record == nil { throw ValidationError("--clean goes with --record") }
    if output.isEmpty { throw ValidationError("--output needs a file name") }
    if !output.lowercased().hasSuffix(".png") || output.hasSuffix("/") {
      throw ValidationError("--output \(output): give a file name ending in .png (plot writes PNG pictures)")
    }
  }

  func run() throws {
    if let record {
      try plotRecord(dataset: target, id: record, clean: clean, output: output)
    } else if lengths {
      try plotLengths(dataset: target, output: output)
    } else {
      try plotRun(run: target, output: output)
    }
    print("wrote \(output)")
  }
}
