/// Range checks for configuration values (recipes, model YAML, command-line flags).
///
/// Each check throws a `ConfigurationError` whose message starts with the field, then the
/// value and what is allowed: `windowSeconds: 1000000000 is out of range (0.001 … 1 s)`.
/// A stage's `validate()` names its own fields; the caller puts the section in front with
/// `validatingSection` (`features.windowSeconds: …`).
public enum ConfigurationCheck {
  /// `value` is finite and within `range`.
  public static func value(_ value: Double, in range: ClosedRange<Double>, _ field: String, unit: String = "") throws {
    let allowed = "\(format(range.lowerBound)) … \(format(range.upperBound))\(unit.isEmpty ? "" : " " + unit)"
    try require(value, range.contains(value), field, allowed: allowed)
  }

  /// `value` is finite, above `lower` (exclusive) and at most `upper`.
  public static func value(_ value: Double, above lower: Double, atMost upper: Double, _ field: String, unit: String = "") throws {
    let allowed = "> \(format(lower)) … \(format(upper))\(unit.isEmpty ? "" : " " + unit)"
    try require(value, value > lower && value <= upper, field, allowed: allowed)
  }

  /// `value` is finite, at least `range.lowerBound` and below `range.upperBound`.
  public static func value(_ value: Double, in range: Range<Double>, _ field: String, unit: String = "") throws {
    let allowed = "\(format(range.lowerBound)) … < \(format(range.upperBound))\(unit.isEmpty ? "" : " " + unit)"
    try require(value, range.contains(value), field, allowed: allowed)
  }

  /// `value` is within `range`; `allowed` replaces the range in the message (e.g. `1 MiB … 1 TiB`).
  public static func value(_ value: Int, in range: ClosedRange<Int>, _ field: String, unit: String = "", allowed: String? = nil) throws {
    guard !range.contains(value) else { return }
    let text = allowed ?? "\(range.lowerBound) … \(range.upperBound)\(unit.isEmpty ? "" : " " + unit)"
    throw ConfigurationError("\(field): \(value) is out of range (\(text))")
  }

  private static func require(_ value: Double, _ inRange: Bool, _ field: String, allowed: String) throws {
    guard value.isFinite else { throw ConfigurationError("\(field): \(format(value)) is not a finite number (\(allowed))") }
    guard inRange else { throw ConfigurationError("\(field): \(format(value)) is out of range (\(allowed))") }
  }

  /// `0.02` → `0.02`, `16000.0` → `16000`, `1e15` → `1e+15`, NaN → `nan`.
  public static func format(_ value: Double) -> String {
    if value.isNaN { return "nan" }
    if value.isInfinite { return value < 0 ? "-inf" : "inf" }
    let text = "\(value)"
    return text.hasSuffix(".0") ? String(text.dropLast(2)) : text
  }
}

/// Threads a run may be given: 0 (one per core) to 1,024. More than the cores gain
/// nothing, and each thread holds its own buffers.
public let threadCountRange = 0...1_024
/// `threadCountRange` as messages give it.
public let threadCountAllowed = "\(threadCountRange.lowerBound) … \(threadCountRange.upperBound); 0 = one per core"

extension ConfigurationError {
  /// The error with `section` put in front of the field path its message starts with:
  /// `hidden: …` in section `model` → `model.hidden: …`.
  public func inSection(_ section: String) -> ConfigurationError { ConfigurationError(section + "." + message) }
}

/// Runs `body`; a `ConfigurationError` it throws gets `section.` put in front of its
/// field path (see `ConfigurationError.inSection`).
public func validatingSection<T>(_ section: String, _ body: () throws -> T) throws -> T {
  do { return try body() } catch let error as ConfigurationError { throw error.inSection(section) }
}
