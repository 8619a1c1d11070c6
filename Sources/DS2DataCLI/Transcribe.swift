import ArgumentParser
import DS2Core
import Foundation
import Trainer

struct Transcribe: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "transcribe",
    abstract: "Turn audio files into text with a trained run.",
    discussion: """
      The checkpoint carries the feature parameters (channel rule and resample quality \
      included), normalization statistics and vocabulary, so any audio libsndfile reads, \
      at any rate, is featurized exactly like the training data. Prints `file<TAB>text` \
      per file.
        ds2-data transcribe runs/ls some.flac other.wav
      Exit status: 0 all transcribed; 1 some file could not be read (named on stderr).
      """)

  @Argument(help: "Run folder written by ds2-data train.")
  var runFolder: String

  @Argument(help: "Audio files.")
  var files: [String]

  @Option(help: "Beam width, 1–4096 (1 = greedy; default: the run's setting).")
  var beamWidth: Int?

  @Option(help: "Compute threads, 1–\(threadCountRange.upperBound) (default: one per core).")
  var threads: Int?

  @OptionGroup var decoding: DecodingOptions

  func validate() throws {
    if files.isEmpty { throw ValidationError("name at least one audio file") }
    if let beamWidth { try checkFlags { try ConfigurationCheck.value(beamWidth, in: DecodingSection.beamWidthRange, "--beam-width") } }
    if let threads { try checkFlags { try ConfigurationCheck.value(threads, in: threadCountRange, "--threads", allowed: threadCountAllowed) } }
  }

  func run() throws {
    LoggingOptions.configureForTraining()
    let transcriber = try Transcriber(
      run: runFolder, checkpoint: decoding.checkpoint, beamWidth: beamWidth, languageModel: decoding.languageModel,
      alpha: decoding.alpha, beta: decoding.beta,
      threads: threads.map { $0 == 0 ? ProcessInfo.processInfo.activeProcessorCount : $0 } ?? ProcessInfo.processInfo.activeProcessorCount)
    var failed = false
    for file in files {
      do {
        print("\(file)\t\(try transcriber.transcribe(file))")
      } catch {
        FileHandle.standardError.write(Data("ds2-data: \(error)\n".utf8))
        failed = true
      }
    }
    if failed { throw ExitCode.failure }
  }
}
