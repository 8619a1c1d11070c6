import Audio
import DS2Core
import Foundation

/// One usable noise file.
public struct NoiseFile: Sendable, Codable, Equatable {
  /// Path relative to the bank's root.
  public var path: String
  /// MUSAN subset (`noise`, `music`, `speech`), or `noise` for a plain folder.
  public var subset: String
  /// Duration in seconds.
  public var durationSeconds: Double
}

/// An indexed folder of noise audio (MUSAN or any folder of sound files).
///
/// Indexing decodes each file once (all channels averaged) and rejects, with a named
/// `ItemError`, files that are unreadable, empty, contain NaN/infinity, or are digital
/// silence — such noise could only produce NaN or no noise at all when mixed at an SNR.
/// Files are listed in path order, so draws by index are reproducible.
public struct NoiseBank: Sendable {
  public let root: String
  public let files: [NoiseFile]
  public let rejections: [ItemError]

  static let audioExtensions: Set<String> = ["wav", "flac", "ogg", "sph", "mp3", "aif", "aiff", "au", "opus", "w64", "caf"]

  /// Indexes `root`, keeping only `subsets` of a MUSAN-shaped folder (one holding
  /// `noise/`, `music/` or `speech/`, directly or under `musan/`).
  /// - Throws: `ConfigurationError` when `root` does not exist.
  /// - Parameter role: what the folder is, for that error (`noise bank`, or the
  ///   `impulse responses` folder).
  public static func index(root: String, subsets: [String], pool: WorkerPool = .serial, role: String = "noise bank") throws -> NoiseBank {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
      throw ConfigurationError("\(role) \(root) does not exist or is not a directory" + relativePathNote(root))
    }
    let fileManager = FileManager.default
    var base = root
    if fileManager.fileExists(atPath: root + "/musan") { base = root + "/musan" }
    let musanShaped = ["noise", "music", "speech"].contains { fileManager.fileExists(atPath: base + "/" + $0) }
    var candidates: [(relative: String, subset: String)] = []
    let enumerator = fileManager.enumerator(atPath: root)
    while let relative = enumerator?.nextObject() as? String {
      let ext = (relative as NSString).pathExtension.lowercased()
      guard audioExtensions.contains(ext) else { continue }
      var subset = "noise"
      if musanShaped {
        let underBase = base == root ? relative : String(relative.dropFirst("musan/".count))
        guard base == root || relative.hasPrefix("musan/") else { continue }
        subset = String(underBase.split(separator: "/").first ?? "")
      }
      if subsets.contains(subset) { candidates.append((relative, subset)) }
    }
    candidates.sort { utf8Precedes($0.relative, $1.relative) }
    let results = try pool.map(candidates.count) { [candidates] i -> Result<NoiseFile, ItemError> in
      let candidate = candidates[i]
      let path = root + "/" + candidate.relative
      do {
        let waveform = try AudioDecoder.decode(path: path, rule: .average)
        if waveform.meanPower == 0 {
          return .failure(ItemError(.silentAudio, file: path, message: "noise file is digital silence (zero power)"))
        }
        return .success(NoiseFile(path: candidate.relative, subset: candidate.subset, durationSeconds: waveform.durationSeconds))
      } catch let error as ItemError {
        return .failure(error)
      } catch {
        return .failure(ItemError(.unreadableAudio, file: path, message: "\(error)"))
      }
    }
    var files: [NoiseFile] = []
    var rejections: [ItemError] = []
    for result in results {
      switch result {
      case .success(let file): files.append(file)
      case .failure(let error): rejections.append(error)
      }
    }
    return NoiseBank(root: root, files: files, rejections: rejections)
  }

  init(root: String, files: [NoiseFile], rejections: [ItemError]) {
    self.root = root
    self.files = files
    self.rejections = rejections
  }

  /// Files of one subset (indices into `files`).
  public func indices(subset: String) -> [Int] { files.indices.filter { files[$0].subset == subset } }
  public func indices(subsets: [String]) -> [Int] { files.indices.filter { subsets.contains(files[$0].subset) } }

  /// `count` samples of noise file `index` at `sampleRateHertz`, starting `offsetSeconds`
  /// in and looping from the start when the file is shorter.
  /// - Throws: `ItemError` when the file cannot be read now.
  public func segment(
    _ index: Int, offsetSeconds: Double, count: Int, sampleRateHertz: Int, quality: ResampleQuality = .sincMedium
  ) throws -> [Float] {
    let file = files[index]
    let path = root + "/" + file.path
    let wantedSeconds = Double(count) / Double(sampleRateHertz)
    var noise: [Float]
    if offsetSeconds + wantedSeconds + 0.05 <= file.durationSeconds {
      // Read just the segment (with a little margin for the resampler).
      let waveform = try AudioDecoder.decode(
        path: path, rule: .average, startSeconds: offsetSeconds, durationSeconds: wantedSeconds + 0.02)
      noise = try Resampler.resample(waveform, to: sampleRateHertz, quality: quality, file: path).samples
    } else {
      // Short file or segment past the end: loop the whole file from the offset.
      let whole = try Resampler.resample(AudioDecoder.decode(path: path, rule: .average), to: sampleRateHertz, quality: quality, file: path).samples
      guard !whole.isEmpty else { throw ItemError(.emptyAudio, file: path, message: "noise file resamples to nothing") }
      let start = Int(offsetSeconds * Double(sampleRateHertz)) % whole.count
      noise = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
        for i in 0..<count { buffer[i] = whole[(start + i) % whole.count] }
        initialized = count
      }
    }
    if noise.count < count { noise += [Float](repeating: 0, count: count - noise.count) }
    if noise.count > count { noise.removeLast(noise.count - count) }
    return noise
  }
}

