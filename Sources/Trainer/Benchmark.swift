import DS2Core
import Dispatch
import Foundation
import Training

/// Settings of the training-throughput benchmark (`ds2-data train --benchmark`), shaped like
/// the PyTorch peer (`ds2_small.py`): utterances of 2–10 s (uniform), 161 bins, ~14
/// characters per second, sorted by length and cut into batches, batch order shuffled.
public struct BenchmarkOptions {
  public var cell: RecurrentCell = .gru
  public var hidden = 256
  public var layers = 3
  public var convolutionChannels = 32
  public var batchSize = 16
  public var threads = 1
  public var warmupSteps = 3
  public var steps = 12
  public var seed: UInt64 = 1234
  /// Data-parallel: each rank computes its share of every batch (`batchSize` is global).
  public var collective: (any Collective)?

  public init() {}
}

/// What the benchmark measured.
public struct BenchmarkResult: Sendable, Codable {
  public var cell: String
  public var hidden: Int
  public var layers: Int
  public var batch: Int
  public var threads: Int
  public var parameters: Int
  public var steps: Int
  public var msStepMedian: Double
  public var audioSecondsPerSecond: Double
  /// Matrix-product FLOPs per audio second by the peer's count (2 per multiply–add;
  /// conv and output layer over padded frames, recurrent layers over valid frames).
  public var gflopPerAudioSecond: Double
  public var gflops: Double
  public var meanBatchAudioSeconds: Double
  public var paddingOverhead: Double
  public var peakMemoryMiB: Double
  /// Process CPU seconds per wall second over the timed steps (below the thread count when
  /// other processes take the cores).
  public var cpuPerWall: Double
  /// Audio seconds per process CPU second, times the thread count: the throughput the
  /// threads would give on otherwise idle cores.
  public var audioSecondsPerThreadCPUSecond: Double
  public var lossFirst: Double
  public var lossLast: Double
  public var loadAverage: String
  /// The OpenBLAS kernels that ran (`openblas_get_corename`) and how they were chosen.
  public var blasCore: String
  /// The CPU's model name (`/proc/cpuinfo`).
  public var cpuModel: String
  /// Data-parallel: the ranks, and the share of rank 0's step time spent in collectives.
  public var ranks: Int?
  public var communicationShare: Double?

  public var summary: String {
    String(
      format: "%@-%d×%d batch %d, %d thread(s): %.1f audio-s/s (%.1f per thread-CPU-s), %.0f ms/step (median), %.2f GFLOP/audio-s, %.1f GFLOP/s, peak %.0f MiB, CPU/wall %.2f, load %@",
      cell, layers, hidden, batch, threads, audioSecondsPerSecond, audioSecondsPerThreadCPUSecond, msStepMedian,
      gflopPerAudioSecond, gflops, peakMemoryMiB, cpuPerWall, loadAverage)
      + (ranks.map { String(format: "; %d ranks (threads per rank), communication %.1f%% of step time", $0, 100 * (communicationShare ?? 0)) } ?? "")
      + "\n  \(cpuModel); \(blasCore)"
  }
}

