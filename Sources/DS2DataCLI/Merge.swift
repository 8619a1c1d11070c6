import ArgumentParser
import Foundation
import Pipeline

struct Merge: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "merge",
    abstract: "Join the parts of a partitioned prepare or augment into one dataset.",
    discussion: """
      After every task of `ds2-data prepare RECIPE --partition K/N` (K = 0 … N-1) has \
      finished, checks that all N parts are complete and made from one recipe, then \
      writes manifest.json, rejected.jsonl and recipe.yaml: the dataset a single run of \
      the recipe would have written, byte for byte. A missing or unfinished part is named. \
      Merging a merged dataset does nothing.
        sbatch --array=0-7 --wrap 'ds2-data prepare r.yaml --partition auto/8'
        ds2-data merge out/r
      Exit status: 0 merged; 3 merged with rejected items; 1 a part is missing or wrong.
      """)

  @Argument(help: "The output folder the parts were written into.")
  var output: String

  @OptionGroup var logging: LoggingOptions

  func run() throws {
    logging.bootstrap()
    let report = try merge(output: output)
    print(report.summary)
    if report.rejectedCount > 0 { throw ExitCode(exitCodeWithRejections) }
  }
}
