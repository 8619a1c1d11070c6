import Foundation

/// What a child process did.
public struct ProcessRun: Sendable {
  /// Exit status, or the signal number when `signal` is set.
  public var status: Int32
  /// The signal that ended the process, if one did (not counting the kill of a hung run).
  public var signal: Int32?
  /// True when the run outlived its limit and was killed.
  public var hung: Bool
  public var stdout: String
  public var stderr: String
}

/// The `ds2-data` binary built beside the test bundle.
public var ds2DataBinary: String { Bundle.main.bundleURL.appendingPathComponent("ds2-data").path }

/// Runs `executable` to completion, capturing its output; a run that outlives
/// `limitSeconds` is killed and reported as hung. `environment` entries are added to (or,
/// with a nil value, removed from) this process's environment.
public func runProcess(
  _ executable: String, _ arguments: [String], in directory: String? = nil, environment: [String: String?] = [:],
  limitSeconds: Double = 600
) throws -> ProcessRun {
  let process = configuredProcess(executable, arguments, in: directory, environment: environment)
  let out = Pipe()
  let err = Pipe()
  process.standardOutput = out
  process.standardError = err
  let finished = DispatchSemaphore(value: 0)
  process.terminationHandler = { _ in finished.signal() }
  try process.run()
  // Both pipes are drained while the child runs, so a full pipe cannot block it.
  final class Box: @unchecked Sendable { var data = Data() }  // written by `reader`, read after `reader.sync`
  let stdout = Box()
  let reader = DispatchQueue(label: "stdout")
  reader.async { stdout.data = out.fileHandleForReading.readDataToEndOfFile() }
  let stderr = err.fileHandleForReading.readDataToEndOfFile()
  let hung = finished.wait(timeout: .now() + limitSeconds) == .timedOut
  if hung {
    kill(process.processIdentifier, SIGKILL)
    finished.wait()
  }
  reader.sync {}
  let signalled = process.terminationReason == .uncaughtSignal && !hung
  return ProcessRun(
    status: process.terminationStatus, signal: signalled ? process.terminationStatus : nil, hung: hung,
    stdout: String(decoding: stdout.data, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
}

/// Starts `executable` with its output discarded, for tests that signal, kill or wait on it.
public func startProcess(
  _ executable: String, _ arguments: [String], in directory: String? = nil, environment: [String: String?] = [:]
) throws -> Process {
  let process = configuredProcess(executable, arguments, in: directory, environment: environment)
  process.standardOutput = FileHandle.nullDevice
  process.standardError = FileHandle.nullDevice
  try process.run()
  return process
}

/// Runs a tool and throws when it exits non-zero.
public func runTool(_ executable: String, _ arguments: [String], in directory: String) throws {
  let run = try runProcess(executable, arguments, in: directory)
  guard run.status == 0, run.signal == nil, !run.hung else {
    throw ToolFailure(message: "\(executable) \(arguments.joined(separator: " ")) exited with \(run.status): \(run.stderr)")
  }
}

public struct ToolFailure: Error, CustomStringConvertible {
  public var message: String
  public var description: String { message }
  public init(message: String) { self.message = message }
}

private func configuredProcess(
  _ executable: String, _ arguments: [String], in directory: String?, environment: [String: String?]
) -> Process {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: executable)
  process.arguments = arguments
  if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
  if !environment.isEmpty {
    var merged = ProcessInfo.processInfo.environment
    for (key, value) in environment { merged[key] = value }
    process.environment = merged
  }
  return process
}

/// Writes a model YAML small enough to train in seconds (one 2-channel conv layer, one
/// recurrent layer of `hidden` units) with the given `training` and `decoding` mappings.
/// - Returns: its path.
public func writeTinyModel(
  to path: String, hidden: Int, training: String, decoding: String? = nil
) throws -> String {
  var text = """
    model:
      convolutions: [{channels: 2, kernelTime: 5, kernelFrequency: 21, strideTime: 2, strideFrequency: 4}]
      recurrentLayers: 1
      hidden: \(hidden)
    training: \(training)

    """
  if let decoding { text += "decoding: \(decoding)\n" }
  try text.write(toFile: path, atomically: true, encoding: .utf8)
  return path
}
