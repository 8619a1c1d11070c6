internal import COpenBLAS

/// Control of OpenBLAS's thread pool.
public enum BLASThreads {
  /// Stops OpenBLAS's worker threads. The pthread build starts them when the library
  /// loads and lets them spin (sched_yield) for a while before sleeping, which steals a
  /// core from commands that do no linear algebra; they are recreated on the next
  /// threaded BLAS call. The corresponding C function is `blas_thread_shutdown_`.
  public static func releaseIdleThreads() { _ = blas_thread_shutdown_() }

  /// Threads OpenBLAS uses for one call (`openblas_get_num_threads` / `openblas_set_num_threads`).
  public static var count: Int {
    get { Int(openblas_get_num_threads()) }
    set { openblas_set_num_threads(Int32(newValue)) }
  }
}
