import DS2Core
import Foundation

/// Which OpenBLAS kernels run, and making sure they are the best this CPU supports.
///
/// OpenBLAS (built with DYNAMIC_ARCH, as Debian's) picks its kernels once, when the library
/// loads, from a table of CPU models; a CPU newer than the library (Debian 12's 0.3.21 on
/// Sapphire Rapids, say) falls back to generic `Prescott` kernels that run several times
/// slower, silently. The variable `OPENBLAS_CORETYPE` overrides the choice but is read only
/// at load time, so `ensureBestKernels` re-executes the process with it set when the
/// library chose less than the CPU's features allow. A user's own `OPENBLAS_CORETYPE`
/// always wins.
public enum BLASKernels {
  /// The kernel set OpenBLAS uses (`openblas_get_corename`), e.g. `Haswell`, `Zen`.
  public static var coreName: String { OpenBLASLibrary.shared.coreName().map { String(cString: $0) } ?? "unknown" }

  /// Set by `ensureBestKernels` in the environment of the process it re-executes.
  static let selectionVariable = "DS2_OPENBLAS_CORETYPE_SELECTED"

  /// How the running core type came about, for `-v` and benchmark output.
  public static var origin: String {
    let environment = ProcessInfo.processInfo.environment
    if let chosen = environment[selectionVariable] {
      return "selected by ds2-data for this CPU (the library's own choice was \(chosen))"
    }
    if environment["OPENBLAS_CORETYPE"] != nil { return "set by OPENBLAS_CORETYPE" }
    return "chosen by the library"
  }

  /// `coreName` and `origin` in one line.
  public static var summary: String { "OpenBLAS core \(coreName), \(origin)" }

  /// `summary` when this process has opened OpenBLAS (it opens it at the first
  /// multiplication), nil otherwise: asking does not open it.
  public static var summaryIfOpen: String? { OpenBLASLibrary.isOpen ? summary : nil }

  /// Re-executes this process with `OPENBLAS_CORETYPE` set to the best core type for the
  /// CPU when OpenBLAS fell back to a lesser one; returns when nothing is to be done (the
  /// choice is right, the user set the variable, or this is the re-executed process).
  /// Opens OpenBLAS first (the model commands use it; other commands never open it).
  public static func ensureBestKernels() {
    _ = OpenBLASLibrary.shared
    let environment = ProcessInfo.processInfo.environment
    guard environment["OPENBLAS_CORETYPE"] == nil, environment[selectionVariable] == nil else { return }
    // The test suite stands in for a CPU the library does not know with this variable.
    let libraryChoice = environment["DS2_TEST_OPENBLAS_LIBRARY_CORE"] ?? coreName
    guard let cpu = CPUFeatures.current(), let better = upgrade(from: libraryChoice, for: cpu) else { return }
    setenv("OPENBLAS_CORETYPE", better, 1)
    setenv(selectionVariable, libraryChoice, 1)
    let arguments = CommandLine.arguments.map { strdup($0) } + [nil]
    execv("/proc/self/exe", arguments)
    // exec failed: carry on with the library's kernels.
    unsetenv("OPENBLAS_CORETYPE")
    unsetenv(selectionVariable)
  }

  /// The core type to use instead of `current` on `cpu`, or nil when `current` is as good.
  static func upgrade(from current: String, for cpu: CPUFeatures) -> String? {
    guard let best = bestCoreType(for: cpu), tier(of: best) > tier(of: current) else { return nil }
    return best
  }

  /// The best x86-64 kernel set of OpenBLAS 0.3.x for a CPU with these features, or nil
  /// for other architectures (whose kernel choice does not depend on a model table).
  static func bestCoreType(for cpu: CPUFeatures) -> String? {
    let f = cpu.flags
    guard cpu.architecture == "x86_64" else { return nil }
    if f.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"]) {
      return f.contains("avx512_bf16") ? "Cooperlake" : "SkylakeX"
    }
    if f.isSuperset(of: ["avx2", "fma"]) { return cpu.vendor == "AuthenticAMD" || cpu.vendor == "HygonGenuine" ? "Zen" : "Haswell" }
    if f.contains("avx") { return "Sandybridge" }
    if f.contains("sse4_2") { return "Nehalem" }
    return nil
  }

  /// Rank of an OpenBLAS x86-64 core type by the instructions its kernels use.
  static func tier(of core: String) -> Int {
    switch core.lowercased() {
    case "skylakex", "cooperlake", "sapphirerapids": return 5
    case "haswell", "zen", "excavator", "steamroller": return 4
    case "sandybridge", "bulldozer", "piledriver": return 3
    case "nehalem", "barcelona", "bobcat", "dunnington", "penryn": return 2
    default: return 1  // Prescott, Core2, Atom, Katmai, …: SSE2/SSE3 kernels
    }
  }
}

/// The CPU's vendor and feature flags (from `/proc/cpuinfo`).
struct CPUFeatures: Equatable {
  var architecture: String
  var vendor: String
  var flags: Set<String>

  static func current() -> CPUFeatures? {
    var system = utsname()
    uname(&system)
    let machine = withUnsafeBytes(of: system.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    guard let bytes = try? RegularFile.read("/proc/cpuinfo", maxBytes: 64 << 20) else { return nil }
    return parse(String(decoding: bytes, as: UTF8.self), architecture: machine)
  }

  /// The first processor's `vendor_id` and `flags` lines.
  static func parse(_ text: String, architecture: String) -> CPUFeatures {
    var vendor = ""
    var flags = Set<String>()
    for line in text.split(separator: "\n") {
      let parts = line.split(separator: ":", maxSplits: 1)
      guard parts.count == 2 else { continue }
      let key = parts[0].trimmingCharacters(in: .whitespaces)
      if key == "vendor_id" && vendor.isEmpty { vendor = parts[1].trimmingCharacters(in: .whitespaces) }
      if key == "flags" && flags.isEmpty { flags = Set(parts[1].split(separator: " ").map(String.init)) }
    }
    return CPUFeatures(architecture: architecture, vendor: vendor, flags: flags)
  }
}