/// Times training steps (zero gradients, forward, CTC, backward, clipping, Nesterov SGD) on
/// synthetic batches held in memory.
public func benchmarkTraining(_ options: BenchmarkOptions) throws -> BenchmarkResult {
  let config = ModelConfig(
    inputBins: 161,
    convLayers: [.init(channels: options.convolutionChannels, kernelTime: 11, kernelFrequency: 41, strideTime: 2, strideFrequency: 2)],
    rnnCell: options.cell, rnnLayers: options.layers, rnnHidden: options.hidden, vocabularySize: 29, seed: 0)
  let model = try DS2Model<Float>(config: config, pool: WorkerPool(threads: options.threads))
  let collective = options.collective
  model.collective = collective
  if let collective, options.batchSize < collective.size {
    throw ConfigurationError("--batch-size \(options.batchSize) is smaller than the \(collective.size) ranks")
  }
  var communication = 0.0
  let optimizer = SGD<Float>(learningRate: 3e-4, momentum: 0.9, nesterov: true)
  let batches = SyntheticBatches(count: options.warmupSteps + options.steps, batchSize: options.batchSize, seed: options.seed, config: config)
  var stepSeconds: [Double] = []
  var audio = 0.0
  /// This rank's share of `audio` (all of it in one process), for the per-CPU-second figure.
  var rankAudio = 0.0
  var padded = 0.0
  var flops = 0.0
  var losses: [Double] = []
  var cpu = 0.0
  for index in 0..<(options.warmupSteps + options.steps) {
    let (batch, whole) = batches.batch(index, rank: collective?.rank ?? 0, of: collective?.size ?? 1)
    let cpuBefore = processCPUSeconds()
    let communicationBefore = collective?.communicationSeconds ?? 0
    let started = DispatchTime.now().uptimeNanoseconds
    model.zeroGradients()
    let result = model.computeGradients(
      batch: batch.features, labels: batch.labels, meanOver: collective == nil ? nil : whole.count)
    if let collective { sumGradients(model.parameters, over: collective) }
    clipGradientNorm(model.parameters, maxNorm: 400)
    optimizer.step(model.parameters)
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    let stepCommunication = (collective?.communicationSeconds ?? 0) - communicationBefore
    var loss = [Double(result.losses.filter(\.isFinite).reduce(0, +))]
    if let collective { loss = collective.sum(loss) }
    losses.append(loss[0] / Double(whole.count))
    guard index >= options.warmupSteps else { continue }
    cpu += processCPUSeconds() - cpuBefore
    stepSeconds.append(seconds)
    communication += stepCommunication
    let lengths = whole
    audio += Double(lengths.reduce(0, +)) / 100
    rankAudio += Double(batch.features.lengths.reduce(0, +)) / 100
    padded += Double(lengths.count * lengths.max()!) / 100
    flops += stepFLOPs(config: config, lengths: lengths)
  }
  let total = stepSeconds.reduce(0, +)
  var loadAverage = [Double](repeating: 0, count: 3)
  getloadavg(&loadAverage, 3)
  return BenchmarkResult(
    cell: options.cell.rawValue, hidden: options.hidden, layers: options.layers, batch: options.batchSize,
    threads: options.threads, parameters: model.parameters.reduce(0) { $0 + $1.count }, steps: stepSeconds.count,
    msStepMedian: 1000 * stepSeconds.sorted()[stepSeconds.count / 2], audioSecondsPerSecond: audio / total,
    gflopPerAudioSecond: flops / audio / 1e9, gflops: flops / total / 1e9,
    meanBatchAudioSeconds: audio / Double(stepSeconds.count), paddingOverhead: padded / audio - 1,
    peakMemoryMiB: Double(peakResidentBytes()) / 1_048_576, cpuPerWall: cpu / total,
    audioSecondsPerThreadCPUSecond: rankAudio / cpu * Double(options.threads), lossFirst: losses.first ?? .nan,
    lossLast: losses.last ?? .nan, loadAverage: loadAverage.map { String(format: "%.2f", $0) }.joined(separator: " "),
    blasCore: BLASKernels.summary, cpuModel: cpuModelName(), ranks: collective?.size,
    communicationShare: collective.map { _ in communication / total })
}

/// Matrix-product FLOPs of one training step, counted as `ds2_small.py` counts them.
func stepFLOPs(config: ModelConfig, lengths: [Int]) -> Double {
  let batch = Double(lengths.count)
  let paddedSteps = Double(config.outputLength(inputFrames: lengths.max()!))
  let validFrames = Double(lengths.reduce(0) { $0 + config.outputLength(inputFrames: $1) })
  var total = 0.0
  var input = Double(config.inputBins)
  var bins = config.inputBins
  for (index, layer) in config.convLayers.enumerated() {
    bins = (bins + 2 * layer.paddingFrequency - layer.kernelFrequency) / layer.strideFrequency + 1
    let channelsIn = Double(index == 0 ? 1 : config.convLayers[index - 1].channels)
    let forward = 2 * batch * Double(layer.channels) * Double(bins) * paddedSteps * Double(layer.kernelTime * layer.kernelFrequency) * channelsIn
    total += index == 0 ? 2 * forward : 3 * forward
    input = Double(layer.channels * bins)
  }
  let gates = Double(config.rnnCell.gateCount)
  let hidden = Double(config.rnnHidden)
  for index in 0..<config.rnnLayers {
    let inputs = index == 0 ? input : hidden
    let perFrameDirection = 2 * inputs * gates * hidden + 2 * hidden * gates * hidden
    let passes = index > 0 || !config.convLayers.isEmpty ? 3.0 : 2.0
    total += passes * 2 * perFrameDirection * validFrames
  }
  total += 3 * 2 * hidden * Double(config.vocabularySize) * batch * paddedSteps
  return total
}

