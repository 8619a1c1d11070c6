import DS2Core
import Foundation
import Shards
import Training

// Tensors are copied to and from files in host byte order, which the format fixes as
// little-endian.
#if !_endian(little)
  #error("checkpoint I/O assumes a little-endian host")
#endif

/// One evaluation of a split after an epoch (or of a checkpoint by `evaluate`).
public struct EvaluationResult: Sendable, Codable, Equatable {
  /// 1-based epoch that had just finished (0 for a standalone evaluation).
  public var epoch: Int
  /// Optimizer steps taken when it ran.
  public var step: Int
  public var split: String
  /// Mean CTC loss per utterance (finite losses only).
  public var loss: Double
  /// Character error rate of greedy decoding.
  public var cer: Double
  /// Word error rate of greedy decoding.
  public var wer: Double
  /// CER and WER of the beam search, when it ran.
  public var beamCER: Double?
  public var beamWER: Double?
  public var utterances: Int
  /// Wall seconds the evaluation took.
  public var seconds: Double
}

/// Where training stands: with the weights and the optimizer state, enough to continue
/// exactly as an uninterrupted run would.
public struct TrainingProgress: Sendable, Codable, Equatable {
  /// 0-based epoch in progress (equal to the epoch count when training is complete).
  public var epoch = 0
  /// Batches of this epoch's order already applied.
  public var batchesDone = 0
  /// Optimizer steps taken so far.
  public var step = 0
  /// Learning rate of the current epoch.
  public var learningRate: Double
  /// Lowest dev CER so far and the epoch (1-based) that reached it.
  public var bestCER: Double?
  public var bestEpoch: Int?
  /// Every per-epoch evaluation so far.
  public var evaluations: [EvaluationResult] = []
  /// Wall seconds spent training so far (all sessions).
  public var trainingSeconds = 0.0

  public init(learningRate: Double) { self.learningRate = learningRate }

  /// What is impossible about these values, or nil: counts below 0, a learning rate that is
  /// not a positive finite number, a best CER that is negative or not a number.
  var problem: String? {
    if epoch < 0 || batchesDone < 0 || step < 0 { return "has a negative count (epoch \(epoch), batch \(batchesDone), step \(step))" }
    if !(learningRate.isFinite && learningRate > 0) { return "has the learning rate \(learningRate)" }
    if !(trainingSeconds.isFinite && trainingSeconds >= 0) { return "has \(trainingSeconds) training seconds" }
    if let bestCER, bestCER.isNaN || bestCER < 0 { return "has the best CER \(bestCER)" }
    if let bestEpoch, bestEpoch < 0 { return "has the best epoch \(bestEpoch)" }
    return nil
  }
}

/// A checkpoint file: everything to continue training or to transcribe raw audio.
///
/// Layout (docs/TRAINING.md): the 8 bytes `DS2CKPT1`, a little-endian UInt64 header length
/// `H`, `H` bytes of JSON (`Checkpoint.Header`), zero padding to a multiple of 4, then the
/// tensors as little-endian float32, each at the element offset its header entry gives.
public struct Checkpoint {
  public static let magic = Array("DS2CKPT1".utf8)

  /// Name, shape and element offset of one stored tensor.
  public struct TensorEntry: Sendable, Codable, Equatable {
    public var name: String
    public var shape: [Int]
    public var offset: Int
  }

  /// The JSON part.
  public struct Header: Sendable, Codable {
    public var format = "ds2-data.checkpoint"
    public var formatVersion = 1
    public var toolVersion: String
    public var recipe: ModelRecipe
    public var model: ModelConfig
    /// Dataset directories trained on (the first one's feature parameters and
    /// normalization are the ones transcription uses).
    public var datasets: [String]
    public var trainSplits: [String]
    public var evaluationSplit: String?
    public var features: FeatureParameters
    public var normalization: NormalizationInfo
    public var vocabulary: Vocabulary
    public var progress: TrainingProgress
    /// Adam's step count (0 for SGD).
    public var optimizerStep: Int
    public var tensors: [TensorEntry]
  }

  public var header: Header
  /// Model parameters and running statistics by name (`DS2Model.exportState()`), plus the
  /// optimizer's slots as `optimizer.<slot>.<index>`.
  public var tensors: [String: Tensor<Float>]

  public init(header: Header, tensors: [String: Tensor<Float>]) {
    self.header = header
    self.tensors = tensors
  }

