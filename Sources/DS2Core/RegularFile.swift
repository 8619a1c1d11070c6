import Foundation

/// Why a file could not be read whole.
public struct RegularFileError: Error, Sendable, CustomStringConvertible {
  public var path: String
  public var reason: String
  public var description: String { "\(path): \(reason)" }
}

/// Reading small files ds2-data did not necessarily write (manifests, journals, side
/// files, transcripts): only regular files, opened without blocking (a FIFO or device
/// under the expected name is refused, never waited on), up to a size bound.
public enum RegularFile {
  /// The bytes of the regular file `path`.
  /// - Throws: `RegularFileError` naming the file: missing, unreadable, not a regular file,
  ///   larger than `maxBytes`, or a read error.
  public static func read(_ path: String, maxBytes: Int) throws -> [UInt8] {
    func failure(_ reason: String) -> RegularFileError { RegularFileError(path: path, reason: reason) }
    let descriptor = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    guard descriptor >= 0 else {
      throw failure(errno == ENOENT ? "no such file" : "cannot open: \(String(cString: strerror(errno)))")
    }
    defer { close(descriptor) }
    var status = stat()
    guard fstat(descriptor, &status) == 0 else { throw failure("cannot stat: \(String(cString: strerror(errno)))") }
    guard (status.st_mode & S_IFMT) == S_IFREG else { throw failure("not a regular file (\(typeName(status.st_mode)))") }
    guard status.st_size <= maxBytes else { throw failure("\(status.st_size) bytes, above the \(maxBytes)-byte limit") }
    var bytes = [UInt8]()
    bytes.reserveCapacity(Int(status.st_size))
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
      let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
      if count < 0 {
        if errno == EINTR { continue }
        throw failure("cannot read: \(String(cString: strerror(errno)))")
      }
      if count == 0 { break }
      guard bytes.count + count <= maxBytes else { throw failure("above the \(maxBytes)-byte limit") }
      bytes += chunk[0..<count]
    }
    return bytes
  }

  /// The first `count` bytes (or fewer, if it is shorter) of the regular file `path`, or
  /// nil when it is not a readable regular file.
  public static func prefix(_ path: String, count: Int) -> [UInt8]? {
    let descriptor = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    guard descriptor >= 0 else { return nil }
    defer { close(descriptor) }
    var status = stat()
    guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else { return nil }
    var bytes = [UInt8](repeating: 0, count: count)
    var filled = 0
    while filled < count {
      let got = bytes.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress! + filled, count - filled) }
      if got < 0 && errno == EINTR { continue }
      if got < 0 { return nil }
      if got == 0 { break }
      filled += got
    }
    return Array(bytes.prefix(filled))
  }

  /// True when `path` exists (without following a final symbolic link).
  public static func exists(_ path: String) -> Bool {
    var status = stat()
    return lstat(path, &status) == 0
  }

  /// `a FIFO`, `a folder`, `a device`, … for messages.
  public static func typeName(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFIFO: return "a FIFO"
    case S_IFDIR: return "a folder"
    case S_IFCHR, S_IFBLK: return "a device"
    case S_IFSOCK: return "a socket"
    case S_IFLNK: return "a symbolic link"
    default: return "not a regular file"
    }
  }
}

/// For a relative `path`, the note that it was looked up from the working directory
/// (` (relative to the working directory /home/me)`); empty for an absolute one.
public func relativePathNote(_ path: String) -> String {
  guard !path.hasPrefix("/") else { return "" }
  return " (relative to the working directory \(FileManager.default.currentDirectoryPath))"
}
