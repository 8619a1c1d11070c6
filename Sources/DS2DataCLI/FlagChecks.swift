import ArgumentParser
import DS2Core

/// Runs the range checks in `body` (`ConfigurationCheck`, a config type's `validate`),
/// reporting a failure as a usage error (exit status 64) whose message names the flag.
func checkFlags(_ body: () throws -> Void) throws {
  do { try body() } catch let error as ConfigurationError { throw ValidationError(error.message) }
}
