import Audio
import DS2Core
import Features
import Foundation

/// What was done to one augmented copy — decided before any audio is read, from
/// `(seed, source id, copy index)` only, and stored with the record as provenance.
public struct AugmentationPlan: Sendable, Codable, Equatable {
  public struct NoiseChoice: Sendable, Codable, Equatable {
    /// Noise file, relative to the bank root.
    public var file: String
    public var offsetSeconds: Double
  }

  /// The id of the utterance this copy is made from.
  public var source: String
  public var copy: Int
  public var speed: Double
  /// Additive noise (one file) and its SNR, if any.
  public var noise: NoiseChoice?
  public var snrDecibels: Double?
  /// Babble talkers (summed at equal power) and their SNR, if any.
  public var babble: [NoiseChoice]?
  public var babbleSnrDecibels: Double?
  public var gainDecibels: Double?
  /// Impulse response file, relative to the folder.
  public var impulseResponse: String?
  /// Set when the result had to be scaled down to stay within full scale: the factor.
  public var clippingScale: Double?

  /// True when the copy is the source unchanged.
  public var isIdentity: Bool {
    AugmentConfig.label(speed) == "1.0" && noise == nil && babble == nil && gainDecibels == nil && impulseResponse == nil
  }
}

/// Draws plans and applies them. Immutable after init and shared by all workers; the
/// FFT convolver is per worker (`makeScratch`).
public final class Augmenter: Sendable {
  public let config: AugmentConfig
  public let sampleRateHertz: Int
  public let seed: UInt64
  public let bank: NoiseBank?
  public let impulseResponseRoot: String?
  public let impulseResponses: [String]
  /// Impulse-response files rejected when the folder was indexed (unreadable, empty, …).
  public let impulseResponseRejections: [ItemError]
  private let noiseIndices: [Int]
  private let speechIndices: [Int]
  private let perturbers: [String: SpeedPerturber]

  /// Indexes the noise bank and impulse-response folder named in `config`.
  /// - Throws: `ConfigurationError` for a missing folder, or one without usable files.
  public init(config: AugmentConfig, sampleRateHertz: Int, seed: UInt64, pool: WorkerPool = .serial) throws {
    try validatingSection("augment") { try config.validate() }
    self.config = config
    self.sampleRateHertz = sampleRateHertz
    self.seed = seed
    if let root = config.noise.bank, config.noise.probability > 0 || config.noise.babbleProbability > 0 {
      let subsets = config.noise.subsets + (config.noise.babbleProbability > 0 ? ["speech"] : [])
      let bank = try NoiseBank.index(root: root, subsets: Array(Set(subsets)).sorted(), pool: pool)
      self.bank = bank
      noiseIndices = bank.indices(subsets: config.noise.subsets)
      speechIndices = bank.indices(subset: "speech")
      if config.noise.probability > 0 && noiseIndices.isEmpty {
        throw ConfigurationError(
          "noise bank \(root) has no usable files in subsets \(config.noise.subsets.joined(separator: ", "))"
            + " (\(bank.rejections.count) rejected)")
      }
      if config.noise.babbleProbability > 0 && speechIndices.count < config.noise.babbleSpeakers[0] {
        throw ConfigurationError("noise bank \(root) has \(speechIndices.count) speech files; babble needs \(config.noise.babbleSpeakers[0])")
      }
    } else {
      bank = nil
      noiseIndices = []
      speechIndices = []
    }
    if let folder = config.reverb.impulseResponses, config.reverb.probability > 0 {
      let rirBank = try NoiseBank.index(root: folder, subsets: ["noise"], pool: pool, role: "augment.reverb.impulseResponses folder")
      impulseResponseRoot = folder
      impulseResponses = rirBank.files.map(\.path)
      impulseResponseRejections = rirBank.rejections
      if impulseResponses.isEmpty { throw ConfigurationError("impulse-response folder \(folder) has no usable audio files") }
    } else {
      impulseResponseRoot = nil
      impulseResponses = []
      impulseResponseRejections = []
    }
    var perturbers: [String: SpeedPerturber] = [:]
    for factor in config.speedFactors where AugmentConfig.label(factor) != "1.0" {
      perturbers[AugmentConfig.label(factor)] = SpeedPerturber(factor: factor)
    }
    self.perturbers = perturbers
  }

  /// Samples after speed perturbation of `samples` samples.
  public func outputCount(samples: Int, factor: Double) -> Int {
    perturbers[AugmentConfig.label(factor)]?.outputCount(inputCount: samples) ?? samples
  }

