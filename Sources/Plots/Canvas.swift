import CPNG
import DS2Core
import Foundation

/// An RGB color.
public struct Color: Sendable, Equatable {
  public var red: UInt8
  public var green: UInt8
  public var blue: UInt8

  public init(_ red: UInt8, _ green: UInt8, _ blue: UInt8) {
    self.red = red
    self.green = green
    self.blue = blue
  }

  public static let white = Color(255, 255, 255)
  public static let black = Color(0, 0, 0)
  public static let grey = Color(150, 150, 150)
  public static let lightGrey = Color(225, 225, 225)
  /// Series colors (Tableau 10's first four).
  public static let series = [Color(31, 119, 180), Color(255, 127, 14), Color(44, 160, 44), Color(214, 39, 40)]

  /// Viridis at `t` in [0, 1] (linear between nine stops of the matplotlib colormap).
  public static func viridis(_ t: Double) -> Color {
    let stops: [(Double, Double, Double)] = [
      (68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142), (31, 158, 137), (53, 183, 121),
      (109, 205, 89), (253, 231, 37),
    ]
    let x = min(max(t.isFinite ? t : 0, 0), 1) * Double(stops.count - 1)
    let i = min(Int(x), stops.count - 2)
    let f = x - Double(i)
    func mix(_ a: Double, _ b: Double) -> UInt8 { UInt8((a + (b - a) * f).rounded()) }
    return Color(mix(stops[i].0, stops[i + 1].0), mix(stops[i].1, stops[i + 1].1), mix(stops[i].2, stops[i + 1].2))
  }
}

/// A white RGB picture to draw on, written as PNG by libpng.
public struct Canvas: Sendable {
  public let width: Int
  public let height: Int
  public internal(set) var pixels: [UInt8]

  public init(width: Int, height: Int, background: Color = .white) {
    precondition(width > 0 && height > 0 && width <= 16384 && height <= 16384, "canvas \(width)×\(height)")
    self.width = width
    self.height = height
    pixels = [UInt8](repeating: 0, count: width * height * 3)
    fill(x: 0, y: 0, width: width, height: height, color: background)
  }

  public mutating func set(_ x: Int, _ y: Int, _ color: Color) {
    guard x >= 0, y >= 0, x < width, y < height else { return }
    let offset = (y * width + x) * 3
    pixels[offset] = color.red
    pixels[offset + 1] = color.green
    pixels[offset + 2] = color.blue
  }