/// Batches like the peer's: `count × batchSize` utterances of 2–10 s sorted by length, cut
/// into batches (longest first inside each), batch order shuffled; log-spectrogram-like
/// values normalized per utterance; labels of ~14 random symbols per second, trimmed until
/// CTC can align them. A batch is generated when asked for (as the trainer reads one from
/// the shards), so the benchmark holds one batch of data at a time.
struct SyntheticBatches {
  let config: ModelConfig
  let seed: UInt64
  /// Utterance durations per batch in the order the benchmark visits them, longest first.
  let durations: [[Double]]

  init(count: Int, batchSize: Int, seed: UInt64, config: ModelConfig) {
    self.config = config
    self.seed = seed
    var generator = SeededGenerator(seed: seed)
    let pool = (0..<(count * batchSize)).map { _ in 2 + 8 * generator.nextUnitDouble() }.sorted(by: >)
    var order = Array(0..<count)
    for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(generator.next() % UInt64(i + 1))) }
    durations = order.map { Array(pool[($0 * batchSize)..<(($0 + 1) * batchSize)]) }
  }

  /// Batch `index` of the visiting order: rank `rank`'s share of its utterances (every
  /// `ranks`-th, from the `rank`-th: all of them for one rank), and the frames of every
  /// utterance of the whole batch.
  func batch(_ index: Int, rank: Int = 0, of ranks: Int = 1) -> (LoadedBatch, [Int]) {
    var generator = SeededGenerator(seed: seed, id: "batch", copy: index)
    let bins = config.inputBins
    var utterances: [[Float]] = []
    var labels: [[Int32]] = []
    for seconds in durations[index] {
      let frames = Int((seconds * 100).rounded())
      var values = [Float](repeating: 0, count: frames * bins)
      var sum = 0.0
      var squares = 0.0
      for t in 0..<frames {
        let level = 0.3 + 2.7 * generator.nextUnitDouble()
        for k in 0..<bins {
          let envelope = exp(-4 * Double(k) / Double(bins - 1)) * level
          let chiSquare = -2 * log(1 - generator.nextUnitDouble())
          let value = log1p(envelope * chiSquare * 100)
          values[t * bins + k] = Float(value)
          sum += value
          squares += value * value
        }
      }
      let mean = sum / Double(values.count)
      let deviation = (squares / Double(values.count) - mean * mean).squareRoot() + 1e-5
      for i in values.indices { values[i] = Float((Double(values[i]) - mean) / deviation) }
      utterances.append(values)
      let wanted = max(1, Int((seconds * 14 * (0.7 + 0.6 * generator.nextUnitDouble())).rounded()))
      var label = (0..<wanted).map { _ in Int32(1 + generator.next() % UInt64(config.vocabularySize - 1)) }
      while CTC.minimumFrames(label) > config.outputLength(inputFrames: frames) { label.removeLast() }
      labels.append(label)
    }
    let whole = utterances.map { $0.count / bins }
    let share = Array(stride(from: rank, to: utterances.count, by: ranks))
    let features = FeatureBatch<Float>(bins: bins, utterances: share.map { utterances[$0] })
    let batch = LoadedBatch(
      features: features, labels: share.map { labels[$0] }, transcripts: [], ids: [],
      audioSeconds: Double(features.lengths.reduce(0, +)) / 100, loadSeconds: 0)
    return (batch, whole)
  }
}

/// User + system CPU seconds of the process so far.
func processCPUSeconds() -> Double {
  var usage = rusage()
  getrusage(RUSAGE_SELF.rawValue, &usage)
  return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

/// The CPU's model name from `/proc/cpuinfo` ("unknown CPU" when absent).
func cpuModelName() -> String {
  guard let bytes = try? RegularFile.read("/proc/cpuinfo", maxBytes: 64 << 20) else { return "unknown CPU" }
  for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("model name") {
    if let colon = line.firstIndex(of: ":") { return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
  }
  return "unknown CPU"
}
