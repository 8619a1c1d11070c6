import Corpus
import DS2Core
import Logging

/// The reader for a recipe's corpus kind, listing (and unpacking) on `pool`'s threads
/// where the reader can split its work.
/// - Throws: `ConfigurationError` for settings the kind cannot use.
/// - Parameter unpacking: false for a dry run (AISHELL-1's archives are read, not unpacked).
func makeCorpusReader(_ corpus: CorpusConfig, pool: WorkerPool, unpacking: Bool = true) throws -> CorpusReader {
  if let fixed = corpus.kind.fixedLanguage, let language = corpus.language, language != fixed {
    throw ConfigurationError(
      "corpus.language: \(corpus.kind.rawValue) transcripts are \(fixed.rawValue); "
        + "remove corpus.language (it applies to the manifest and kaldi kinds)")
  }
  switch corpus.kind {
  case .librispeech: return LibriSpeechReader(root: corpus.root, pool: pool)
  case .fisher: return FisherReader(root: corpus.root, pool: pool)
  case .aishell:
    var reader = AISHELLReader(root: corpus.root, pool: pool) { archives, wavDirectory in
      Logger(label: "ds2-data.prepare").warning(
        """
        unpacking \(archives) speaker archive(s) into \(wavDirectory)/<split>/ with tar \
        (first run only; AISHELL-1's 400 archives take about 15 GB and several minutes)
        """)
    }
    reader.unpacksArchives = unpacking
    return reader
  case .manifest: return JSONLinesManifestReader(root: corpus.root, language: corpus.effectiveLanguage)
  case .kaldi: return KaldiDataDirectoryReader(root: corpus.root, language: corpus.effectiveLanguage)
  }
}

/// The label vocabulary of a dataset.
///
/// * English: the fixed DS2 characters (`Vocabulary.english`).
/// * Mandarin: every character (Unicode scalar) of the normalized transcripts listed for
///   the training splits, sorted by scalar value — deterministic, whatever the listing
///   order. Dev/test transcripts are not consulted: an utterance with a character
///   outside the set is rejected as `out_of_vocabulary`, the characters named.
/// - Throws: `ConfigurationError` when no vocabulary can be made (Mandarin without
///   training transcripts).
func makeVocabulary(for corpus: CorpusConfig, listing: CorpusListing) throws -> Vocabulary {
  switch corpus.effectiveLanguage {
  case .english: return .english
  case .mandarin: return try trainingCharacterVocabulary(listing: listing, trainingSplits: corpus.trainingSplits)
  }
}

/// The characters of the training splits' transcripts, sorted by Unicode scalar value.
/// - Throws: `ConfigurationError` when those splits list no transcript.
func trainingCharacterVocabulary(listing: CorpusListing, trainingSplits: [String]) throws -> Vocabulary {
  let training = Set(trainingSplits)
  var scalars = Set<Unicode.Scalar>()
  for source in listing.sources where training.contains(source.split) {
    scalars.formUnion(source.transcript.unicodeScalars)
  }
  guard !scalars.isEmpty else {
    throw ConfigurationError(
      "the Mandarin vocabulary is built from the training splits' transcripts, but "
        + (trainingSplits.isEmpty
          ? "corpus.trainingSplits is empty; name the training splits"
          : "\(trainingSplits.joined(separator: ", ")) list no transcript"))
  }
  return Vocabulary(nonBlankSymbols: scalars.sorted { $0.value < $1.value })
}
