import DS2Core
import Foundation

/// The language of a corpus's transcripts: it selects the text normalization and the
/// vocabulary (`english`: the fixed DS2 English characters; `mandarin`: the characters
/// of the training transcripts).
public enum TranscriptLanguage: String, Sendable, ConfigurationChoice {
  case english
  case mandarin

  /// Normalizes `text` by the language's rule (`EnglishText.normalize` or
  /// `MandarinText.normalize`).
  public func normalize(_ text: String) -> String {
    switch self {
    case .english: return EnglishText.normalize(text)
    case .mandarin: return MandarinText.normalize(text)
    }
  }
}

/// File-system helpers shared by the readers. They read directory entries only.
enum CorpusFiles {
  static func isDirectory(_ path: String) -> Bool {
    var flag: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &flag) && flag.boolValue
  }

  /// Whether anything is under the name `path` (`lstat`: a dangling or looping symlink, a
  /// folder or a FIFO counts). A reader treats such a list file as present, and reading it
  /// then names what is wrong (`unreadable_file`), rather than calling its split absent.
  static func exists(_ path: String) -> Bool {
    var status = stat()
    return lstat(path, &status) == 0
  }

  static func isFile(_ path: String) -> Bool {
    var flag: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &flag) && !flag.boolValue
  }

  /// The names in `path`, sorted by their UTF-8 bytes; empty when it cannot be read.
  static func sortedEntries(_ path: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted(by: utf8Precedes)
  }

  /// The names in the folder `path`, sorted by their UTF-8 bytes.
  /// - Throws: `ItemError(.unreadableFolder)` naming the folder and the system error.
  static func listFolder(_ path: String, split: String? = nil) throws -> [String] {
    guard let directory = opendir(path) else {
      throw ItemError(.unreadableFolder, file: path, split: split, message: "cannot list: \(String(cString: strerror(errno)))")
    }
    defer { closedir(directory) }
    var names: [String] = []
    errno = 0
    while let entry = readdir(directory) {
      let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
      }
      if name != "." && name != ".." { names.append(name) }
    }
    if errno != 0 {
      throw ItemError(.unreadableFolder, file: path, split: split, message: "cannot list: \(String(cString: strerror(errno)))")
    }
    return names.sorted(by: utf8Precedes)
  }

  /// The bytes of the regular file `path`, at most `maxBytes` (`RegularFile.read`).
  /// - Throws: `ItemError(.unreadableFile)` naming the file and the reason.
  static func readRegularFile(_ path: String, maxBytes: Int = 1 << 30) throws -> [UInt8] {
    do {
      return try RegularFile.read(path, maxBytes: maxBytes)
    } catch let error as RegularFileError {
      throw ItemError(.unreadableFile, file: path, message: error.reason)
    }
  }


  /// - Throws: `ConfigurationError` when `root` is missing or not a directory.
  static func requireDirectory(_ root: String) throws {
    guard isDirectory(root) else {
      throw ConfigurationError("corpus root \(root) does not exist or is not a directory" + relativePathNote(root))
    }
  }

  /// The error for a root that holds none of the requested splits, naming what it holds.
  static func noSplitsError(root: String, splits: [String], searched: String, found: [String]) -> ConfigurationError {
    ConfigurationError(
      "corpus root \(root) holds none of the splits \(splits.joined(separator: ", ")) "
        + "(looked for \(searched); found: \(found.isEmpty ? "nothing" : found.joined(separator: ", ")))")
  }
}

extension Array where Element == UtteranceSource {
  /// Sorted by id in UTF-8 byte order (stable, so equal ids keep their listing order).
  func sortedById() -> [UtteranceSource] {
    enumerated().sorted { x, y in
      x.element.id == y.element.id ? x.offset < y.offset : utf8Precedes(x.element.id, y.element.id)
    }.map(\.element)
  }
}

/// Formats seconds as zero-padded centiseconds, Kaldi's segment-id convention:
/// 7.38 → `000738`. Values are rounded to the nearest centisecond.
func centisecondsLabel(_ seconds: Double) -> String {
  let value = max(0, Int((seconds * 100).rounded()))
  let digits = String(value)
  return String(repeating: "0", count: max(0, 6 - digits.count)) + digits
}
