import CMPI
import Foundation
import Training

/// Data-parallel training's collectives on MPI (OpenMPI from Debian), for a process started
/// by an MPI launcher (`mpirun -np R`, or `srun --mpi=pmix` under Slurm).
///
/// Sums are ring allreduces over point-to-point messages (reduce-scatter, then allgather):
/// each chunk of the buffer is added up rank after rank in an order fixed by the rank count,
/// and its one result is copied to every rank, so all replicas hold the same bits whatever
/// the timing. Every wait is bounded: a collective that does not finish within `timeout`
/// seconds (a rank died or hangs) ends the job with `MPI_Abort` after a message naming the
/// rank and the operation, and so does a failed MPI call, naming the call. A collective
/// still waiting `stopGraceSeconds` after a stop request (SIGTERM: the launcher tears the
/// job down because a rank died, and kills what remains about 2 s later) exits at once
/// with such a message (status 1).
public final class MPICollective: Collective {
  public let rank: Int
  public let size: Int
  /// Seconds a collective may wait for the other ranks.
  public let timeoutSeconds: Double
  /// Seconds a collective may still wait once `stopRequested` returns true: long enough
  /// for live ranks to arrive, short enough to exit before mpirun's SIGKILL.
  public var stopGraceSeconds = 1.0
  /// Polled while waiting (the process's SIGTERM/SIGINT flag).
  public var stopRequested: @Sendable () -> Bool = { false }
  /// Seconds spent in collectives (communication and waiting for other ranks).
  public private(set) var communicationSeconds = 0.0
  /// Bytes this rank sent.
  public private(set) var bytesSent = 0
  private let world: MPI_Comm
  private static let tag: Int32 = 17

  /// The environment variables by which MPI launchers mark the processes they start
  /// (OpenMPI's mpirun, PMIx as under `srun --mpi=pmix`, PMI-1/2 as under MPICH or
  /// `srun --mpi=pmi2`).
  public static let launcherVariables = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"]

  /// True when an MPI launcher started this process.
  public static func isLaunchedByMPI(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
    launcherVariables.contains { environment[$0] != nil }
  }

  /// Initializes MPI (once per process) and joins `MPI_COMM_WORLD`.
  /// - Throws: `MPIError` when MPI cannot be initialized.
  public init(timeoutSeconds: Double = 600) throws {
    var provided: Int32 = 0
    var argc: Int32 = 0
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = nil
    let code = MPI_Init_thread(&argc, &argv, ds2_mpi_thread_serialized(), &provided)
    guard code == MPI_SUCCESS else { throw MPIError(call: "MPI_Init_thread", code: code) }
    world = ds2_mpi_comm_world()
    MPI_Comm_set_errhandler(world, ds2_mpi_errors_return())
    var rank: Int32 = 0
    var size: Int32 = 0
    MPI_Comm_rank(world, &rank)
    MPI_Comm_size(world, &size)
    self.rank = Int(rank)
    self.size = Int(size)
    self.timeoutSeconds = timeoutSeconds
  }

  /// Ends MPI for the process (after the last collective).
  public func finalize() {
    MPI_Finalize()
  }

  public func sum(_ values: UnsafeMutableBufferPointer<Float>) {
    ringSum(values, datatype: ds2_mpi_float(), operation: "allreduce of \(values.count) floats")
  }

  public func sum(_ values: UnsafeMutableBufferPointer<Double>) {
    ringSum(values, datatype: ds2_mpi_double(), operation: "allreduce of \(values.count) doubles")
  }

  public func gather(_ bytes: [UInt8]) -> [[UInt8]] {
    let started = DispatchTime.now().uptimeNanoseconds
    defer { communicationSeconds += Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 }
    // Lengths first (summed into a vector with one slot per rank), then the bytes, ring-wise.
    var lengths = [Double](repeating: 0, count: size)
    lengths[rank] = Double(bytes.count)
    lengths.withUnsafeMutableBufferPointer { sum($0) }
    var result = lengths.map { [UInt8](repeating: 0, count: Int($0)) }
    result[rank] = bytes
    // Allgather around the ring: step s passes on what came from rank − s.
    let next = Int32((rank + 1) % size)
    let previous = Int32((rank + size - 1) % size)
    for step in 0..<(size - 1) {
      let outgoing = (rank - step + size) % size
      let incoming = (rank - step - 1 + 2 * size) % size
      let message = result[outgoing]
      message.withUnsafeBufferPointer { message in
        exchange(
          send: message, to: next, receiveInto: &result[incoming], count: result[incoming].count, from: previous,
          datatype: ds2_mpi_byte(), operation: "start-up check")
      }
    }
    return result
  }