  /// Writes the checkpoint atomically: to `path.tmp`, flushed to disk, then renamed over
  /// `path`. A reader (or a resumed run after a crash) sees the old file or the new one.
  /// - Throws: `ConfigurationError` naming the file when it cannot be written.
  public func write(to path: String) throws {
    var header = self.header
    var offset = 0
    var entries: [TensorEntry] = []
    let names = tensors.keys.sorted()
    for name in names {
      entries.append(TensorEntry(name: name, shape: tensors[name]!.shape, offset: offset))
      offset += tensors[name]!.count
    }
    header.tensors = entries
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    let json = try encoder.encode(header)
    var bytes = Self.magic
    var length = UInt64(json.count).littleEndian
    withUnsafeBytes(of: &length) { bytes += $0 }
    bytes += json
    while bytes.count % 4 != 0 { bytes.append(0) }
    bytes.reserveCapacity(bytes.count + 4 * offset)
    for name in names {
      tensors[name]!.scalars.withUnsafeBytes { bytes += $0 }
    }
    try writeAtomically(bytes, to: path)
  }

  /// Reads a checkpoint file.
  /// - Throws: `ConfigurationError` naming the file and what is wrong with it.
  public static func read(path: String) throws -> Checkpoint {
    var status = stat()
    guard stat(path, &status) == 0 else {
      throw FileSystemError(path: path, operation: "read the checkpoint", errorNumber: errno)
    }
    guard (status.st_mode & S_IFMT) == S_IFREG else { throw ConfigurationError("\(path): the checkpoint is not a regular file") }
    guard let data = FileManager.default.contents(atPath: path) else {
      throw ConfigurationError("\(path): cannot read the checkpoint")
    }
    let bytes = [UInt8](data)
    guard bytes.count >= 16, Array(bytes[0..<8]) == magic else {
      throw ConfigurationError("\(path): not a ds2-data checkpoint (bad magic)")
    }
    let length = bytes[8..<16].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    guard length <= UInt64(bytes.count - 16) else { throw ConfigurationError("\(path): truncated checkpoint header") }
    let headerEnd = 16 + Int(length)
    let decoder = JSONDecoder()
    decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    let header: Header
    do {
      header = try decoder.decode(Header.self, from: Data(bytes[16..<headerEnd]))
    } catch {
      throw ConfigurationError("\(path): cannot decode the checkpoint header: \(error)")
    }
    guard header.formatVersion == 1 else {
      throw ConfigurationError("\(path): checkpoint format version \(header.formatVersion); this build reads version 1")
    }
    // Its settings drive evaluation and decoding (threads, batch size, beam width).
    do { try header.recipe.validate() } catch let error as ConfigurationError {
      throw ConfigurationError("\(path): the checkpoint's model settings: \(error.message)")
    }
    guard header.vocabulary.count == header.model.vocabularySize else {
      throw ConfigurationError(
        "\(path): the checkpoint's vocabulary has \(header.vocabulary.count) symbols, its model outputs "
          + "\(header.model.vocabularySize) (damaged checkpoint)")
    }
    if let problem = header.progress.problem {
      throw ConfigurationError("\(path): the checkpoint's progress \(problem) (damaged checkpoint)")
    }
    let dataStart = (headerEnd + 3) & ~3
    var tensors: [String: Tensor<Float>] = [:]
    for entry in header.tensors {
      // Sizes from the file are checked before any arithmetic can overflow.
      let limit = bytes.count / 4
      guard entry.shape.allSatisfy({ (0...limit).contains($0) }), (0...limit).contains(entry.offset) else {
        throw ConfigurationError("\(path): tensor \(entry.name) has an impossible shape or offset (damaged checkpoint)")
      }
      var count = 1
      for dimension in entry.shape {
        let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
        guard !overflow, product <= limit else {
          throw ConfigurationError("\(path): tensor \(entry.name) lies past the end of the file (truncated checkpoint)")
        }
        count = product
      }
      let start = dataStart + 4 * entry.offset
      guard start + 4 * count <= bytes.count else {
        throw ConfigurationError("\(path): tensor \(entry.name) lies past the end of the file (truncated checkpoint)")
      }
      let values = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
        bytes.withUnsafeBytes { raw in
          UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[start..<start + 4 * count]))
        }
        initialized = count
      }
      tensors[entry.name] = Tensor(shape: entry.shape, scalars: values)
    }
    return Checkpoint(header: header, tensors: tensors)
  }
}

/// `AtomicFile.write` (the checkpoint files and side files of a run).
/// - Throws: `ConfigurationError` naming the path and the system error.
func writeAtomically(_ bytes: [UInt8], to path: String) throws { try AtomicFile.write(bytes, to: path) }
