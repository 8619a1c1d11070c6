import DS2Core
import Foundation
import Synchronization
import Shards

/// `progress.json`: what an unfinished run has completed, so that a rerun of the same
/// command resumes instead of starting over.
///
/// Written atomically after every completed shard; removed once `manifest.json` exists.
/// A shard is listed only after its file is synced and renamed, so everything the journal
/// lists is complete; anything else in `shards/` is rewritten.
struct RunJournal: Codable, Equatable {
  static let fileName = "progress.json"

  /// The recipe's content identity; a different recipe never resumes this run.
  var recipe: JSONValue
  /// `SplitWriter.layoutVersion` of the writer that began the run (absent: before there
  /// was one); another one never resumes it.
  var layout: Int? = SplitWriter.layoutVersion
  var splits: [String: SplitProgress] = [:]

  struct SplitProgress: Codable, Equatable {
    /// Completed shards, in order.
    var shards: [ShardInfo] = []
    /// Planned utterances (in length order) accounted for by `shards` and `rejections`.
    var consumed = 0
    /// Items rejected while featurizing the first `consumed` utterances.
    var rejections: [ItemError] = []
    var finished = false
  }

  static func load(directory: String) -> RunJournal? {
    guard let bytes = try? RegularFile.read(directory + "/" + fileName, maxBytes: DatasetManifest.maxBytes) else { return nil }
    let data = Data(bytes)
    return try? JSONDecoder().decode(RunJournal.self, from: data)
  }

  func save(directory: String) throws {
    try atomicWrite(text(), to: directory + "/" + Self.fileName)
  }

  /// The journal as written: compact JSON with sorted keys (rewritten after every shard,
  /// with every finished shard's statistics: `SortedJSONEncoder`, not `JSONEncoder`).
  func text() throws -> String {
    String(decoding: try SortedJSONEncoder(prettyPrinted: false).encode(self), as: UTF8.self)
  }
}

/// A request to stop a run (Ctrl-C, SIGTERM), checked between items.
public final class Cancellation: Sendable {
  private let signalNumber = Mutex<Int32?>(nil)

  public init() {}

  /// Asks the run to stop; `signal` is reported in the error (e.g. `SIGINT`).
  public func cancel(signal: Int32) {
    signalNumber.withLock { if $0 == nil { $0 = signal } }
  }

  /// The signal that cancelled the run, if any.
  public var signal: Int32? { signalNumber.withLock { $0 } }

  /// - Throws: `RunInterrupted` once cancelled.
  func check(output: String) throws {
    if let signal { throw RunInterrupted(signal: signal, output: output) }
  }
}

/// The run stopped on request. Completed shards are kept and journaled.
public struct RunInterrupted: Error, CustomStringConvertible {
  public var signal: Int32
  public var output: String
  public var description: String {
    "interrupted by signal \(signal); completed shards are kept in \(output) — rerun the same command to resume"
  }
}
