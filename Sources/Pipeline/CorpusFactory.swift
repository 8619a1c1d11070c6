import Corpus
import DS2Core

/// The reader for a recipe's corpus kind.
/// - Throws: `ConfigurationError` for settings the kind cannot use.
func makeCorpusReader(_ corpus: CorpusConfig) throws -> CorpusReader {
  switch corpus.kind {
  case .librispeech: return LibriSpeechReader(root: corpus.root)
  }
}

/// The label vocabulary of a dataset: the English characters for English corpora.
/// - Throws: `ConfigurationError` when no vocabulary can be made.
func makeVocabulary(for corpus: CorpusConfig, listing: CorpusListing) throws -> Vocabulary {
  switch corpus.kind {
  case .librispeech: return .english
  }
}
