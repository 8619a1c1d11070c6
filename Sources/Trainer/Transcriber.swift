import Audio
import DS2Core
import Features
import Foundation
import Shards
import Training

/// Turns audio files into text with a trained run (the `ds2-data transcribe` command).
///
/// Everything comes from the checkpoint: the feature parameters (rate, window, hop, FFT,
/// loudness target, channel rule, resample quality), the normalization statistics, the
/// vocabulary and the weights. A file goes through the `Featurizer` that `prepare` used for
/// the training data, is normalized and decoded greedily or with the beam search.
public final class Transcriber {
  public let checkpointPath: String
  private let checkpoint: Checkpoint
  private let model: DS2Model<Float>
  private let featurizer: Featurizer
  private let normalizer: FeatureNormalizer
  private let beam: BeamSearchDecoder?

  /// Loads the run's best checkpoint (or `checkpoint`: `latest` or a path).
  /// - Parameters:
  ///   - beamWidth: beam search width; nil uses the run's setting; 1 or less decodes greedily.
  ///   - languageModel: ARPA file overriding the run's.
  ///   - threads: compute threads of the model.
  /// - Throws: `ConfigurationError` for a missing or unreadable checkpoint or language model.
  public init(
    run: String, checkpoint name: String = "best", beamWidth: Int? = nil, languageModel: String? = nil,
    alpha: Double? = nil, beta: Double? = nil, threads: Int = 1
  ) throws {
    let (checkpoint, path) = try loadCheckpoint(run: run, name: name)
    self.checkpoint = checkpoint
    checkpointPath = path
    model = try restoreModel(checkpoint, path: path)
    do {
      featurizer = try Featurizer(parameters: checkpoint.header.features)
    } catch {
      throw ConfigurationError("\(path): the stored feature parameters are unusable: \(error)")
    }
    guard featurizer.bins == checkpoint.header.model.inputBins else {
      throw ConfigurationError("\(path): features give \(featurizer.bins) bins but the model takes \(checkpoint.header.model.inputBins)")
    }
    normalizer = FeatureNormalizer(checkpoint.header.normalization)
    let width = beamWidth ?? checkpoint.header.recipe.decoding.beamWidth
    beam = width <= 1 && languageModel == nil
      ? nil
      : try beamDecoder(
        vocabulary: checkpoint.header.vocabulary, settings: checkpoint.header.recipe.decoding, beamWidth: max(1, width),
        languageModel: languageModel, alpha: alpha, beta: beta)
    model.pool = WorkerPool(threads: threads)
  }

  /// The log spectrogram of an audio file as the model sees it: `[frames × bins]`, normalized.
  /// - Throws: `ItemError` when the file cannot be decoded or is shorter than one window.
  public func features(of path: String) throws -> FeatureMatrix {
    var matrix = try featurizer.features(path: path)
    guard matrix.frames > 0 else {
      throw ItemError(.tooShort, file: path, message: "shorter than one \(featurizer.parameters.windowSamples)-sample window")
    }
    try normalizer.apply(&matrix)
    return matrix
  }

  /// Transcribes one file.
  /// - Throws: `ItemError` naming the file when it cannot be decoded.
  public func transcribe(_ path: String) throws -> String {
    let matrix = try features(of: path)
    let batch = FeatureBatch<Float>(bins: matrix.bins, utterances: [matrix.values])
    let (logits, lengths) = model.forward(batch)
    let labels = beam?.decode(logits: logits, lengths: lengths)[0] ?? GreedyDecoder.decode(logits, lengths: lengths)[0]
    return checkpoint.header.vocabulary.decode(labels).trimmingCharacters(in: .whitespaces)
  }
}