  /// The plan of copy `copy` (speed `factor`) of `source`, an utterance of `samples`
  /// samples after perturbation. Random choices come from `(seed, source, copy)` only.
  public func plan(source: String, copy: Int, factor: Double, samples: Int) -> AugmentationPlan {
    var generator = SeededGenerator(seed: seed, id: source, copy: copy)
    var plan = AugmentationPlan(source: source, copy: copy, speed: factor)
    let seconds = Double(samples) / Double(sampleRateHertz)
    func choose(from indices: [Int]) -> AugmentationPlan.NoiseChoice {
      let index = indices[Int(generator.next() % UInt64(indices.count))]
      let file = bank!.files[index]
      let room = file.durationSeconds - seconds
      // Longer noise: any offset that fits; shorter: any offset, looped.
      let span = room > 0 ? room : file.durationSeconds
      let offset = (generator.nextUnitDouble() * span * 1000).rounded(.down) / 1000
      return .init(file: file.path, offsetSeconds: offset)
    }
    if config.noise.probability > 0, generator.nextUnitDouble() < config.noise.probability {
      plan.noise = choose(from: noiseIndices)
      plan.snrDecibels = (config.noise.snrDecibels.draw(&generator) * 100).rounded() / 100
    }
    if config.noise.babbleProbability > 0, generator.nextUnitDouble() < config.noise.babbleProbability {
      let range = config.noise.babbleSpeakers
      let talkers = range[0] + Int(generator.next() % UInt64(range[1] - range[0] + 1))
      plan.babble = (0..<talkers).map { _ in choose(from: speechIndices) }
      plan.babbleSnrDecibels = (config.noise.babbleSnrDecibels.draw(&generator) * 100).rounded() / 100
    }
    if config.volume.probability > 0, generator.nextUnitDouble() < config.volume.probability {
      plan.gainDecibels = (config.volume.gainDecibels.draw(&generator) * 100).rounded() / 100
    }
    if config.reverb.probability > 0, generator.nextUnitDouble() < config.reverb.probability {
      plan.impulseResponse = impulseResponses[Int(generator.next() % UInt64(impulseResponses.count))]
    }
    return plan
  }

  /// Per-worker scratch state (an FFT convolver).
  public final class Scratch {
    let convolver = FFTConvolver()
    public init() {}
  }

  /// Applies `plan` to `waveform` (at `sampleRateHertz`): speed → reverberation → noise →
  /// babble → gain → clipping rule (if the peak exceeds full scale, the whole signal is
  /// scaled to a 0.999 peak, which keeps every SNR). Returns the audio and the plan with
  /// `clippingScale` filled in.
  /// - Throws: `ItemError` naming the noise or impulse-response file that failed, or the
  ///   utterance (`silent_audio`) when an SNR is undefined.
  public func apply(_ plan: AugmentationPlan, to waveform: Waveform, scratch: Scratch, file: String) throws -> (Waveform, AugmentationPlan) {
    precondition(waveform.sampleRateHertz == sampleRateHertz, "augment at the dataset rate")
    var plan = plan
    var samples = waveform.samples
    if let perturber = perturbers[AugmentConfig.label(plan.speed)] {
      samples = perturber.apply(samples)
    }
    if let name = plan.impulseResponse, let root = impulseResponseRoot {
      let path = root + "/" + name
      var response = try Resampler.resample(AudioDecoder.decode(path: path, rule: .average), to: sampleRateHertz, file: path).samples
      // Start at the direct path (the peak), keep the input's power.
      if let peak = response.indices.max(by: { abs(response[$0]) < abs(response[$1]) }) { response.removeFirst(peak) }
      let before = NoiseMixer.meanPower(samples)
      samples = scratch.convolver.convolve(samples, with: response)
      let after = NoiseMixer.meanPower(samples)
      if after > 0 && before > 0 {
        let scale = Float((before / after).squareRoot())
        for i in samples.indices { samples[i] *= scale }
      }
    }
    if let choice = plan.noise, let snr = plan.snrDecibels, let bank {
      let index = bank.files.firstIndex { $0.path == choice.file }!
      let noise = try bank.segment(index, offsetSeconds: choice.offsetSeconds, count: samples.count, sampleRateHertz: sampleRateHertz)
      samples = try mix(samples, noise, snr, noiseFile: bank.root + "/" + choice.file, file: file)
    }
    if let talkers = plan.babble, let snr = plan.babbleSnrDecibels, let bank {
      var babble = [Float](repeating: 0, count: samples.count)
      for talker in talkers {
        let index = bank.files.firstIndex { $0.path == talker.file }!
        let speech = try bank.segment(index, offsetSeconds: talker.offsetSeconds, count: samples.count, sampleRateHertz: sampleRateHertz)
        let power = NoiseMixer.meanPower(speech)
        guard power > 0 else { continue }
        let scale = Float(1 / power.squareRoot())
        for i in babble.indices { babble[i] += speech[i] * scale }
      }
      samples = try mix(samples, babble, snr, noiseFile: "babble of \(talkers.count) talkers", file: file)
    }
    if let gain = plan.gainDecibels {
      let scale = Float(pow(10, gain / 20))
      for i in samples.indices { samples[i] *= scale }
    }
    let peak = NoiseMixer.peakMagnitude(samples)
    if peak > 1 {
      let scale = 0.999 / peak
      for i in samples.indices { samples[i] *= scale }
      plan.clippingScale = (Double(scale) * 1e6).rounded() / 1e6
    }
    return (Waveform(samples: samples, sampleRateHertz: sampleRateHertz), plan)
  }

  private func mix(_ signal: [Float], _ noise: [Float], _ snr: Double, noiseFile: String, file: String) throws -> [Float] {
    do {
      return try NoiseMixer.mix(signal, noise: noise, snrDecibels: snr)
    } catch let error as NoiseMixer.MixError {
      throw ItemError(.silentAudio, file: file, message: "adding \(noiseFile): \(error)")
    }
  }
}
