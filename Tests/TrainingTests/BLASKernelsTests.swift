import Foundation
import XCTest

@testable import Training

final class BLASKernelsTests: XCTestCase {
  /// `flags` lines as /proc/cpuinfo gives them (trimmed to the features that matter).
  let sapphireRapids = "vendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 sse4_2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl avx512_bf16 amx_tile\n"
  let skylakeServer = "vendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 sse4_2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl\n"
  let zen3 = "vendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 sse4_2 avx avx2 fma\n"
  let haswell = "vendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 sse4_2 avx avx2 fma\n"
  let oldAtom = "vendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 ssse3\n"

  func cpu(_ text: String) -> CPUFeatures { CPUFeatures.parse(text, architecture: "x86_64") }

  func testBestCoreTypeFollowsTheCPUsFeatures() {
    XCTAssertEqual(BLASKernels.bestCoreType(for: cpu(sapphireRapids)), "Cooperlake")
    XCTAssertEqual(BLASKernels.bestCoreType(for: cpu(skylakeServer)), "SkylakeX")
    XCTAssertEqual(BLASKernels.bestCoreType(for: cpu(zen3)), "Zen")
    XCTAssertEqual(BLASKernels.bestCoreType(for: cpu(haswell)), "Haswell")
    XCTAssertNil(BLASKernels.bestCoreType(for: cpu(oldAtom)))
    XCTAssertNil(BLASKernels.bestCoreType(for: CPUFeatures.parse(zen3, architecture: "aarch64")))
  }

  /// The Sapphire Rapids case: Debian 12's OpenBLAS 0.3.21 picks Prescott → upgrade; a
  /// correct or better choice is left alone.
  func testUpgradesOnlyAFallback() {
    XCTAssertEqual(BLASKernels.upgrade(from: "Prescott", for: cpu(sapphireRapids)), "Cooperlake")
    XCTAssertEqual(BLASKernels.upgrade(from: "Haswell", for: cpu(skylakeServer)), "SkylakeX")
    XCTAssertEqual(BLASKernels.upgrade(from: "Sandybridge", for: cpu(zen3)), "Zen")
    XCTAssertNil(BLASKernels.upgrade(from: "Zen", for: cpu(zen3)))
    XCTAssertNil(BLASKernels.upgrade(from: "Haswell", for: cpu(zen3)))
    XCTAssertNil(BLASKernels.upgrade(from: "SkylakeX", for: cpu(haswell)))
    XCTAssertNil(BLASKernels.upgrade(from: "Prescott", for: cpu(oldAtom)))
  }

  /// This machine: the library's kernels are at least as good as its features allow.
  func testThisMachineRunsItsBestKernels() throws {
    guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil, let features = CPUFeatures.current() else {
      throw XCTSkip("OPENBLAS_CORETYPE is set, or no /proc/cpuinfo")
    }
    XCTAssertNil(BLASKernels.upgrade(from: BLASKernels.coreName, for: features), BLASKernels.summary)
  }
}
