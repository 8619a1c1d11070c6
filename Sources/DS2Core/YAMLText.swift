#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Reads YAML configuration files (recipes, model files) for a YAML parser, within limits
/// checked before the parser sees the text: at most `maximumBytes` of UTF-8, nesting at
/// most `maximumDepth` deep as a reader counts it (outside quotes and comments), and a
/// safe upper bound of the parser's depth at most `maximumDepthBound` (which no quoting
/// trick can fool). The parser recurses once per nesting level, so deeper text would
/// overflow the stack instead of failing with a message.
public enum YAMLText {
  /// Largest file read: 1 MiB (a recipe is a few KB).
  public static let maximumBytes = 1 << 20
  /// Deepest nesting accepted (a recipe nests 3 levels).
  public static let maximumDepth = 64
  /// Largest safe depth bound accepted (`firstLine(depthBoundAbove:in:)`): the parser's
  /// depth then stays below about 3 × this, far from the ~5,000 levels that overflow an
  /// 8 MiB stack (and about the ~300 of a 512 KiB one).
  public static let maximumDepthBound = 96

  /// The text of the YAML file at `path`, checked against the limits.
  /// - Parameter kind: what the file is, for messages (`recipe`, `model`).
  /// - Throws: `ConfigurationError` "`kind` `path`: problem" when the file cannot be read,
  ///   is larger than `maximumBytes`, is not UTF-8, or nests too deeply (either check).
  public static func read(path: String, kind: String) throws -> String {
    func failure(_ problem: String) -> ConfigurationError { ConfigurationError("\(kind) \(path): \(problem)") }
    // Only a regular file is opened (without blocking: a FIFO is refused, not waited on).
    let bytes: [UInt8]
    do {
      bytes = try RegularFile.read(path, maxBytes: maximumBytes)
    } catch let error as RegularFileError {
      throw failure(
        error.reason.hasSuffix("-byte limit") ? "larger than \(maximumBytes >> 20) MiB; a \(kind) file is a few KB" : error.reason)
    }
    let text = String(decoding: bytes, as: UTF8.self)
    // Decoding replaces invalid sequences, so valid UTF-8 is exactly what round-trips.
    guard text.utf8.elementsEqual(bytes) else { throw failure("not UTF-8 text") }
    if let line = firstLine(nestedDeeperThan: maximumDepth, in: bytes) {
      throw failure("line \(line) nests deeper than \(maximumDepth) levels (brackets, indentation and aliases counted)")
    }
    if let line = firstLine(depthBoundAbove: maximumDepthBound, in: bytes) {
      throw failure(
        "line \(line) may nest deeper than \(maximumDepthBound) levels (brackets holding quoted text or comments "
          + "count as open)")
    }
    return text
  }

  /// The first line (1-based) on which `bytes` nest deeper than `limit`, or nil: the
  /// nesting a reader sees, which may miss structure hidden by quotes in odd places
  /// (`firstLine(depthBoundAbove:in:)` is the safe bound).
  ///
  /// Depth counts, at each point, the block levels (distinct indentations of the enclosing
  /// lines, plus each `- ` / `? ` entry that opens a line) and the open flow collections
  /// (`[` and `{` outside quoted scalars and comments); an alias (`*name`) adds the
  /// deepest nesting reached before it, which its anchored node cannot exceed. It may
  /// overstate the parser's depth (brackets inside plain scalars, indented block-scalar
  /// text), never understate it by more than a factor of two: a quote opens a quoted
  /// scalar only where a scalar can start, and ends at the line's end at the latest, so no
  /// quote hides structure.
  public static func firstLine(nestedDeeperThan limit: Int, in bytes: [UInt8]) -> Int? {
    let (space, tab, newline, carriageReturn): (UInt8, UInt8, UInt8, UInt8) = (0x20, 0x09, 0x0A, 0x0D)
    func isBlank(_ index: Int) -> Bool {
      index >= bytes.count || bytes[index] == space || bytes[index] == tab || bytes[index] == newline
        || bytes[index] == carriageReturn
    }
    var flowDepth = 0
    var indentations: [Int] = []
    var deepest = 0
    /// Notes a depth reached; false when it is over the limit.
    func reach(_ depth: Int) -> Bool {
      deepest = max(deepest, depth)
      return depth <= limit
    }
    var line = 0
    var index = 0
    // Whether a scalar can start here (so a quote here opens a quoted scalar). Kept across
    // line breaks inside flow collections, where a line may continue a plain scalar.
    var atScalarStart = true
    while index < bytes.count {
      line += 1
      var column = 0
      while index < bytes.count && bytes[index] == space {
        index += 1
        column += 1
      }
      let isEmpty = index >= bytes.count || [newline, carriageReturn, UInt8(ascii: "#")].contains(bytes[index])
      var lineDepth = indentations.count
      if flowDepth == 0 && !isEmpty {
        while let last = indentations.last, last > column { indentations.removeLast() }
        if indentations.last != column { indentations.append(column) }
        lineDepth = indentations.count
        atScalarStart = true
      }
      guard reach(lineDepth + flowDepth) else { return line }
      var quote: UInt8? = nil
      var previous: UInt8? = nil  // nil at the line's start
      while index < bytes.count && bytes[index] != newline && bytes[index] != carriageReturn {
        let byte = bytes[index]
        let afterBlank = previous == nil || previous == space || previous == tab
        defer {
          previous = byte
          index += 1
        }
        if let open = quote {
          if byte == UInt8(ascii: "\\") && open == UInt8(ascii: "\"") && !isBlank(index + 1) {
            index += 1
          } else if byte == open {
            if open == UInt8(ascii: "'") && index + 1 < bytes.count && bytes[index + 1] == open {
              index += 1
            } else {
              quote = nil
            }
          }
          continue
        }
        switch byte {
        case space, tab:
          break
        case UInt8(ascii: "#") where afterBlank:
          while index + 1 < bytes.count && bytes[index + 1] != newline && bytes[index + 1] != carriageReturn { index += 1 }
        case UInt8(ascii: "["), UInt8(ascii: "{"):
          flowDepth += 1
          atScalarStart = true
          guard reach(lineDepth + flowDepth) else { return line }
        case UInt8(ascii: "]"), UInt8(ascii: "}"):
          flowDepth = max(0, flowDepth - 1)
          atScalarStart = false
        case UInt8(ascii: ","):
          atScalarStart = true
        case UInt8(ascii: "'") where atScalarStart, UInt8(ascii: "\"") where atScalarStart:
          quote = byte
          atScalarStart = false
        case UInt8(ascii: ":") where isBlank(index + 1):
          atScalarStart = true
        case UInt8(ascii: "-"), UInt8(ascii: "?"):
          if atScalarStart && isBlank(index + 1) {
            if flowDepth == 0 {
              lineDepth += 1
              guard reach(lineDepth + flowDepth) else { return line }
            }
          } else {
            atScalarStart = false
          }
        case UInt8(ascii: "*") where !isBlank(index + 1):
          // An alias wherever one could be (more places than YAML allows: that can only
          // overstate): as deep as its place plus the deepest node before it.
          if afterBlank || [UInt8(ascii: "["), UInt8(ascii: "{"), UInt8(ascii: ","), UInt8(ascii: ":")].contains(previous!) {
            guard reach(lineDepth + flowDepth + deepest) else { return line }
          }
          atScalarStart = false
        default:
          atScalarStart = false
        }
      }
      // A quote left open ends here (its next lines are then scanned as structure, which
      // can only overstate the depth). The line break itself.
      if quote != nil { atScalarStart = false }
      if index < bytes.count { index += 1 }
    }
    return nil
  }

