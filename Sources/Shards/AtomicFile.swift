import DS2Core
import Foundation

/// Durable file updates: what a crash may leave is the old file or the whole new one.
public enum AtomicFile {
  /// Writes `bytes` to `path.tmp`, flushes them to disk, renames the file over `path` and
  /// flushes the directory, so that after a crash `path` holds the old bytes or all of the
  /// new ones.
  /// - Throws: `FileSystemError` naming the path, the call and the system error.
  public static func write(_ bytes: [UInt8], to path: String) throws {
    let temporary = path + ".tmp"
    let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else { throw FileSystemError(path: temporary, operation: "open (create)", errorNumber: errno) }
    var written = 0
    let failure: Int32? = bytes.withUnsafeBytes { raw in
      while written < raw.count {
        let n = Foundation.write(descriptor, raw.baseAddress! + written, raw.count - written)
        if n < 0 {
          if errno == EINTR { continue }
          return errno
        }
        written += n
      }
      return fsync(descriptor) == 0 ? nil : errno
    }
    close(descriptor)
    if let failure {
      unlink(temporary)
      throw FileSystemError(path: temporary, operation: "write and fsync", errorNumber: failure)
    }
    guard rename(temporary, path) == 0 else {
      let code = errno
      unlink(temporary)
      throw FileSystemError(path: path, operation: "rename into place", errorNumber: code)
    }
    synchronizeDirectory(containing: path)
  }

  /// Flushes the directory entry of `path` (a rename or a new file) to disk. A hint on
  /// file systems that order metadata anyway; failures are ignored (the data itself was
  /// flushed and checked).
  public static func synchronizeDirectory(containing path: String) {
    let parent = (path as NSString).deletingLastPathComponent
    let directory = open(parent.isEmpty ? "." : parent, O_RDONLY | O_CLOEXEC)
    guard directory >= 0 else { return }
    fsync(directory)
    close(directory)
  }
}
