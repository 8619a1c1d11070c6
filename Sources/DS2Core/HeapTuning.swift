/// glibc allocator settings for processes that allocate many large, short-lived buffers
/// (per-utterance audio and features, per-step activations).
///
/// By default glibc maps every block above 128 KiB with `mmap` and unmaps it on free, so
/// each utterance or training step pays page faults and zero-filling; these settings keep
/// such blocks in the heap. No effect on other platforms.
public enum HeapTuning {
  /// Serve blocks up to `mmapThresholdBytes` from the heap and keep up to
  /// `trimThresholdBytes` of freed memory instead of returning it to the kernel.
  public static func keepBuffersOnHeap(mmapThresholdBytes: Int32 = 64 << 20, trimThresholdBytes: Int32 = 256 << 20) {
    #if os(Linux)
      _ = glibcMallopt(-3, mmapThresholdBytes)  // M_MMAP_THRESHOLD
      _ = glibcMallopt(-1, trimThresholdBytes)  // M_TRIM_THRESHOLD
    #endif
  }

  /// Never `mmap` blocks and never trim the heap (long training runs whose step buffers
  /// are reused every step).
  public static func neverReturnMemory() {
    #if os(Linux)
      _ = glibcMallopt(-4, 0)  // M_MMAP_MAX: never map blocks
      _ = glibcMallopt(-1, Int32.max)  // M_TRIM_THRESHOLD
    #endif
  }
}

#if os(Linux)
  /// glibc's `mallopt` (declared in <malloc.h>, which Swift's Glibc module does not export).
  @_silgen_name("mallopt")
  private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif
