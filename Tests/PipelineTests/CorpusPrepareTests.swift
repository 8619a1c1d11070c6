import Corpus
import DS2Core
import Foundation
import Shards
import TestSupport
import XCTest

@testable import Pipeline

/// End-to-end `prepare` of the bundled mini corpora and of generated Fisher, manifest and
/// Kaldi corpora.
final class CorpusPrepareTests: XCTestCase {
  func quietOptions() -> PrepareOptions {
    var options = PrepareOptions()
    options.logger.logLevel = .critical
    return options
  }

  /// A bundled recipe with its corpus root made absolute and the output in `directory`.
  func bundledRecipe(_ name: String, root: String? = nil, output: String) throws -> Recipe {
    var recipe = try Recipe.load(path: repositoryRoot + "/recipes/\(name).yaml")
    recipe.corpus.root = root ?? repositoryRoot + "/" + recipe.corpus.root
    recipe.output = output
    recipe.threads = 2
    return recipe
  }

  func records(_ dataset: Dataset, _ split: String, normalized: Bool = false) throws -> [ShardRecord] {
    var records: [ShardRecord] = []
    try dataset.forEachRecord(split: split, normalized: normalized) { records.append($0); return true }
    return records
  }

  /// The bundled Fisher corpus, compared against its transcripts normalized by hand with
  /// the documented rule, and against the turn times in the ids.
  func testBundledMiniFisher() throws {
    let directory = TemporaryDirectory("mini-fisher")
    let recipe = try bundledRecipe("mini-fisher", output: directory.path + "/out")
    let report = try prepare(recipe: recipe, options: quietOptions())
    XCTAssertEqual(report.rejectionsByReason, [.emptyTranscript: 1, .uncertainTranscript: 1])
    let dataset = try Dataset(directory: recipe.output)
    XCTAssertEqual(dataset.manifest.vocabulary, .english)
    XCTAssertEqual(dataset.manifest.features.sampleRateHertz, 16_000)

    let expected: [String: [String: String]] = [
      "dev": [
        "fe_03_00001-A-000030-000143": "hi my name is john",
        "fe_03_00001-B-000168-000268": "hi john i'm mary",
        "fe_03_00001-A-000298-000514": "so the topic is pets do you have any",
        "fe_03_00001-B-000539-000737": "yeah we have a dog and uh two cats",
      ],
      "test": [
        "fe_03_00051-A-000030-000222": "how's the weather th there today",
        "fe_03_00051-B-000252-000464": "it's sunny we watched the t v news",
        "fe_03_00051-A-000489-000536": "nice",
        "fe_03_00051-B-000561-000598": "yeah",
      ],
      "train": [
        "fe_03_00101-A-000030-000160": "what do you like to eat",
        "fe_03_00101-B-000185-000408": "i like pizza and home made bread",
        "fe_03_00101-A-000438-000573": "me too my mom makes it",
        "fe_03_00101-B-000523-000594": "mhm",
        "fe_03_00101-A-000624-000688": "do you cook",
        "fe_03_00101-B-000713-000851": "sometimes on weekends",
        "fe_03_05851-A-000030-000217": "do you watch sports on t v",
        "fe_03_05851-B-000247-000505": "mostly football and basketb basketball",
        "fe_03_05851-A-000530-000705": "i played soccer in high school",
        "fe_03_05851-B-000735-000818": "i never did",
        "fe_03_05851-A-000843-000920": "it was fun",
      ],
    ]
    for split in ["train", "dev", "test"] {
      let stored = try records(dataset, split)
      XCTAssertEqual(Dictionary(uniqueKeysWithValues: stored.map { ($0.id, $0.transcript) }), expected[split], split)
      for record in stored {
        XCTAssertEqual(Vocabulary.english.decode(record.labels), record.transcript)
        // 8 kHz turns of whole centiseconds resample to exactly 160 samples per centisecond.
        let times = record.id.split(separator: "-").suffix(2).map { Int($0)! }
        XCTAssertEqual(record.sampleCount, (times[1] - times[0]) * 160, record.id)
        // Cut from the right channel: speech, not the other side's digital silence
        // (ln(1e-14) ≈ −32.2 in every bin).
        XCTAssertGreaterThan(record.features.values.max()!, -15, "\(record.id) holds no speech")
        XCTAssertTrue(record.infoJSON.contains(String(record.id.prefix(13))), record.infoJSON)
      }
    }
  }

  /// The bundled AISHELL corpus as shipped (packed per speaker), prepared from a copy.
  /// The vocabulary is compared against the characters of the train speakers' lines
  /// counted straight from the transcript file.
  func testBundledMiniAISHELLFromPackedArchives() throws {
    let directory = TemporaryDirectory("mini-aishell")
    // Only what is committed: the archives and the transcript (a checkout where the
    // recipe has run also holds the unpacked, git-ignored split folders).
    let corpus = directory.path + "/mini-aishell"
    let bundled = repositoryRoot + "/corpora/mini-aishell/data_aishell"
    try copyTree(bundled + "/transcript", to: corpus + "/data_aishell/transcript")
    for archive in try FileManager.default.contentsOfDirectory(atPath: bundled + "/wav") where archive.hasSuffix(".tar.gz") {
      try copyTree(bundled + "/wav/" + archive, to: corpus + "/data_aishell/wav/" + archive)
    }
    XCTAssertTrue(FileManager.default.fileExists(atPath: corpus + "/data_aishell/wav/S0002.tar.gz"))
    XCTAssertFalse(FileManager.default.fileExists(atPath: corpus + "/data_aishell/wav/train"))
    let recipe = try bundledRecipe("mini-aishell", root: corpus, output: directory.path + "/out")
    let report = try prepare(recipe: recipe, options: quietOptions())
    XCTAssertEqual(report.rejectionsByReason, [.missingTranscript: 2, .outOfVocabulary: 1])
    XCTAssertEqual(report.splits.map(\.records), [12, 2, 3])

    let transcript = try String(
      contentsOfFile: corpus + "/data_aishell/transcript/aishell_transcript_v0.8.txt", encoding: .utf8)
    var trainCharacters = Set<Unicode.Scalar>()
    for line in transcript.split(separator: "\n") where ["S0002", "S0003", "S0004"].contains(String(line.dropFirst(6).prefix(5))) {
      trainCharacters.formUnion(line.split(separator: " ").dropFirst().joined().unicodeScalars)
    }
    let dataset = try Dataset(directory: recipe.output)
    XCTAssertEqual(dataset.manifest.vocabulary.symbols, ["<blank>"] + trainCharacters.sorted { $0.value < $1.value }.map { String($0) })
    XCTAssertEqual(dataset.manifest.vocabulary.count, 37)

    let vocabulary = dataset.manifest.vocabulary
    for split in ["train", "dev", "test"] {
      for record in try records(dataset, split) {
        XCTAssertEqual(vocabulary.decode(record.labels), record.transcript)
        XCTAssertFalse(record.transcript.contains(" "))
      }
    }
    XCTAssertEqual(try records(dataset, "dev").map(\.id).sorted(), ["BAC009S0724W0121", "BAC009S0724W0122"])
    let rejected = try String(contentsOfFile: recipe.output + "/rejected.jsonl", encoding: .utf8)
    XCTAssertTrue(rejected.contains("BAC009S0724W0123"), rejected)
    XCTAssertTrue(rejected.contains("'喝' (U+559D), '茶' (U+8336), '吗' (U+5417)"), rejected)
    XCTAssertTrue(rejected.contains("wav/train/S0003/BAC009S0003W0125.wav"), rejected)
    XCTAssertTrue(rejected.contains("wav/test/S0764/BAC009S0764W0124.wav"), rejected)
  }

