import XCTest
final class PlaceholderAudioTests: XCTestCase { func testNothing() {} }
