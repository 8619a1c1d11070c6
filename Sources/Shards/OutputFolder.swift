import DS2Core
import Foundation

/// What kind of output a folder holds; recorded in its ownership marker.
public enum OutputKind: String, Sendable, Codable {
  /// A dataset written by `prepare`, `augment` (and `merge`).
  case dataset
  /// A training run folder written by `train`.
  case trainingRun
}

/// Why an output folder cannot be claimed: unsafe path, foreign contents, another writer.
public struct OutputFolderError: Error, Sendable, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// A folder ds2-data writes, owned and locked for the life of this value.
///
/// Ownership: the folder carries `.ds2-data` (a marker ds2-data wrote, naming the kind of
/// output). ds2-data writes only into a folder that is new, empty or marked, and deletes or
/// replaces only files of its own names there (`removeOwnedFiles`); a folder holding
/// anything else is refused with its contents named. A folder made by a ds2-data version
/// before the marker (a dataset `manifest.json` or a resume journal of this format) is
/// adopted.
///
/// Locking: `flock` on `.ds2-data.lock` (which also records the holder: pid, host, command,
/// time). `exclusive` is for whole-output work (a run from scratch, `--force`, resume of a
/// single-machine run, merge); a partitioned task will hold `shared` on the whole and
/// `exclusive` on its own part (`lockPart`), so N tasks write one output at once while no
/// whole-output operation can start. The lock is released when the value is deinitialized
/// (or the process ends, however it ends).
public final class OutputFolder: Sendable {
  /// The ownership marker's file name.
  public static let markerName = ".ds2-data"
  /// The lock file's name.
  public static let lockName = ".ds2-data.lock"

  public let path: String
  public let kind: OutputKind
  private let lockDescriptor: Int32
  /// True when this claim created the folder.
  public let createdFolder: Bool

  /// Locks of the whole output.
  public enum LockMode: Sendable { case exclusive, shared }

