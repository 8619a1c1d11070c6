import XCTest
final class PlaceholderFeaturesTests: XCTestCase { func testNothing() {} }
