import DS2Core
import Foundation
import Synchronization
internal import COpenBLAS

/// The OpenBLAS entry points ds2-data uses, from the library opened the first time a
/// command needs one (`shared`). OpenBLAS is not linked: loading it starts its thread pool,
/// whose threads spin for a while, and every command that multiplies no matrices (prepare,
/// merge, inspect, ...) would pay for that at start (about 1.4 ms and a core's spinning).
struct OpenBLASLibrary: @unchecked Sendable {
  let sgemm: ds2_cblas_sgemm
  let dgemm: ds2_cblas_dgemm
  let coreName: ds2_openblas_get_string
  let threadCount: ds2_openblas_get_num_threads
  let setThreadCount: ds2_openblas_set_num_threads
  let shutDownThreads: ds2_blas_thread_shutdown

  /// The soname of Debian's libopenblas0 (any of its variants: pthread, openmp, serial).
  static let fileName = "libopenblas.so.0"

  private static let opened = Atomic<Bool>(false)

  /// Whether `shared` has been opened in this process (asking does not open it).
  static var isOpen: Bool { opened.load(ordering: .acquiring) }

  /// The library, opened on first use. A process that cannot open it prints why and exits
  /// with status 1; `open()` throws the same error instead.
  static let shared: OpenBLASLibrary = {
    do {
      let library = try open()
      opened.store(true, ordering: .releasing)
      return library
    } catch {
      FileHandle.standardError.write(Data("ds2-data: \(error)\n".utf8))
      exit(1)
    }
  }()

  /// Opens the library and finds its entry points.
  /// - Throws: `ConfigurationError` naming the library when it cannot be opened, lacks an
  ///   entry point, or is a 64-bit-integer build (whose `int` arguments are 8 bytes).
  static func open() throws -> OpenBLASLibrary {
    guard let handle = dlopen(fileName, RTLD_NOW | RTLD_LOCAL) else {
      let reason = dlerror().map { String(cString: $0) } ?? "unknown reason"
      throw ConfigurationError(
        "cannot open OpenBLAS (\(fileName)): \(reason); install it (Debian: apt-get install libopenblas0)")
    }
    func entry<T>(_ name: String, as type: T.Type) throws -> T {
      guard let address = dlsym(handle, name) else {
        throw ConfigurationError("OpenBLAS (\(fileName)) has no entry point \(name): not an OpenBLAS 0.3 library")
      }
      return unsafeBitCast(address, to: type)
    }
    let config = try entry("openblas_get_config", as: ds2_openblas_get_string.self)
    let configuration = config().map { String(cString: $0) } ?? ""
    guard !configuration.contains("USE64BITINT") else {
      throw ConfigurationError(
        "OpenBLAS (\(fileName)) is a 64-bit-integer build (\(configuration)); ds2-data needs the 32-bit one (Debian: libopenblas0)")
    }
    return OpenBLASLibrary(
      sgemm: try entry("cblas_sgemm", as: ds2_cblas_sgemm.self),
      dgemm: try entry("cblas_dgemm", as: ds2_cblas_dgemm.self),
      coreName: try entry("openblas_get_corename", as: ds2_openblas_get_string.self),
      threadCount: try entry("openblas_get_num_threads", as: ds2_openblas_get_num_threads.self),
      setThreadCount: try entry("openblas_set_num_threads", as: ds2_openblas_set_num_threads.self),
      shutDownThreads: try entry("blas_thread_shutdown_", as: ds2_blas_thread_shutdown.self))
  }
}