  /// Fills the rectangle's part inside the canvas (nothing when it lies outside).
  public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, color: Color) {
    let (top, bottom) = (max(0, y), min(height, y + h))
    let (left, right) = (max(0, x), min(width, x + w))
    guard top < bottom, left < right else { return }
    for row in top..<bottom {
      for column in left..<right { set(column, row, color) }
    }
  }

  /// A straight line (Bresenham), `thickness` pixels wide.
  public mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, color: Color, thickness: Int = 1) {
    var (x, y) = (x0, y0)
    let dx = abs(x1 - x0)
    let dy = -abs(y1 - y0)
    let sx = x0 < x1 ? 1 : -1
    let sy = y0 < y1 ? 1 : -1
    var error = dx + dy
    while true {
      fill(x: x - thickness / 2, y: y - thickness / 2, width: thickness, height: thickness, color: color)
      if x == x1 && y == y1 { break }
      let e2 = 2 * error
      if e2 >= dy { error += dy; x += sx }
      if e2 <= dx { error += dx; y += sy }
    }
  }

  /// Draws `text` with its top-left corner at (x, y) and returns its width. With GNU
  /// Unifont installed (Debian `unifont`: every Unicode character of the Basic
  /// Multilingual Plane, CJK included, 16 pixels tall), in that font, each of its pixels
  /// `scale / 2` pixels; otherwise in the built-in 5×7 font of ASCII capitals, digits and
  /// punctuation, each font pixel `scale` pixels (other characters drawn as `?`).
  @discardableResult
  public mutating func text(_ text: String, x: Int, y: Int, color: Color = .black, scale: Int = 2) -> Int {
    var cursor = x
    if let unifont = Unifont.shared {
      let size = max(1, scale / 2)
      for scalar in text.unicodeScalars {
        guard let glyph = unifont.glyph(scalar) else { continue }
        for (row, bits) in glyph.rows.enumerated() {
          for column in 0..<glyph.width where bits & (1 << (glyph.width - 1 - column)) != 0 {
            fill(x: cursor + column * size, y: y - 1 + row * size, width: size, height: size, color: color)
          }
        }
        cursor += glyph.width * size
      }
      return cursor - x
    }
    for character in text {
      let rows = BitmapFont.glyph(character)
      for (row, bits) in rows.enumerated() {
        for column in 0..<5 where bits & (0x10 >> column) != 0 {
          fill(x: cursor + column * scale, y: y + row * scale, width: scale, height: scale, color: color)
        }
      }
      cursor += 6 * scale
    }
    return cursor - x
  }

  /// The width `text` takes at `scale`.
  public static func textWidth(_ text: String, scale: Int = 2) -> Int {
    guard let unifont = Unifont.shared else { return text.count * 6 * scale }
    return text.unicodeScalars.reduce(0) { $0 + (unifont.glyph($1)?.width ?? 0) } * max(1, scale / 2)
  }

  /// `text`, shortened with "..." to fit `width` pixels at `scale`.
  public static func fitting(_ text: String, width: Int, scale: Int = 2) -> String {
    guard textWidth(text, scale: scale) > width else { return text }
    var kept = ""
    for character in text {
      if textWidth(kept + String(character) + "...", scale: scale) > width { break }
      kept.append(character)
    }
    return kept + "..."
  }

  /// `text` broken into lines of at most `width` pixels at `scale`, at `separator`s where
  /// it can (between words otherwise, or anywhere for a long word).
  public static func wrapped(_ text: String, width: Int, separator: String = " ", scale: Int = 2) -> [String] {
    var lines: [String] = []
    var line = ""
    func place(_ piece: String, joiner: String) {
      let candidate = line.isEmpty ? piece : line + joiner + piece
      if textWidth(candidate, scale: scale) <= width || line.isEmpty && textWidth(piece, scale: scale) <= width {
        line = candidate
        return
      }
      if !line.isEmpty { lines.append(line) }
      line = ""
      if textWidth(piece, scale: scale) <= width {
        line = piece
        return
      }
      for character in piece {
        if !line.isEmpty && textWidth(line + String(character), scale: scale) > width {
          lines.append(line)
          line = ""
        }
        line.append(character)
      }
    }
    for (index, part) in text.components(separatedBy: separator).enumerated() {
      if separator != " " && textWidth(part, scale: scale) > width {
        for (wordIndex, word) in part.split(separator: " ").enumerated() {
          place(String(word), joiner: wordIndex == 0 && index > 0 ? separator : " ")
        }
      } else {
        place(part, joiner: separator)
      }
    }
    if !line.isEmpty || lines.isEmpty { lines.append(line) }
    return lines
  }

  /// Writes the canvas to `path` as an 8-bit RGB PNG carrying the text chunk
  /// `Software: ds2-data`: to a temporary file beside it, then renamed over it, so a reader
  /// sees the old picture or the new one. An existing file is replaced only when it is a
  /// PNG that ds2-data wrote (it carries that chunk); anything else is left as it is.
  /// - Throws: `PlotError` naming the file and the reason (libpng's message).
  public func writePNG(to path: String) throws {
    var info = stat()
    if lstat(path, &info) == 0 {
      guard (info.st_mode & S_IFMT) == S_IFREG else {
        let kind = (info.st_mode & S_IFMT) == S_IFDIR ? "a folder" : "not a regular file"
        throw PlotError("\(path) is \(kind); give --output a file name ending in .png (nothing was written)")
      }
      guard Self.isOwnPicture(path) else {
        throw PlotError(
          "\(path) exists and was not written by ds2-data plot; it is left as it is — choose another --output, or remove it")
      }
    }
    let temporary = path + ".tmp-\(getpid())"
    var message = [CChar](repeating: 0, count: 256)
    let written = pixels.withUnsafeBufferPointer { buffer in
      ds2_png_write_rgb(
        temporary, png_uint_32(width), png_uint_32(height), buffer.baseAddress, width * 3, Self.markerKey, Self.markerText,
        &message)
    }
    guard written != 0 else {
      unlink(temporary)
      let reason = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
      throw PlotError("\(path): cannot write the PNG (\(reason))")
    }
    guard rename(temporary, path) == 0 else {
      let reason = String(cString: strerror(errno))
      unlink(temporary)
      throw PlotError("\(path): cannot write the PNG (\(reason))")
    }
  }

  static let markerKey = "Software"
  static let markerText = "ds2-data"

  /// True when `path` is a PNG carrying the `Software: ds2-data` text chunk this tool
  /// writes before the image data (looked for in its first 4 KiB).
  static func isOwnPicture(_ path: String) -> Bool {
    let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    guard let bytes = RegularFile.prefix(path, count: 4096), bytes.starts(with: signature) else { return false }
    let chunk = Array("tEXt\(markerKey)".utf8) + [0] + Array(markerText.utf8)
    guard bytes.count >= chunk.count else { return false }
    return (0...(bytes.count - chunk.count)).contains { bytes[$0..<($0 + chunk.count)].elementsEqual(chunk) }
  }
}