  /// A B turn overlapping an A turn in time lands in the shards with B's tone: the
  /// spectrum of each record peaks at its side's frequency (400 Hz = bin 8, 1000 Hz =
  /// bin 20 at 16 kHz with 320-point frames), after cutting and 8 → 16 kHz resampling.
  func testFisherTurnsKeepTheirChannelThroughThePipeline() throws {
    let directory = TemporaryDirectory("fisher-channels")
    let fixture = FisherFixture(root: directory.path + "/fisher")
    for number in [1, 200] {
      try fixture.write(
        number: number, seconds: 5,
        turns: [
          .init(0.20, 1.70, "A", "first side", frequencyHertz: 400),
          .init(1.00, 2.50, "B", "second side", frequencyHertz: 1000),
          .init(2.80, 3.90, "A", "first again", frequencyHertz: 400),
        ])
    }
    var recipe = Recipe(
      name: "fisher", corpus: CorpusConfig(kind: .fisher, root: fixture.root, splits: ["train", "dev"]),
      output: directory.path + "/out")
    recipe.threads = 2
    _ = try prepare(recipe: recipe, options: quietOptions())
    let dataset = try Dataset(directory: recipe.output)
    var seen = 0
    for split in ["train", "dev"] {
      for record in try records(dataset, split) {
        let side = record.id.dropFirst(12).prefix(1)
        var meanSpectrum = [Float](repeating: 0, count: record.bins)
        for (index, value) in record.features.values.enumerated() { meanSpectrum[index % record.bins] += value }
        let peak = meanSpectrum.indices.max { meanSpectrum[$0] < meanSpectrum[$1] }!
        XCTAssertEqual(peak, side == "A" ? 8 : 20, record.id)
        let times = record.id.split(separator: "-").suffix(2).map { Int($0)! }
        XCTAssertEqual(record.sampleCount, (times[1] - times[0]) * 160, record.id)
        seen += 1
      }
    }
    XCTAssertEqual(seen, 6)
  }

  /// The manifest and Kaldi examples describe the bundled LibriSpeech audio: their train
  /// records equal LibriSpeech's byte for byte, and their dev records (cut 0.1 s in) equal
  /// each other and are 1600 samples shorter.
  func testManifestAndKaldiExamplesMatchTheLibriSpeechPreparation() throws {
    let directory = TemporaryDirectory("generic")
    var reference: Dataset?
    var datasets: [String: Dataset] = [:]
    for name in ["mini-librispeech", "manifest-example", "kaldi-example"] {
      var recipe = try bundledRecipe(name, output: directory.path + "/" + name)
      if name == "kaldi-example" {
        // wav.scp paths are relative to the current directory; use the repository root's.
        recipe.corpus.root = try absoluteKaldiCopy(of: recipe.corpus.root, in: directory)
      }
      let report = try prepare(recipe: recipe, options: quietOptions())
      XCTAssertEqual(report.rejectedCount, 0, name)
      let dataset = try Dataset(directory: recipe.output)
      if name == "mini-librispeech" { reference = dataset } else { datasets[name] = dataset }
    }
    let librispeech = try XCTUnwrap(reference)
    for (name, dataset) in datasets {
      for (split, referenceSplit) in [("train", "train-clean-100"), ("test", "test-clean")] {
        var expected = try records(librispeech, referenceSplit)
        // Manifests name no speakers; Kaldi's utt2spk gives LibriSpeech's.
        if name == "manifest-example" { for index in expected.indices { expected[index].infoJSON = "" } }
        let actual = try records(dataset, split)
        XCTAssertEqual(actual.map(\.id), expected.map(\.id), "\(name) \(split)")
        XCTAssertTrue(actual == expected, "\(name) \(split): records differ from the LibriSpeech preparation")
      }
      // Same frames, so the same statistics — up to Double rounding, since shards (and so
      // the order of the exact per-shard merges) depend on each recipe's shard size.
      let ours = dataset.manifest.normalization.statistics
      let theirs = librispeech.manifest.normalization.statistics
      XCTAssertEqual(ours.count, theirs.count, name)
      for k in 0..<theirs.bins {
        XCTAssertEqual(ours.mean[k], theirs.mean[k], accuracy: 1e-9 * abs(theirs.mean[k]), name)
        XCTAssertEqual(ours.m2[k], theirs.m2[k], accuracy: 1e-9 * theirs.m2[k], name)
      }
    }
    let fullDev = Dictionary(uniqueKeysWithValues: try records(librispeech, "dev-clean").map { ($0.id, $0.sampleCount) })
    let manifestDev = try records(datasets["manifest-example"]!, "dev")
    let kaldiDev = try records(datasets["kaldi-example"]!, "dev")
    XCTAssertEqual(manifestDev.count, 13)
    XCTAssertEqual(manifestDev.map(\.features), kaldiDev.map(\.features))
    for (segment, utterance) in zip(manifestDev, kaldiDev) {
      XCTAssertEqual(segment.id, utterance.id + "-000010-" + segment.id.suffix(6))
      XCTAssertEqual(segment.sampleCount, fullDev[utterance.id]! - 1600, utterance.id)
    }
  }

