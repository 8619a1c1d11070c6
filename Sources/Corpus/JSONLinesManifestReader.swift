import DS2Core
import Foundation

/// Reads JSON-lines manifests as NeMo and PaddlePaddle DeepSpeech write them, one file
/// per split:
///
///     <root>/<split>.jsonl   (or <root>/<split>.json)
///     {"audio_filepath": "wav/a.wav", "duration": 3.2, "text": "hello world"}
///     {"audio_filepath": "/data/long.flac", "offset": 12.5, "duration": 4.0, "text": "…"}
///
/// * **Fields.** `audio_filepath` (string) and `text` (string) are required. `duration`
///   (seconds) is the length to read — NeMo's meaning — and may be omitted to read to
///   the end of the file. `offset` (seconds, default 0) is where to start; it needs
///   `duration`. Other keys are ignored. Blank lines are skipped.
/// * **Paths.** Relative `audio_filepath`s are relative to the manifest's folder (as in
///   NeMo).
/// * **Ids.** The audio file's name without its extension, plus `-<start>-<end>` in
///   centiseconds (6 digits) when `offset` is given: `a`, `long-001250-001650` — for
///   LibriSpeech audio, the LibriSpeech ids. Two entries of a split with the same id are
///   a `duplicate_id` (the first is kept); a corpus whose file names repeat across
///   folders needs explicit ids, i.e. a Kaldi data directory.
/// * **Text.** Normalized by `language` (`TranscriptLanguage`).
/// * **Channels.** None named: the recipe's `audio.channelRule` applies.
public struct JSONLinesManifestReader: CorpusReader {
  public let root: String
  public let language: TranscriptLanguage

  public init(root: String, language: TranscriptLanguage) {
    self.root = root
    self.language = language
  }

  /// The manifest file of `split`, or nil when nothing is under either name.
  func manifestPath(split: String) -> String? {
    [root + "/" + split + ".jsonl", root + "/" + split + ".json"].first(where: CorpusFiles.exists)
  }

  public func list(splits: [String]) throws -> CorpusListing {
    try CorpusFiles.requireDirectory(root)
    var listing = CorpusListing()
    var present: [(String, String)] = []
    for split in splits {
      if let path = manifestPath(split: split) {
        present.append((split, path))
      } else {
        listing.missingSplits.append(split)
      }
    }
    guard !present.isEmpty else {
      throw CorpusFiles.noSplitsError(
        root: root, splits: splits, searched: "<split>.jsonl or <split>.json",
        found: CorpusFiles.sortedEntries(root).filter { $0.hasSuffix(".jsonl") || $0.hasSuffix(".json") })
    }
    for (split, path) in present {
      var sources: [UtteranceSource] = []
      var lineOfId: [String: Int] = [:]
      for line in TranscriptLines.read(path: path) {
        switch line.text {
        case .failure(var error):
          error.split = split
          error.utteranceId = nil
          listing.rejections.append(error)
        case .success(let text):
          if text.allSatisfy(\.isWhitespace) { continue }
          switch entry(text, manifestPath: path, split: split, line: line.number) {
          case .failure(let error): listing.rejections.append(error)
          case .success(let source):
            if let first = lineOfId[source.id] {
              listing.rejections.append(
                ItemError(.duplicateId, file: path, line: line.number, utteranceId: source.id, split: split,
                  message: "id \(source.id) was already given by line \(first) (ids are file names); the first one is kept"))
            } else {
              lineOfId[source.id] = line.number
              sources.append(source)
            }
          }
        }
      }
      listing.sources += sources.sortedById()
    }
    return listing
  }

  /// Parses one manifest line.
  func entry(_ text: String, manifestPath: String, split: String, line: Int) -> Result<UtteranceSource, ItemError> {
    func malformed(_ message: String) -> Result<UtteranceSource, ItemError> {
      .failure(ItemError(.malformedTranscript, file: manifestPath, line: line, split: split, message: message))
    }
    guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)), case .object(let object) = value
    else {
      return malformed("not a JSON object")
    }
    guard case .string(let audioFile)? = object["audio_filepath"], !audioFile.isEmpty else {
      return malformed("\"audio_filepath\" is missing or not a non-empty string")
    }
    guard case .string(let rawText)? = object["text"] else {
      return malformed("\"text\" is missing or not a string")
    }
    func seconds(_ key: String) -> Result<Double?, ItemError> {
      switch object[key] {
      case nil, .null?: return .success(nil)
      case .number(let value)? where value.isFinite && value >= 0: return .success(value)
      default:
        return .failure(
          ItemError(.malformedTranscript, file: manifestPath, line: line, split: split,
            message: "\"\(key)\" must be a number of seconds ≥ 0"))
      }
    }
    let duration: Double?
    let offset: Double?
    switch (seconds("duration"), seconds("offset")) {
    case (.failure(let error), _), (_, .failure(let error)): return .failure(error)
    case (.success(let d), .success(let o)):
      duration = d
      offset = o
    }
    if offset != nil && duration == nil { return malformed("\"offset\" needs \"duration\"") }
    if duration == 0 { return malformed("\"duration\" is 0") }

    let folder = (manifestPath as NSString).deletingLastPathComponent
    let audioPath = audioFile.hasPrefix("/") ? audioFile : folder + "/" + audioFile
    var id = Self.idStem(audioFile: audioFile)
    if let offset, let duration {
      id += "-\(centisecondsLabel(offset))-\(centisecondsLabel(offset + duration))"
    }
    let transcript = language.normalize(rawText)
    guard !transcript.isEmpty else {
      return .failure(
        ItemError(.emptyTranscript, file: manifestPath, line: line, utteranceId: id, split: split,
          message: "\"text\" is empty after normalization"))
    }
    return .success(
      UtteranceSource(
        id: id, split: split, audioPath: audioPath, startSeconds: offset ?? 0, durationSeconds: duration,
        transcript: transcript, transcriptPath: manifestPath, transcriptLine: line))
  }

  /// The audio file's name without its extension: `wav/a.flac` → `a`.
  static func idStem(audioFile: String) -> String {
    let name = (audioFile as NSString).lastPathComponent
    guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return name }
    return String(name[..<dot])
  }
}