/// A picture that cannot be made: names the file or record and the reason.
public struct PlotError: Error, CustomStringConvertible {
  public let message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// GNU Unifont's glyphs as Debian's `unifont` package installs them
/// (`/usr/share/unifont/unifont.hex`: a line `XXXX:<hex>` per code point, 16 rows of 8 or
/// 16 bits), read once, when first drawn.
final class Unifont: Sendable {
  struct Glyph {
    var width: Int
    var rows: [UInt16]
  }

  static let path = "/usr/share/unifont/unifont.hex"
  static let shared: Unifont? = Unifont(path: path)

  private let glyphs: [UInt32: Glyph]

  init?(path: String) {
    guard let bytes = try? RegularFile.read(path, maxBytes: 64 << 20) else { return nil }
    var glyphs: [UInt32: Glyph] = [:]
    glyphs.reserveCapacity(60_000)
    for line in bytes.split(separator: UInt8(ascii: "\n")) {
      guard let colon = line.firstIndex(of: UInt8(ascii: ":")), let code = UInt32(String(decoding: line[line.startIndex..<colon], as: UTF8.self), radix: 16)
      else { continue }
      let hex = line[(colon + 1)...].filter { $0 != UInt8(ascii: "\r") }
      let width = hex.count == 32 ? 8 : hex.count == 64 ? 16 : 0
      guard width > 0 else { continue }
      let digits = width / 4
      var rows: [UInt16] = []
      var index = hex.startIndex
      for _ in 0..<16 {
        let end = hex.index(index, offsetBy: digits)
        guard let row = UInt16(String(decoding: hex[index..<end], as: UTF8.self), radix: 16) else { break }
        rows.append(row)
        index = end
      }
      if rows.count == 16 { glyphs[code] = Glyph(width: width, rows: rows) }
    }
    guard glyphs[UInt32(UInt8(ascii: "A"))] != nil else { return nil }
    self.glyphs = glyphs
  }