  /// Claims `path` for writing output of `kind`: refuses unsafe paths (empty, `/`, one of
  /// `protectedPaths` such as the corpus root, or a folder containing one of them), creates
  /// the folder if needed, refuses a folder holding anything but ds2-data output of this
  /// kind, takes the lock without waiting and writes the marker.
  /// - Parameters:
  ///   - ownNames: top-level names ds2-data writes in this kind of folder (for adoption of
  ///     an unmarked folder made by an older version, and for the refusal message).
  /// - Throws: `OutputFolderError` naming the path and the reason (including which process
  ///   holds the lock).
  public init(
    path: String, kind: OutputKind, protectedPaths: [String] = [], lock mode: LockMode = .exclusive,
    legacyEvidence: [String] = []
  ) throws {
    try Self.checkPath(path, kind: kind, protectedPaths: protectedPaths)
    self.path = path
    self.kind = kind
    var status = stat()
    var created = false
    if lstat(path, &status) == 0 {
      if (status.st_mode & S_IFMT) == S_IFLNK {
        var target = stat()
        guard stat(path, &target) == 0, (target.st_mode & S_IFMT) == S_IFDIR else {
          throw OutputFolderError("\(path): exists and is not a folder")
        }
      } else if (status.st_mode & S_IFMT) != S_IFDIR {
        throw OutputFolderError("\(path): exists and is not a folder")
      }
    } else {
      do {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        created = true
      } catch {
        throw OutputFolderError("\(path): cannot create the output folder: \(Self.reason(error))")
      }
    }
    createdFolder = created
    let marker = path + "/" + Self.markerName
    let markedKind = Self.readMarker(marker)
    if let markedKind, markedKind != kind {
      throw OutputFolderError("\(path): holds a ds2-data \(markedKind.description), not a \(kind.description); choose another --output")
    }
    if markedKind == nil {
      let entries: [String]
      do {
        entries = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
      } catch {
        throw OutputFolderError("\(path): cannot list the output folder: \(Self.reason(error))")
      }
      // The marker's temporary file may be another task's marker being written.
      let foreign = entries.filter { $0 != Self.lockName && $0 != Self.markerName && $0 != Self.markerName + ".tmp" }
      let adopted = !foreign.isEmpty && legacyEvidence.contains { entries.contains($0) && Self.isLegacyOutput(path + "/" + $0) }
      // Another task of a partitioned run may have marked the folder since it was read.
      if !foreign.isEmpty && !adopted && Self.readMarker(marker) != kind {
        let shown = foreign.prefix(5).joined(separator: ", ") + (foreign.count > 5 ? ", … (\(foreign.count) entries)" : "")
        throw OutputFolderError(
          "\(path): the folder is not empty and was not written by ds2-data (it holds \(shown)); "
            + "ds2-data writes only into a new or empty folder or one of its own outputs: choose another --output")
      }
    }
    let descriptor = open(path + "/" + Self.lockName, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else {
      throw OutputFolderError("\(path)/\(Self.lockName): cannot open the lock file: \(String(cString: strerror(errno)))")
    }
    if flock(descriptor, (mode == .exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 {
      let code = errno
      let holder = Self.readHolder(descriptor)
      close(descriptor)
      if code == EWOULDBLOCK {
        // Only the tasks of a partitioned run share the lock, and they record themselves
        // in their parts' lock files.
        let holders = holder.isEmpty ? "the tasks of a partitioned run hold it; each names itself in partitions/K/\(Self.lockName)" : holder
        throw OutputFolderError(
          "\(path): another ds2-data process is writing this output (\(holders)); wait for it to finish or stop it")
      }
      throw OutputFolderError("\(path)/\(Self.lockName): cannot lock: \(String(cString: strerror(code)))")
    }
    lockDescriptor = descriptor
    if mode == .exclusive { Self.recordHolder(descriptor) }
    if markedKind == nil {
      do {
        try AtomicFile.write(Array("{\"kind\":\"\(kind.rawValue)\",\"tool\":\"ds2-data\"}\n".utf8), to: marker)
      } catch {
        // Tasks of a partitioned run start together on a new output and race to write the
        // same marker: losing that race is fine when the winner's marker says the same.
        if Self.readMarker(marker) != kind {
          throw OutputFolderError("\(marker): cannot write the ownership marker: \(error)")
        }
      }
    }
  }

  deinit { close(lockDescriptor) }

  /// Undoes the claim of a folder it created, when nothing was written into it but the
  /// marker, the lock and `disposable` entries (files, or folders that are empty): a run that
  /// fails before its first result leaves no folder behind. Anything else keeps it all.
  public func removeIfNothingWritten(disposable: Set<String>) {
    guard createdFolder, let entries = try? FileManager.default.contentsOfDirectory(atPath: path) else { return }
    let ours: Set<String> = [Self.markerName, Self.lockName]
    guard entries.allSatisfy({ ours.contains($0) || disposable.contains($0) }) else { return }
    for entry in entries {
      let file = path + "/" + entry
      var status = stat()
      guard lstat(file, &status) == 0 else { continue }
      if (status.st_mode & S_IFMT) == S_IFDIR {
        guard rmdir(file) == 0 else { return }  // not empty: keep everything
      }
    }
    for entry in entries where !ours.contains(entry) { unlink(path + "/" + entry) }
    unlink(path + "/" + Self.markerName)
    unlink(path + "/" + Self.lockName)
    rmdir(path)
  }

  /// Removes `names` (files or, for `shards`-like folders, see `removeOwnedFolder`) from the
  /// folder if present. Only for names ds2-data writes.
  /// - Throws: `OutputFolderError` naming the file.
  public func removeOwnedFiles(_ names: [String]) throws {
    for name in names {
      let file = path + "/" + name
      var status = stat()
      guard lstat(file, &status) == 0 else { continue }
      guard (status.st_mode & S_IFMT) != S_IFDIR else {
        throw OutputFolderError("\(file): expected a file ds2-data writes, found a folder; move it away and rerun")
      }
      guard unlink(file) == 0 else {
        throw OutputFolderError("\(file): cannot remove: \(String(cString: strerror(errno)))")
      }
    }
  }

  /// Removes from the subfolder `name` the files whose names `isOwned` accepts, then the
  /// subfolder itself if that left it empty. Anything else in it is left in place.
  /// - Returns: the names left in the subfolder (not ds2-data's).
  /// - Throws: `OutputFolderError` naming the file.
  @discardableResult
  public func removeOwnedFiles(inFolder name: String, where isOwned: (String) -> Bool) throws -> [String] {
    let folder = path + "/" + name
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return [] }
    var left: [String] = []
    for entry in entries.sorted() {
      let file = folder + "/" + entry
      var status = stat()
      guard lstat(file, &status) == 0 else { continue }
      guard isOwned(entry), (status.st_mode & S_IFMT) == S_IFREG else {
        left.append(entry)
        continue
      }
      guard unlink(file) == 0 else {
        throw OutputFolderError("\(file): cannot remove: \(String(cString: strerror(errno)))")
      }
    }
    if left.isEmpty { rmdir(folder) }
    return left
  }

  // MARK: Helpers

  /// The absolute, symlink-resolved form of `path`; for a path that does not exist yet, its
  /// nearest existing ancestor resolved and the rest appended.
  public static func resolve(_ path: String) -> String {
    let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    var head = absolute
    var tail: [String] = []
    while true {
      if let real = realpath(head, nil) {
        defer { free(real) }
        var result = String(cString: real)
        for component in tail.reversed() where component != "." && !component.isEmpty {
          if component == ".." {
            result = (result as NSString).deletingLastPathComponent
          } else {
            result += (result.hasSuffix("/") ? "" : "/") + component
          }
        }
        return result.isEmpty ? "/" : result
      }
      let parent = (head as NSString).deletingLastPathComponent
      if parent == head || parent.isEmpty { return absolute }
      tail.append((head as NSString).lastPathComponent)
      head = parent
    }
  }

  /// Refuses an output path that is empty, `/`, one of `protectedPaths` (such as the corpus
  /// root) or a folder containing one of them; looks at nothing else and writes nothing.
  /// - Throws: `OutputFolderError` naming the path and the reason.
  public static func checkPath(_ path: String, kind: OutputKind, protectedPaths: [String]) throws {
    guard !path.isEmpty else { throw OutputFolderError("the output path is empty; name a folder") }
    let resolved = resolve(path)
    if resolved == "/" { throw OutputFolderError("\(path): refusing to write a \(kind.description) into /") }
    for protected in protectedPaths where !protected.isEmpty {
      let other = resolve(protected)
      if other == resolved {
        throw OutputFolderError("\(path): the output is the input folder \(protected); choose another --output")
      }
      if other.hasPrefix(resolved.hasSuffix("/") ? resolved : resolved + "/") {
        throw OutputFolderError("\(path): the output folder contains the input \(protected); choose another --output")
      }
    }
  }

  /// What a claim of `path` would find, read without writing anything (for a dry run).
  public enum Found: Equatable, Sendable {
    case absent
    case notAFolder
    case empty
    /// A folder holding files ds2-data did not write (the first few named).
    case foreign([String])
    case output(OutputKind)
  }

  /// Looks at `path` as `init` would, writing nothing.
  public static func look(at path: String) -> Found {
    var status = stat()
    guard lstat(path, &status) == 0 else { return .absent }
    var target = stat()
    guard stat(path, &target) == 0, (target.st_mode & S_IFMT) == S_IFDIR else { return .notAFolder }
    if let kind = readMarker(path + "/" + markerName) { return .output(kind) }
    let entries = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0 != lockName }.sorted()
    return entries.isEmpty ? .empty : .foreign(Array(entries.prefix(5)))
  }

  static func readMarker(_ path: String) -> OutputKind? {
    guard let bytes = try? RegularFile.read(path, maxBytes: 4096),
      let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
      object["tool"] as? String == "ds2-data", let kind = object["kind"] as? String
    else { return nil }
    return OutputKind(rawValue: kind)
  }

  /// A top-level file an older ds2-data wrote: a dataset manifest or resume journal of
  /// this tool's format, or a training run's checkpoint folder.
  static func isLegacyOutput(_ path: String) -> Bool {
    var status = stat()
    guard lstat(path, &status) == 0 else { return false }
    if (status.st_mode & S_IFMT) == S_IFDIR { return FileManager.default.fileExists(atPath: path + "/latest.ckpt") }
    guard (status.st_mode & S_IFMT) == S_IFREG, let bytes = try? RegularFile.read(path, maxBytes: 64 << 20)
    else { return false }
    let data = Data(bytes)
    if path.hasSuffix("manifest.json") {
      return (try? JSONSerialization.jsonObject(with: data) as? [String: Any])?["format"] as? String == DatasetManifest.formatName
    }
    if path.hasSuffix("progress.json") {
      guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return false }
      return object["recipe"] != nil && object["splits"] != nil
    }
    return false
  }

