import Foundation
import TestSupport
import XCTest

@testable import Shards

final class WritebackTests: XCTestCase {
  /// The hint reaches the kernel through its C declaration: accepted for an open file,
  /// refused (EBADF) for a closed descriptor.
  func testWritebackHintIsAcceptedForAnOpenFileOnly() throws {
    #if os(Linux)
      let directory = TemporaryDirectory("writeback")
      let path = directory.path + "/file"
      try Data(repeating: 7, count: 1 << 20).write(to: URL(fileURLWithPath: path))
      let descriptor = open(path, O_RDONLY)
      XCTAssertGreaterThanOrEqual(descriptor, 0)
      XCTAssertTrue(Writeback.start(descriptor: descriptor))
      close(descriptor)
      XCTAssertFalse(Writeback.start(descriptor: descriptor))
      XCTAssertFalse(Writeback.start(descriptor: -1), "the -1 case")
    #endif
  }
}
