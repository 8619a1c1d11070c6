import CGlibc

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
      _ = ds2_mallopt(ds2_m_mmap_threshold(), mmapThresholdBytes)
      _ = ds2_mallopt(ds2_m_trim_threshold(), trimThresholdBytes)
    #endif
  }

  /// Never `mmap` blocks and never trim the heap (long training runs whose step buffers
  /// are reused every step).
  public static func neverReturnMemory() {
    #if os(Linux)
      _ = ds2_mallopt(ds2_m_mmap_max(), 0)  // never map blocks
      _ = ds2_mallopt(ds2_m_trim_threshold(), Int32.max)
    #endif
  }
}