  /// A copy of a Kaldi example whose relative wav.scp paths are made absolute against the
  /// repository root (tests do not change the process's current directory).
  func absoluteKaldiCopy(of root: String, in directory: TemporaryDirectory) throws -> String {
    let copy = directory.path + "/kaldi-copy"
    try copyTree(root, to: copy)
    for split in ["train", "dev", "test"] {
      let path = copy + "/" + split + "/wav.scp"
      let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { line -> String in
        let fields = line.split(separator: " ", maxSplits: 1)
        return "\(fields[0]) \(repositoryRoot)/\(fields[1])"
      }
      try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }
    return copy
  }
}

final class CorpusFactoryTests: XCTestCase {
  func source(_ id: String, _ split: String, _ text: String) -> UtteranceSource {
    UtteranceSource(id: id, split: split, audioPath: "/a.wav", transcript: text)
  }

  /// Sorted by scalar value, from training splits only, whatever the listing order.
  func testMandarinVocabularyIsTheSortedTrainingCharacters() throws {
    let sources = [source("3", "train", "好人"), source("1", "dev", "喝茶"), source("2", "train", "人好天"), source("4", "extra", "我")]
    let corpus = CorpusConfig(kind: .aishell, root: "/x", splits: ["train", "extra", "dev"], trainingSplits: ["train", "extra"])
    let forward = try makeVocabulary(for: corpus, listing: CorpusListing(sources: sources))
    let backward = try makeVocabulary(for: corpus, listing: CorpusListing(sources: sources.reversed()))
    XCTAssertEqual(forward.symbols, ["<blank>", "人", "天", "好", "我"])
    XCTAssertEqual(forward, backward)
    XCTAssertThrowsError(try forward.encode("喝茶")) { XCTAssertTrue("\($0)".contains("'喝' (U+559D)"), "\($0)") }

    let noTraining = CorpusConfig(kind: .manifest, root: "/x", splits: ["dev"], trainingSplits: [], language: .mandarin)
    XCTAssertThrowsError(try makeVocabulary(for: noTraining, listing: CorpusListing(sources: sources))) {
      XCTAssertTrue("\($0)".contains("corpus.trainingSplits is empty"), "\($0)")
    }
    let english = CorpusConfig(kind: .kaldi, root: "/x", splits: ["train"])
    XCTAssertEqual(try makeVocabulary(for: english, listing: CorpusListing(sources: sources)), .english)
  }

  func testLanguageIsChosenForGenericKindsAndFixedForCorpora() throws {
    let directory = TemporaryDirectory("language")
    func load(_ yaml: String) throws -> Recipe {
      try yaml.write(toFile: directory.path + "/r.yaml", atomically: true, encoding: .utf8)
      return try Recipe.load(path: directory.path + "/r.yaml")
    }
    let manifest = try load("corpus: {kind: manifest, root: /m, splits: [train], language: mandarin}")
    XCTAssertEqual(manifest.corpus.effectiveLanguage, .mandarin)
    XCTAssertEqual(try load("corpus: {kind: kaldi, root: /k, splits: [train]}").corpus.effectiveLanguage, .english)
    XCTAssertEqual(try load("corpus: {kind: aishell, root: /a, splits: [train]}").corpus.effectiveLanguage, .mandarin)
    XCTAssertThrowsError(try load("corpus: {kind: manifest, root: /m, splits: [train], language: klingon}")) {
      XCTAssertTrue("\($0)".contains("corpus.language"), "\($0)")
    }
    XCTAssertThrowsError(try load("corpus: {kind: fisher, root: /f, splits: [train], lang: english}")) {
      XCTAssertTrue("\($0)".contains("unknown key lang"), "\($0)")
    }
    let contradictory = try load("corpus: {kind: fisher, root: /f, splits: [train], language: mandarin}")
    XCTAssertThrowsError(try makeCorpusReader(contradictory.corpus, pool: .serial)) {
      XCTAssertTrue("\($0)".contains("fisher transcripts are english"), "\($0)")
    }
    // A recipe without `language` keeps its content identity (datasets made before stay valid).
    guard case .object(let identity) = try load("corpus: {kind: librispeech, root: /l, splits: [train]}").contentIdentity,
      case .object(let corpus)? = identity["corpus"]
    else { return XCTFail("recipe identity is not an object") }
    XCTAssertNil(corpus["language"])
  }
}
