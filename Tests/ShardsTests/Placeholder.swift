import XCTest
final class PlaceholderShardsTests: XCTestCase { func testNothing() {} }
