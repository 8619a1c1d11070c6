import Audio
import DS2Core
import Foundation
import Pipeline
import Shards
import TestSupport
import Training
import XCTest

@testable import Trainer

/// `transcribe` featurizes a file exactly as `prepare` stored it: one `Featurizer`, driven by
/// the feature parameters a dataset stores and a checkpoint carries (channel rule and
/// resample quality included).
final class FeaturizerEquivalenceTests: XCTestCase {
  /// A stereo 22.05 kHz file whose channels differ (so the channel rule matters) and a
  /// mono 16 kHz one, prepared at 16 kHz and at 8 kHz with `channelRule: first` and
  /// `sincBest` (neither the default), float32 storage: the transcriber's normalized
  /// features equal the stored records normalized, value for value.
  func testTranscribedFeaturesEqualPreparedOnesAtTwoRates() throws {
    let directory = TemporaryDirectory("featurizer")
    let corpus = directory.path + "/corpus"
    try FileManager.default.createDirectory(atPath: corpus + "/wav", withIntermediateDirectories: true)
    // Left: a voiced signal; right: noise at another level. Averaging them, or taking the
    // right channel, gives other features than channel 0.
    let left = Signals.voiced(seconds: 1.3, sampleRateHertz: 22_050, seed: 5)
    let right = Signals.noise(count: left.count, amplitude: 0.3, seed: 6)
    var stereo = [Float](repeating: 0, count: 2 * left.count)
    for i in left.indices {
      stereo[2 * i] = left[i]
      stereo[2 * i + 1] = right[i]
    }
    let stereoPath = corpus + "/wav/stereo.wav"
    try AudioEncoder.write(interleaved: stereo, channels: 2, sampleRateHertz: 22_050, format: .wavPCM16, to: stereoPath)
    let monoPath = corpus + "/wav/mono.wav"
    try AudioEncoder.write(
      interleaved: Signals.voiced(seconds: 0.9, sampleRateHertz: 16_000, seed: 7), sampleRateHertz: 16_000, format: .wavPCM16,
      to: monoPath)
    try Data(
      """
      {"audio_filepath": "wav/stereo.wav", "text": "one two"}
      {"audio_filepath": "wav/mono.wav", "text": "three"}

      """.utf8
    ).write(to: URL(fileURLWithPath: corpus + "/train.jsonl"))

    for rate in [16_000, 8_000] {
      let output = directory.path + "/data-\(rate)"
      var recipe = Recipe(name: "featurizer", corpus: CorpusConfig(kind: .manifest, root: corpus, splits: ["train"]), output: output)
      recipe.corpus.trainingSplits = ["train"]
      recipe.audio.sampleRateHertz = rate
      recipe.audio.channelRule = .first
      recipe.audio.resampleQuality = .sincBest
      recipe.features.loudnessTargetDecibels = -20
      recipe.shards.dtype = .float32
      recipe.threads = 1
      var options = PrepareOptions()
      options.logger.logLevel = .critical
      let report = try prepare(recipe: recipe, options: options)
      XCTAssertEqual(report.records, 2, "\(rate) Hz")

      let dataset = try Dataset(directory: output)
      XCTAssertEqual(dataset.manifest.features.channelRule, .first)
      XCTAssertEqual(dataset.manifest.features.resampleQuality, .sincBest)
      var stored: [String: FeatureMatrix] = [:]
      try dataset.forEachRecord(split: "train", normalized: true) { record in
        stored[record.id] = record.features
        return true
      }

      // A checkpoint of an untrained tiny model over this dataset: what train writes.
      let modelRecipe = tinyRecipe()
      let config = modelRecipe.model.config(bins: dataset.manifest.features.bins, vocabularySize: dataset.manifest.vocabulary.count)
      let model = try DS2Model<Float>(config: config)
      let header = Checkpoint.Header(
        toolVersion: "test", recipe: modelRecipe, model: config, datasets: [output], trainSplits: ["train"],
        evaluationSplit: nil, features: dataset.manifest.features, normalization: dataset.manifest.normalization,
        vocabulary: dataset.manifest.vocabulary, progress: TrainingProgress(learningRate: 1e-3), optimizerStep: 0, tensors: [])
      let checkpointPath = directory.path + "/model-\(rate).ckpt"
      try Checkpoint(header: header, tensors: model.exportState()).write(to: checkpointPath)
      let transcriber = try Transcriber(run: directory.path, checkpoint: checkpointPath)

      for (id, path) in [("stereo", stereoPath), ("mono", monoPath)] {
        let expected = try XCTUnwrap(stored[id], "\(id) at \(rate) Hz")
        let computed = try transcriber.features(of: path)
        XCTAssertEqual(computed.bins, expected.bins, "\(id) at \(rate) Hz")
        XCTAssertEqual(computed.frames, expected.frames, "\(id) at \(rate) Hz")
        XCTAssertEqual(computed.values, expected.values, "\(id) at \(rate) Hz: transcribe's features differ from prepare's")
      }
    }
  }
}
