import ArgumentParser
import Foundation
import Shards

struct Verify: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "verify",
    abstract: "Check a dataset against its manifest; exit 0 only if it is intact.",
    discussion: """
      Checks every shard's presence, size and SHA-256, record counts, length order, that \
      every record decodes with finite values and a non-empty label sequence, and that \
      the statistics agree with the records. Prints one line per problem.
      """)

  @Argument(help: "Dataset directory (holding manifest.json).")
  var dataset: String

  @Flag(help: "Print the problems as JSON lines.")
  var json = false

  func run() throws {
    let report = verifyDataset(directory: dataset)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    for problem in report.problems {
      if json {
        print(String(decoding: try encoder.encode(problem), as: UTF8.self))
      } else {
        print("\(dataset)/\(problem)")
      }
    }
    let summary = "\(dataset): \(report.shardsChecked) shard(s), \(report.recordsChecked) record(s) checked — "
      + (report.isIntact ? "intact" : "\(report.problems.count) problem(s)")
    // The verdict: "intact" on standard output; problems' count on standard error, as
    // errors are (and with --json, standard output holds only the problems' JSON lines).
    if report.isIntact && !json { print(summary) } else { FileHandle.standardError.write(Data((summary + "\n").utf8)) }
    if !report.isIntact { throw ExitCode.failure }
  }
}