/// Adds noise to a signal at an exact signal-to-noise ratio.
public enum NoiseMixer {
  /// The problem with a mix that cannot be made.
  public struct MixError: Error, CustomStringConvertible, Sendable {
    public var description: String
  }

  /// Returns `signal + g·noise` with `g` chosen so that
  /// `10·log10(mean(signal²) / mean((g·noise)²)) = snrDecibels`, powers measured over the
  /// utterance (the noise segment has the signal's length).
  /// - Throws: `MixError` when the noise segment or the signal has zero power (an SNR is
  ///   then undefined: nothing is divided by zero).
  public static func mix(_ signal: [Float], noise: [Float], snrDecibels: Double) throws -> [Float] {
    precondition(signal.count == noise.count, "noise must be cut to the signal's length")
    let signalPower = meanPower(signal)
    let noisePower = meanPower(noise)
    guard noisePower > 0, noisePower.isFinite else {
      throw MixError(description: "the noise segment has zero power; an SNR cannot be set")
    }
    guard signalPower > 0 else { throw MixError(description: "the speech is digital silence; an SNR cannot be set") }
    let gain = Float((signalPower / (noisePower * pow(10, snrDecibels / 10))).squareRoot())
    var mixed = signal
    mixed.withUnsafeMutableBufferPointer { out in
      noise.withUnsafeBufferPointer { n in
        for i in 0..<out.count { out[i] += gain * n[i] }
      }
    }
    return mixed
  }

  /// The largest |x| (0 for an empty array), 8 samples at a time: a scalar `max` loop
  /// does not vectorize, and this scan runs over every augmented copy.
  public static func peakMagnitude(_ x: [Float]) -> Float {
    x.withUnsafeBufferPointer { p in
      var high = SIMD8<Float>(repeating: 0)
      var low = SIMD8<Float>(repeating: 0)
      let blocks = p.count / 8
      let raw = UnsafeRawPointer(p.baseAddress)
      for b in 0..<blocks {
        let v = raw!.loadUnaligned(fromByteOffset: b &* 32, as: SIMD8<Float>.self)
        high = high.replacing(with: v, where: v .> high)
        low = low.replacing(with: v, where: v .< low)
      }
      var peak = max(high.max(), -low.min())
      for i in (blocks * 8)..<p.count { peak = max(peak, abs(p[i])) }
      return peak
    }
  }

  /// Mean of squares in Double.
  public static func meanPower(_ x: [Float]) -> Double {
    guard !x.isEmpty else { return 0 }
    var sum = SIMD8<Double>()
    var tail = 0.0
    x.withUnsafeBufferPointer { p in
      let blocks = p.count / 8
      for b in 0..<blocks {
        var v = SIMD8<Double>()
        for j in 0..<8 { v[j] = Double(p[b * 8 + j]) }
        sum += v * v
      }
      for i in (blocks * 8)..<p.count { tail += Double(p[i]) * Double(p[i]) }
    }
    return (sum.sum() + tail) / Double(x.count)
  }
}
