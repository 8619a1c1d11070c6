import XCTest
final class PlaceholderDS2CoreTests: XCTestCase { func testNothing() {} }
