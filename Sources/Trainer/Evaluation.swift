import DS2Core
import Dispatch
import Foundation
import Shards
import Training

/// Scores `model` on `plans`: mean CTC loss, greedy CER and WER, and with `beam` those of
/// the beam search too. Runs in evaluation mode (running statistics) and leaves the model
/// in training mode. `epoch`, `step` and `split` of the result are left for the caller.
/// - Throws: what loading a batch throws.
func evaluate(
  model: DS2Model<Float>, loader: BatchLoader, plans: [BatchPlan], vocabulary: Vocabulary, beam: BeamSearchDecoder?
) throws -> EvaluationResult {
  let started = DispatchTime.now().uptimeNanoseconds
  model.isTraining = false
  defer { model.isTraining = true }
  var lossSum = 0.0
  var finiteCount = 0
  var characters = ErrorCounts()
  var words = ErrorCounts()
  var beamCharacters = ErrorCounts()
  var beamWords = ErrorCounts()
  var utterances = 0
  let prefetcher = Prefetcher(loader: loader, plans: plans, inBackground: model.pool.threadCount > 1)
  while let batch = try prefetcher.next() {
    let (logits, lengths) = model.forward(batch.features)
    let losses = CTC.loss(logits: logits, lengths: lengths, labels: batch.labels).losses
    for loss in losses where loss.isFinite {
      lossSum += Double(loss)
      finiteCount += 1
    }
    let greedy = GreedyDecoder.decode(logits, lengths: lengths)
    let beamed = beam?.decode(logits: logits, lengths: lengths)
    for (b, reference) in batch.transcripts.enumerated() {
      let hypothesis = vocabulary.decode(greedy[b])
      characters += .characters(hypothesis: hypothesis, reference: reference)
      words += .words(hypothesis: hypothesis, reference: reference)
      if let beamed {
        let text = vocabulary.decode(beamed[b]).trimmingCharacters(in: .whitespaces)
        beamCharacters += .characters(hypothesis: text, reference: reference)
        beamWords += .words(hypothesis: text, reference: reference)
      }
    }
    utterances += batch.transcripts.count
  }
  return EvaluationResult(
    epoch: 0, step: 0, split: "", loss: finiteCount > 0 ? lossSum / Double(finiteCount) : .nan,
    cer: characters.rate, wer: words.rate, beamCER: beam == nil ? nil : beamCharacters.rate,
    beamWER: beam == nil ? nil : beamWords.rate, utterances: utterances,
    seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
}

/// What `ds2-data evaluate` was asked for.
public struct EvaluateOptions {
  /// The run folder.
  public var run: String
  /// Split to score; default: the run's evaluation split.
  public var split: String?
  /// Dataset directory; default: the first dataset the run trained on.
  public var dataset: String?
  /// `best` (default) or `latest`, or a checkpoint file path.
  public var checkpoint = "best"
  /// Beam search settings; default: the run's model YAML.
  public var beamWidth: Int?
  public var languageModel: String?
  public var alpha: Double?
  public var beta: Double?
  /// Skip the beam search.
  public var greedyOnly = false

  public init(run: String) { self.run = run }
}

/// Loads the checkpoint `name` (`best`, `latest` or a path) of `run`.
/// - Throws: `ConfigurationError` when it does not exist or cannot be read.
func loadCheckpoint(run: String, name: String) throws -> (Checkpoint, String) {
  let layout = RunLayout(run)
  let path: String
  switch name {
  case "best": path = FileManager.default.fileExists(atPath: layout.best) ? layout.best : layout.latest
  case "latest": path = layout.latest
  default: path = name
  }
  guard FileManager.default.fileExists(atPath: path) else {
    throw ConfigurationError("\(run): no checkpoint \(path) — is it a run folder written by ds2-data train?")
  }
  return (try Checkpoint.read(path: path), path)
}

/// Builds the model of a checkpoint with its weights, in evaluation mode.
/// - Throws: `ConfigurationError` when the tensors do not fit the model.
func restoreModel(_ checkpoint: Checkpoint, path: String) throws -> DS2Model<Float> {
  let model = try DS2Model<Float>(config: checkpoint.header.model)
  do {
    try model.importState(checkpoint.tensors.filter { !$0.key.hasPrefix("optimizer.") })
  } catch let error as TrainingError {
    throw ConfigurationError("\(path): \(error)")
  }
  model.isTraining = false
  return model
}

/// The beam search a run's settings (or their overrides) describe.
/// - Throws: `ConfigurationError` for an unreadable language model.
func beamDecoder(
  vocabulary: Vocabulary, settings: DecodingSection, beamWidth: Int?, languageModel: String?, alpha: Double?, beta: Double?
) throws -> BeamSearchDecoder {
  let path = languageModel ?? settings.languageModel
  return BeamSearchDecoder(
    vocabulary: vocabulary, beamWidth: beamWidth ?? settings.beamWidth,
    languageModel: try path.map { try LanguageModel(arpaPath: $0) }, alpha: alpha ?? settings.alpha, beta: beta ?? settings.beta)
}

/// Scores a trained model on a split (the `ds2-data evaluate` command): loss, CER and WER
/// with greedy decoding and with the CTC prefix beam search (and its language model).
/// - Throws: `ConfigurationError` (no run, no such split or dataset), `DatasetError`, `LMDBError`.
public func evaluate(_ options: EvaluateOptions) throws -> EvaluationResult {
  let (checkpoint, path) = try loadCheckpoint(run: options.run, name: options.checkpoint)
  let header = checkpoint.header
  let datasetPath = options.dataset ?? header.datasets[0]
  let dataset: Dataset
  do { dataset = try Dataset(directory: datasetPath) } catch let error as DatasetError { throw ConfigurationError(error.message) }
  guard dataset.manifest.vocabulary == header.vocabulary, dataset.manifest.features.bins == header.model.inputBins else {
    throw ConfigurationError("\(datasetPath): its vocabulary or feature bins differ from the model's (\(path))")
  }
  guard let split = options.split ?? header.evaluationSplit else {
    throw ConfigurationError("\(options.run): the run has no evaluation split; pass --split")
  }
  guard dataset.manifest.split(named: split) != nil else {
    throw ConfigurationError("\(datasetPath): no split \(split); it has \(dataset.manifest.splits.map(\.name).joined(separator: ", "))")
  }
  let model = try restoreModel(checkpoint, path: path)
  model.pool = WorkerPool(threads: header.recipe.training.effectiveThreads)
  let plans = Batcher(
    records: try dataset.index(split: split).map { RecordReference(dataset: 0, split: split, location: $0) },
    batchSize: header.recipe.training.batchSize, seed: 0
  ).batches
  let beam = options.greedyOnly
    ? nil
    : try beamDecoder(
      vocabulary: header.vocabulary, settings: header.recipe.decoding, beamWidth: options.beamWidth,
      languageModel: options.languageModel, alpha: options.alpha, beta: options.beta)
  var result = try evaluate(model: model, loader: BatchLoader(datasets: [dataset]), plans: plans, vocabulary: header.vocabulary, beam: beam)
  result.split = split
  result.step = header.progress.step
  result.epoch = header.progress.epoch
  return result
}

/// The JSON line of an evaluation in `metrics.jsonl`.
struct EvaluationLine: Encodable {
  var type = "eval"
  var result: EvaluationResult

  init(_ result: EvaluationResult) { self.result = result }

  func encode(to encoder: any Encoder) throws {
    try result.encode(to: encoder)
    var container = encoder.container(keyedBy: AnyCodingKey.self)
    try container.encode(type, forKey: AnyCodingKey(stringValue: "type"))
  }
}

/// `metrics.jsonl`: one JSON object per line, appended and flushed as they come.
final class MetricsLog {
  private let handle: FileHandle
  private let encoder: JSONEncoder

  /// Opens `path` for appending. With `keepingThroughStep`, first drops the lines of steps
  /// after that one (written after the checkpoint a resumed run continues from).
  /// - Throws: `ConfigurationError` when the file cannot be opened.
  init(path: String, keepingThroughStep step: Int?) throws {
    // Only a regular file (or none): opening a FIFO for writing would wait for a reader.
    var status = stat()
    if stat(path, &status) == 0, (status.st_mode & S_IFMT) != S_IFREG {
      throw ConfigurationError(
        "\(path): not a regular file (\(RegularFile.typeName(status.st_mode))); the run's metrics are written there — move it away")
    }
    if let step, let bytes = try? RegularFile.read(path, maxBytes: 4 << 30) {
      let data = Data(bytes)
      let kept = String(decoding: data, as: UTF8.self).split(separator: "\n").filter { line in
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
          let lineStep = object["step"] as? Int
        else { return false }
        return lineStep <= step
      }
      try writeAtomically(Array(kept.map { $0 + "\n" }.joined().utf8), to: path)
    } else if step == nil {
      guard FileManager.default.createFile(atPath: path, contents: nil) else {
        throw ConfigurationError("\(path): cannot create the metrics file")
      }
    }
    guard let handle = FileHandle(forWritingAtPath: path) else {
      throw ConfigurationError("\(path): cannot open the metrics file for writing")
    }
    handle.seekToEndOfFile()
    self.handle = handle
    encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
  }

  deinit { try? handle.close() }

  /// Appends one object as a line.
  /// - Throws: `EncodingError`.
  func append<Line: Encodable>(_ line: Line) throws {
    var data = try encoder.encode(line)
    data.append(0x0A)
    handle.write(data)
  }
}