  /// Ring allreduce of `values` in place (see the type's documentation).
  @_specialize(where T == Float)
  @_specialize(where T == Double)
  private func ringSum<T: BinaryFloatingPoint>(_ values: UnsafeMutableBufferPointer<T>, datatype: MPI_Datatype, operation: String) {
    guard size > 1, values.count > 0 else { return }
    let started = DispatchTime.now().uptimeNanoseconds
    defer { communicationSeconds += Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 }
    let n = values.count
    func chunk(_ index: Int) -> Range<Int> { (n * index / size)..<(n * (index + 1) / size) }
    let next = Int32((rank + 1) % size)
    let previous = Int32((rank + size - 1) % size)
    var received = [T](repeating: 0, count: n / size + 1)
    // Reduce-scatter: after step s, this rank's chunk (rank − s − 1) holds the sum of ranks
    // rank − s − 1 … rank, added in ring order.
    for step in 0..<(size - 1) {
      let sendChunk = chunk((rank - step + size) % size)
      let receiveChunk = chunk((rank - step - 1 + 2 * size) % size)
      exchange(
        send: UnsafeBufferPointer(rebasing: values[sendChunk]), to: next, receiveInto: &received, count: receiveChunk.count,
        from: previous, datatype: datatype, operation: operation)
      received.withUnsafeBufferPointer { incoming in
        for (offset, index) in receiveChunk.enumerated() { values[index] = incoming[offset] + values[index] }
      }
    }
    // Allgather: the finished chunk (rank + 1) travels around the ring.
    for step in 0..<(size - 1) {
      let sendChunk = chunk((rank + 1 - step + size) % size)
      let receiveChunk = chunk((rank - step + size) % size)
      exchange(
        send: UnsafeBufferPointer(rebasing: values[sendChunk]), to: next, receiveInto: &received, count: receiveChunk.count,
        from: previous, datatype: datatype, operation: operation)
      received.withUnsafeBufferPointer { incoming in
        _ = UnsafeMutableBufferPointer(rebasing: values[receiveChunk]).initialize(from: incoming.prefix(receiveChunk.count))
      }
    }
  }

  /// Sends `outgoing` to `destination` while receiving `count` elements from `source` into
  /// the start of `received`, waiting at most the timeout (or the stop grace).
  private func exchange<T>(
    send outgoing: UnsafeBufferPointer<T>, to destination: Int32, receiveInto received: inout [T], count: Int,
    from source: Int32, datatype: MPI_Datatype, operation: String
  ) {
    var requests = [MPI_Request?](repeating: nil, count: 2)
    bytesSent += outgoing.count * MemoryLayout<T>.stride
    received.withUnsafeMutableBufferPointer { receive in
      check(
        MPI_Irecv(receive.baseAddress, Int32(count), datatype, source, Self.tag, world, &requests[1]), "MPI_Irecv", operation)
      check(
        MPI_Isend(
          UnsafeMutableRawPointer(mutating: outgoing.baseAddress), Int32(outgoing.count), datatype, destination, Self.tag,
          world, &requests[0]),
        "MPI_Isend", operation)
      wait(&requests, operation: operation, peers: "ranks \(source) and \(destination)")
    }
  }

  /// Polls `requests` to completion, within the time limits.
  private func wait(_ requests: inout [MPI_Request?], operation: String, peers: String) {
    let started = DispatchTime.now().uptimeNanoseconds
    var stopSeen: UInt64?
    var spins = 0
    while true {
      var done: Int32 = 0
      check(MPI_Testall(Int32(requests.count), &requests, &done, ds2_mpi_statuses_ignore()), "MPI_Testall", operation)
      if done != 0 { return }
      spins += 1
      if spins < 1000 { continue }
      let now = DispatchTime.now().uptimeNanoseconds
      if stopSeen == nil && stopRequested() { stopSeen = now }
      let waited = Double(now - started) / 1e9
      if let stopSeen, Double(now - stopSeen) / 1e9 > stopGraceSeconds {
        FileHandle.standardError.write(
          Data(
            ("ds2-data: rank \(rank): stopped while waiting \(String(format: "%.1f", waited)) s for \(peers) in the \(operation) "
              + "(a rank has died, or did not get the stop request); no checkpoint from this stop\n").utf8))
        _exit(1)
      }
      if waited > timeoutSeconds {
        abort(
          "rank \(rank): waited \(String(format: "%.0f", waited)) s for \(peers) in the \(operation) "
            + "(limit \(String(format: "%.0f", timeoutSeconds)) s): a rank has died or hangs")
      }
      usleep(spins < 20_000 ? 0 : 200)
    }
  }

  /// The error chokepoint: a failed MPI call ends the job, naming the call and operation.
  private func check(_ code: Int32, _ call: String, _ operation: String) {
    guard code != MPI_SUCCESS else { return }
    abort("rank \(rank): \(call) failed in the \(operation): \(MPIError(call: call, code: code).reason)")
  }

  /// Ends every rank of the job after this rank failed on its own (a damaged record, a
  /// full disk): prints the error with the rank and calls `MPI_Abort`, so that the other
  /// ranks stop at once instead of waiting for this one in their next collective.
  public func abortJob(after error: Error) -> Never {
    abort("rank \(rank) of \(size): \(error)")
  }

  /// Prints `message` and ends every rank of the job (`MPI_Abort`, exit status 1).
  private func abort(_ message: String) -> Never {
    FileHandle.standardError.write(Data("ds2-data: \(message)\n".utf8))
    MPI_Abort(world, 1)
    exit(1)
  }
}

/// A failed MPI call, with MPI's own description of the error.
public struct MPIError: Error, CustomStringConvertible {
  public let call: String
  public let code: Int32

  public var reason: String {
    var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
    var length: Int32 = 0
    MPI_Error_string(code, &buffer, &length)
    return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  public var description: String { "\(call) failed: \(reason) (MPI error \(code))" }
}
