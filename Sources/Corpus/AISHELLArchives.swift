import DS2Core
import Foundation

/// Unpacks AISHELL-1's per-speaker archives (`data_aishell/wav/S0002.tar.gz`, each
/// holding `<split>/S0002/*.wav`) with the system `tar`, beside the archives.
///
/// * **Where.** Into `wav/<split>/<speaker>/`, exactly where Kaldi's
///   `download_and_untar.sh` puts them; the archives are kept.
/// * **Idempotent.** An archive counts as unpacked when a folder named after it
///   (`S0002`) exists in any split folder of `wav/`; it is then not opened again.
/// * **Safe to interrupt.** Each archive is extracted into a hidden staging folder
///   `wav/.unpacking-<speaker>/` and its speaker folder is moved into place by one
///   rename, so a speaker folder is either complete or absent. Staging folders left by
///   an interrupted run are removed (and their archives redone). Two first runs on the
///   same corpus copy must not overlap.
/// * **Failures.** A corrupt or truncated archive, or one that does not hold
///   `<split>/<speaker>/`, becomes an `unreadable_audio` error naming the archive; the
///   other speakers are unaffected.
public enum AISHELLArchives {
  static let suffix = ".tar.gz"
  static let stagingPrefix = ".unpacking-"

  /// Unpacks every `*.tar.gz` in `wavDirectory` that is not unpacked yet, one `tar` per thread of `pool`.
  /// - Parameter willUnpack: called once with the number of archives, before any is
  ///   unpacked (not called when there is nothing to do).
  /// - Returns: one error per archive that could not be unpacked, in archive name order.
  /// - Throws: `ConfigurationError` when `tar` cannot be run or `wavDirectory` is not
  ///   writable.
  public static func unpack(wavDirectory: String, pool: WorkerPool, willUnpack: ((Int) -> Void)? = nil) throws -> [ItemError] {
    let archives = CorpusFiles.sortedEntries(wavDirectory).filter {
      $0.hasSuffix(suffix) && !$0.hasPrefix(".") && CorpusFiles.isFile(wavDirectory + "/" + $0)
    }
    let pending = archives.filter { !isUnpacked(speaker: String($0.dropLast(suffix.count)), in: wavDirectory) }
    // Staging folders of finished speakers (a run stopped between the move and the
    // clean-up); those of pending speakers are cleared when they are redone.
    for entry in CorpusFiles.sortedEntries(wavDirectory) where entry.hasPrefix(stagingPrefix) {
      let speaker = String(entry.dropFirst(stagingPrefix.count))
      if isUnpacked(speaker: speaker, in: wavDirectory) {
        try? FileManager.default.removeItem(atPath: wavDirectory + "/" + entry)
      }
    }
    guard !pending.isEmpty else { return [] }
    guard FileManager.default.isWritableFile(atPath: wavDirectory) else {
      throw ConfigurationError(
        "\(wavDirectory) holds \(pending.count) packed speaker archive(s) to unpack, but the folder is not writable; "
          + "make it writable, or unpack them there once: cd \(wavDirectory) && for a in *.tar.gz; do tar -xzf \"$a\"; done")
    }
    willUnpack?(pending.count)
    return try pool.map(pending.count) { index in try unpackOne(archive: pending[index], in: wavDirectory) }
      .compactMap { $0 }
  }

  /// True when a split folder of `wavDirectory` holds a folder named `speaker`.
  static func isUnpacked(speaker: String, in wavDirectory: String) -> Bool {
    CorpusFiles.sortedEntries(wavDirectory).contains { entry in
      !entry.hasPrefix(".") && CorpusFiles.isDirectory(wavDirectory + "/" + entry + "/" + speaker)
    }
  }

  /// Extracts one archive through its staging folder.
  /// - Throws: `ConfigurationError` when `tar` cannot be started.
  /// - Returns: nil when the speaker folder is in place, else the archive's error.
  static func unpackOne(archive: String, in wavDirectory: String) throws -> ItemError? {
    let fileManager = FileManager.default
    let archivePath = wavDirectory + "/" + archive
    let speaker = String(archive.dropLast(suffix.count))
    let staging = wavDirectory + "/" + stagingPrefix + speaker
    func failure(_ message: String) -> ItemError {
      try? fileManager.removeItem(atPath: staging)
      return ItemError(.unreadableAudio, file: archivePath, message: "\(message); the utterances of speaker \(speaker) are skipped")
    }
    do {
      if fileManager.fileExists(atPath: staging) { try fileManager.removeItem(atPath: staging) }
      try fileManager.createDirectory(atPath: staging, withIntermediateDirectories: false)
    } catch {
      return failure("cannot create the staging folder \(staging): \(error.localizedDescription)")
    }

    let (status, errorOutput) = try runTar(["-xzf", archivePath, "-C", staging, "--no-same-owner"])
    guard status == 0 else {
      let detail = errorOutput.split(separator: "\n").prefix(3).joined(separator: " / ")
      return failure("tar -xzf failed with status \(status) (corrupt or truncated archive?): \(detail)")
    }

    // Expect <split>/<speaker>/ and nothing else.
    let splits = CorpusFiles.sortedEntries(staging)
    var moves: [(String, String)] = []
    for split in splits {
      let contents = CorpusFiles.sortedEntries(staging + "/" + split)
      guard CorpusFiles.isDirectory(staging + "/" + split), contents == [speaker],
        CorpusFiles.isDirectory(staging + "/" + split + "/" + speaker)
      else {
        return failure("expected the archive to hold <split>/\(speaker)/ only, found \(split)/\(contents.joined(separator: ", "))")
      }
      moves.append((staging + "/" + split + "/" + speaker, wavDirectory + "/" + split + "/" + speaker))
    }
    guard !moves.isEmpty else { return failure("the archive is empty") }
    do {
      for (from, to) in moves {
        try fileManager.createDirectory(
          atPath: (to as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try fileManager.moveItem(atPath: from, toPath: to)
      }
      try fileManager.removeItem(atPath: staging)
    } catch {
      return failure("cannot move the unpacked folder into place: \(error.localizedDescription)")
    }
    return nil
  }

  /// Runs `tar` (found on PATH) and returns its exit status and standard error.
  /// - Throws: `ConfigurationError` when it cannot be started.
  static func runTar(_ arguments: [String]) throws -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["tar"] + arguments
    let errorPipe = Pipe()
    process.standardError = errorPipe
    process.standardOutput = FileHandle.nullDevice
    do {
      try process.run()
    } catch {
      throw ConfigurationError("cannot run tar to unpack AISHELL-1 archives: \(error.localizedDescription)")
    }
    let errorData = errorPipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    if process.terminationStatus == 127 {
      throw ConfigurationError("cannot run tar to unpack AISHELL-1 archives: tar is not installed (apt-get install tar gzip)")
    }
    return (process.terminationStatus, String(decoding: errorData, as: UTF8.self))
  }
}