  /// Writes who holds the lock into the lock file (read by a refused second writer).
  static func recordHolder(_ descriptor: Int32) {
    var host = [CChar](repeating: 0, count: 256)
    gethostname(&host, host.count - 1)
    let command = String(CommandLine.arguments.joined(separator: " ").prefix(300))
    let hostName = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let text = "pid \(getpid()) on \(hostName), since \(utcTimestamp()): \(command)\n"
    ftruncate(descriptor, 0)
    _ = text.withCString { pwrite(descriptor, $0, strlen($0), 0) }
  }

  /// Now as ISO 8601 UTC (`2026-12-06T12:30:00Z`), without loading time zone files.
  static func utcTimestamp() -> String {
    var seconds = time(nil)
    var parts = tm()
    guard gmtime_r(&seconds, &parts) != nil else { return "\(seconds) s since 1970" }
    func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
    return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
      + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
  }

  static func readHolder(_ descriptor: Int32) -> String {
    var buffer = [UInt8](repeating: 0, count: 1024)
    let count = pread(descriptor, &buffer, buffer.count, 0)
    guard count > 0 else { return "" }
    return String(decoding: buffer[0..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
  }

  static func reason(_ error: Error) -> String {
    if let error = error as? CocoaError, let underlying = error.userInfo[NSUnderlyingErrorKey] as? NSError,
      let code = POSIXErrorCode(rawValue: Int32(underlying.code))
    {
      return String(cString: strerror(code.rawValue))
    }
    return (error as NSError).localizedDescription
  }
}

extension OutputKind: CustomStringConvertible {
  public var description: String { self == .dataset ? "dataset" : "training run" }
}
