import DS2Core
import Dispatch
internal import COpenBLAS

/// Control of OpenBLAS's thread pool.
public enum BLASThreads {
  /// Stops OpenBLAS's worker threads if the library is open (it is opened at the first
  /// multiplication, not at start). The pthread build starts them when the library loads
  /// and lets them spin (sched_yield) for a while before sleeping, which steals a core;
  /// they are recreated on the next threaded BLAS call. The C function is
  /// `blas_thread_shutdown_`.
  public static func releaseIdleThreads() {
    if OpenBLASLibrary.isOpen { _ = OpenBLASLibrary.shared.shutDownThreads() }
  }

  /// Threads OpenBLAS uses for one call (`openblas_get_num_threads` / `openblas_set_num_threads`).
  public static var count: Int {
    get { Int(OpenBLASLibrary.shared.threadCount()) }
    set {
      precondition(newValue >= 1, "BLAS thread count must be at least 1")
      OpenBLASLibrary.shared.setThreadCount(Int32(newValue))
    }
  }
}

/// Row-major general matrix product on tensors:
/// `c = alpha · op(a) · op(b) + beta · c`, where `op(x)` is `x` or its transpose.
///
/// - Parameters:
///   - a: rank-2 tensor; `op(a)` is `m × k`.
///   - b: rank-2 tensor; `op(b)` is `k × n`.
///   - c: rank-2 tensor of shape `[m, n]`; its contents are ignored when `beta == 0`.
/// - Precondition: all three are rank 2 and their shapes agree.
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
public func gemm<Scalar: TensorScalar>(
  _ a: Tensor<Scalar>, transposed transposeA: Bool = false,
  _ b: Tensor<Scalar>, transposed transposeB: Bool = false,
  alpha: Scalar = 1, beta: Scalar = 0, into c: inout Tensor<Scalar>, pool: WorkerPool = .serial
) {
  precondition(a.rank == 2 && b.rank == 2 && c.rank == 2, "gemm operands must be rank 2")
  let (m, k) = transposeA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
  let (kb, n) = transposeB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
  precondition(k == kb, "gemm inner dimensions differ: op(a) is \(m)×\(k), op(b) is \(kb)×\(n)")
  precondition(c.shape == [m, n], "gemm result shape \(c.shape) is not [\(m), \(n)]")
  a.withUnsafeBufferPointer { pa in
    b.withUnsafeBufferPointer { pb in
      c.withUnsafeMutableBufferPointer { pc in
        BLAS.gemm(
          transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
          alpha: alpha, a: pa.baseAddress, lda: a.shape[1], b: pb.baseAddress, ldb: b.shape[1],
          beta: beta, c: pc.baseAddress, ldc: n, pool: pool)
      }
    }
  }
}

/// Pointer-level BLAS calls used by the layers, which multiply sub-blocks of larger buffers.
enum BLAS {
  /// Row-major `C[m×n] = alpha · op(A) · op(B) + beta · C`, with `op(A)` `m × k` and `op(B)` `k × n`.
  ///
  /// `lda`, `ldb`, `ldc` are the row strides (in elements) of the matrices as stored, i.e. before
  /// the optional transpose. Pointers may be nil only when the corresponding matrix is empty.
  static func gemm<Scalar: TensorScalar>(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Scalar, a: UnsafePointer<Scalar>?, lda: Int,
    b: UnsafePointer<Scalar>?, ldb: Int,
    beta: Scalar, c: UnsafeMutablePointer<Scalar>?, ldc: Int, pool: WorkerPool
  ) {
    precondition(m >= 0 && n >= 0 && k >= 0, "negative gemm dimension")
    precondition(lda >= max(1, transposeA ? m : k), "lda \(lda) too small")
    precondition(ldb >= max(1, transposeB ? k : n), "ldb \(ldb) too small")
    precondition(ldc >= max(1, n), "ldc \(ldc) too small")
    precondition(max(m, n, k, lda, ldb, ldc) <= Int(Int32.max), "gemm dimension exceeds 32-bit BLAS range")
    guard m > 0, n > 0 else { return }
    guard let c else { preconditionFailure("gemm result pointer is nil") }
    guard k > 0, let a, let b else {
      // An empty inner dimension leaves only the beta term.
      for row in 0..<m {
        for column in 0..<n { c[row * ldc + column] = beta == 0 ? 0 : beta * c[row * ldc + column] }
      }
      return
    }
    let parts = pool.parts(for: Double(m) * Double(n) * Double(k), minimumPartSize: 1_000_000)
    guard parts > 1 && max(m, n) >= 2 * parts else {
      product(
        transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
        beta: beta, c: c, ldc: ldc)
      return
    }
    // Split C into row blocks (or column blocks when it is wide), one single-threaded
    // product per worker; each worker writes only its own block.
    nonisolated(unsafe) let (left, right, result) = (a, b, c)  // each part writes only its own block of c
    pool.forEach(parts) { part in
      if m >= n {
        let (first, last) = (m * part / parts, m * (part + 1) / parts)
        product(
          transposeA: transposeA, transposeB: transposeB, m: last - first, n: n, k: k, alpha: alpha,
          a: transposeA ? left + first : left + first * lda, lda: lda, b: right, ldb: ldb, beta: beta,
          c: result + first * ldc, ldc: ldc)
      } else {
        let (first, last) = (n * part / parts, n * (part + 1) / parts)
        product(
          transposeA: transposeA, transposeB: transposeB, m: m, n: last - first, k: k, alpha: alpha, a: left, lda: lda,
          b: transposeB ? right + first * ldb : right + first, ldb: ldb, beta: beta, c: result + first, ldc: ldc)
      }
    }
  }

  /// One `cblas_?gemm` call on the calling thread's share of the work.
  private static func product<Scalar: TensorScalar>(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Scalar, a: UnsafePointer<Scalar>, lda: Int,
    b: UnsafePointer<Scalar>, ldb: Int,
    beta: Scalar, c: UnsafeMutablePointer<Scalar>, ldc: Int
  ) {
    let ta = Int32(transposeA ? DS2_CBLAS_TRANS : DS2_CBLAS_NO_TRANS)
    let tb = Int32(transposeB ? DS2_CBLAS_TRANS : DS2_CBLAS_NO_TRANS)
    let order = Int32(DS2_CBLAS_ROW_MAJOR)
    let blas = OpenBLASLibrary.shared
    switch Scalar.precision {
    case .single:
      blas.sgemm(
        order, ta, tb, Int32(m), Int32(n), Int32(k), Float(alpha),
        UnsafeRawPointer(a).assumingMemoryBound(to: Float.self), Int32(lda),
        UnsafeRawPointer(b).assumingMemoryBound(to: Float.self), Int32(ldb), Float(beta),
        UnsafeMutableRawPointer(c).assumingMemoryBound(to: Float.self), Int32(ldc))
    case .double:
      blas.dgemm(
        order, ta, tb, Int32(m), Int32(n), Int32(k), Double(alpha),
        UnsafeRawPointer(a).assumingMemoryBound(to: Double.self), Int32(lda),
        UnsafeRawPointer(b).assumingMemoryBound(to: Double.self), Int32(ldb), Double(beta),
        UnsafeMutableRawPointer(c).assumingMemoryBound(to: Double.self), Int32(ldc))
    }
  }
}
