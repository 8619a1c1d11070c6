internal import CMalloc

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

  /// Keeps freed step buffers in the heap for the next step (never trimmed), except blocks
  /// of at least `mapAboveBytes`, which are mapped and unmapped each time: a long batch's
  /// largest activations then leave no hole in the heap that the following shorter
  /// batches cannot fill, which keeps the peak lower at the same speed.
  public static func keepStepBuffers(mapAboveBytes: Int32 = 16 << 20) {
    #if os(Linux)
      _ = ds2_mallopt(ds2_m_mmap_threshold(), mapAboveBytes)
      _ = ds2_mallopt(ds2_m_trim_threshold(), Int32.max)
    #endif
  }
}
