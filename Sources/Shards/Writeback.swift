internal import CSyncFileRange

/// Write-back hints for files written in pieces.
enum Writeback {
  /// Starts writing the dirty pages of the open file `descriptor` to disk without waiting
  /// (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`; elsewhere nothing), so that a later
  /// fsync has less left to wait for. Returns false when the kernel refused (a hint only:
  /// the fsync that follows reports real errors).
  @discardableResult
  static func start(descriptor: Int32) -> Bool { ds2_start_writeback(descriptor) == 0 }
}