  /// The first line (1-based) on which an upper bound of the parser's depth exceeds
  /// `limit`, or nil. Unlike `firstLine(nestedDeeperThan:in:)` it assumes nothing about
  /// quotes and comments, so no text can hide structure from it: every `[` and `{` opens,
  /// and a `]` or `}` closes only when no `'`, `"` or `#` lies between it and the last
  /// open one (else it might be quoted or commented out). Block levels are the distinct
  /// indentations of the enclosing lines plus the `- ` / `? ` entries that open a line,
  /// on every line; an alias adds the deepest bound reached before it. The parser's depth
  /// stays below about 3 × the bound (block levels may hold two collections each, and
  /// flow collections keep the block levels they started in).
  public static func firstLine(depthBoundAbove limit: Int, in bytes: [UInt8]) -> Int? {
    let (space, tab, newline, carriageReturn): (UInt8, UInt8, UInt8, UInt8) = (0x20, 0x09, 0x0A, 0x0D)
    func isBlank(_ index: Int) -> Bool {
      index >= bytes.count || bytes[index] == space || bytes[index] == tab || bytes[index] == newline
        || bytes[index] == carriageReturn
    }
    func isLineEnd(_ index: Int) -> Bool { index >= bytes.count || bytes[index] == newline || bytes[index] == carriageReturn }
    /// For each open `[` / `{`: the number of quote and comment characters before it.
    var opens: [Int] = []
    var markers = 0
    var indentations: [Int] = []
    var deepest = 0
    func reach(_ depth: Int) -> Bool {
      deepest = max(deepest, depth)
      return depth <= limit
    }
    var line = 0
    var index = 0
    while index < bytes.count {
      line += 1
      let lineStart = index
      while index < bytes.count && bytes[index] == space { index += 1 }
      let contentStart = index
      if !isLineEnd(index) && bytes[index] != UInt8(ascii: "#") {
        let column = contentStart - lineStart
        while let last = indentations.last, last > column { indentations.removeLast() }
        if indentations.last != column { indentations.append(column) }
      }
      var lineDepth = indentations.count
      // Entries, value indicators and node properties that open the line.
      while !isLineEnd(index) {
        let byte = bytes[index]
        if (byte == UInt8(ascii: "-") || byte == UInt8(ascii: "?") || byte == UInt8(ascii: ":")) && isBlank(index + 1) {
          if byte != UInt8(ascii: ":") { lineDepth += 1 }
          index += 1
        } else if byte == UInt8(ascii: "&") || byte == UInt8(ascii: "!") {
          while !isBlank(index) { index += 1 }
        } else {
          break
        }
        while !isLineEnd(index) && isBlank(index) { index += 1 }
      }
      guard reach(lineDepth + opens.count) else { return line }
      index = contentStart
      while !isLineEnd(index) {
        let byte = bytes[index]
        switch byte {
        case UInt8(ascii: "["), UInt8(ascii: "{"):
          opens.append(markers)
          guard reach(lineDepth + opens.count) else { return line }
        case UInt8(ascii: "]"), UInt8(ascii: "}"):
          if opens.last == markers { opens.removeLast() }
        case UInt8(ascii: "'"), UInt8(ascii: "\""), UInt8(ascii: "#"):
          markers += 1
        case UInt8(ascii: "*") where !isBlank(index + 1):
          let previous: UInt8? = index > contentStart ? bytes[index - 1] : nil
          if previous == nil || [space, tab, UInt8(ascii: "["), UInt8(ascii: "{"), UInt8(ascii: ","), UInt8(ascii: ":")].contains(previous!) {
            guard reach(lineDepth + opens.count + deepest) else { return line }
          }
        default:
          break
        }
        index += 1
      }
      if index < bytes.count { index += 1 }
    }
    return nil
  }
}