  /// The glyph of `scalar`, or of U+FFFD when the font has none; nil for control characters.
  func glyph(_ scalar: Unicode.Scalar) -> Glyph? {
    if scalar.value < 0x20 || (0x7F..<0xA0).contains(scalar.value) { return nil }
    return glyphs[scalar.value] ?? glyphs[0xFFFD] ?? glyphs[UInt32(UInt8(ascii: "?"))]
  }
}

/// A 5×7 bitmap font of ASCII digits, letters (lowercase drawn as capitals) and common
/// punctuation; each glyph is seven rows of five bits, left to right from bit 4.
enum BitmapFont {
  static func glyph(_ character: Character) -> [UInt8] {
    let key = character.isLowercase ? Character(character.uppercased()) : character
    return glyphs[key] ?? glyphs["?"]!
  }

  static let glyphs: [Character: [UInt8]] = [
    " ": [0, 0, 0, 0, 0, 0, 0],
    "0": [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E], "1": [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
    "2": [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F], "3": [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
    "4": [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02], "5": [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
    "6": [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E], "7": [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
    "8": [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E], "9": [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
    "A": [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11], "B": [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
    "C": [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E], "D": [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
    "E": [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F], "F": [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
    "G": [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F], "H": [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
    "I": [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], "J": [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
    "K": [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11], "L": [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
    "M": [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11], "N": [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
    "O": [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], "P": [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
    "Q": [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D], "R": [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
    "S": [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E], "T": [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
    "U": [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], "V": [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
    "W": [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A], "X": [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
    "Y": [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04], "Z": [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
    ".": [0, 0, 0, 0, 0, 0x0C, 0x0C], ",": [0, 0, 0, 0, 0x0C, 0x04, 0x08], ":": [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
    "-": [0, 0, 0, 0x1F, 0, 0, 0], "–": [0, 0, 0, 0x1F, 0, 0, 0], "+": [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
    "%": [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03], "(": [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
    ")": [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08], "/": [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
    "'": [0x0C, 0x04, 0x08, 0, 0, 0, 0], "_": [0, 0, 0, 0, 0, 0, 0x1F], "=": [0, 0, 0x1F, 0, 0x1F, 0, 0],
    "?": [0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04], "!": [0x04, 0x04, 0x04, 0x04, 0x04, 0, 0x04],
    "[": [0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E], "]": [0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E],
    "<": [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02], ">": [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08],
    "#": [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A], "*": [0, 0x04, 0x15, 0x0E, 0x15, 0x04, 0],
    "|": [0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04], "×": [0, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0],
    "\"": [0x0A, 0x0A, 0, 0, 0, 0, 0], "&": [0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D],
  ]
}

extension Canvas {
  /// Reads an 8-bit RGB (or convertible) PNG with libpng, for checking pictures.
  /// - Throws: `PlotError` naming the file and libpng's message.
  public static func readPNG(_ path: String) throws -> Canvas {
    var image = png_image()
    image.version = ds2_png_image_version()
    func failure(_ call: String) -> PlotError {
      let message = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
      png_image_free(&image)
      return PlotError("\(path): \(call): \(message)")
    }
    guard png_image_begin_read_from_file(&image, path) != 0 else { throw failure("png_image_begin_read_from_file") }
    image.format = ds2_png_format_rgb()
    let (width, height) = (Int(image.width), Int(image.height))
    guard width > 0, height > 0, width <= 16384, height <= 16384 else {
      png_image_free(&image)
      throw PlotError("\(path): \(width)×\(height) pixels is not a picture this reads")
    }
    var canvas = Canvas(width: width, height: height)
    let done = canvas.pixels.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, png_int_32(width * 3), nil) }
    guard done != 0 else { throw failure("png_image_finish_read") }
    return canvas
  }

  /// The number of distinct colors (a picture's variety, for tests).
  public var distinctColors: Int {
    var seen = Set<UInt32>()
    for index in stride(from: 0, to: pixels.count, by: 3) {
      seen.insert(UInt32(pixels[index]) << 16 | UInt32(pixels[index + 1]) << 8 | UInt32(pixels[index + 2]))
    }
    return seen.count
  }
}
