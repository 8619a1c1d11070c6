import DS2Core
import Foundation

/// Reads Kaldi data directories, one per split:
///
///     <root>/<split>/wav.scp    <recording-id> <path>          (plain paths only)
///     <root>/<split>/text       <utterance-id> <transcript>
///     <root>/<split>/segments   <utterance-id> <recording-id> <start> <end>   (optional)
///     <root>/<split>/utt2spk    <utterance-id> <speaker>                      (optional)
///
/// * **Without `segments`** each `wav.scp` key is an utterance id and the whole file is
///   the utterance. **With `segments`** each line cuts `<start>`…`<end>` seconds out of
///   a recording (`<end>` = -1: to the end of the file).
/// * **Paths.** Relative paths are relative to the current directory, as Kaldi resolves
///   them. Command pipes (`… |`) and archive offsets (`foo.ark:12`) are not read: such
///   entries are rejected (`unreadable_audio`) with advice to write the audio to files.
/// * **Ids** are Kaldi's utterance ids; speakers come from `utt2spk` when present.
/// * **Text.** Normalized by `language` (`TranscriptLanguage`).
/// * **Channels.** None named: the recipe's `audio.channelRule` applies.
/// * Utterances without audio (`missing_audio`), audio without a transcript
///   (`missing_transcript`) and repeated keys (`duplicate_id`) are named with file and line.
public struct KaldiDataDirectoryReader: CorpusReader {
  public let root: String
  public let language: TranscriptLanguage

  public init(root: String, language: TranscriptLanguage) {
    self.root = root
    self.language = language
  }

  /// One `<key> <value>` line of a Kaldi table.
  struct TableEntry {
    var value: String
    var line: Int
  }

  public func list(splits: [String]) throws -> CorpusListing {
    try CorpusFiles.requireDirectory(root)
    var listing = CorpusListing()
    var present: [String] = []
    for split in splits {
      let directory = root + "/" + split
      if CorpusFiles.exists(directory + "/wav.scp") && CorpusFiles.exists(directory + "/text") {
        present.append(split)
      } else {
        listing.missingSplits.append(split)
      }
    }
    guard !present.isEmpty else {
      throw CorpusFiles.noSplitsError(
        root: root, splits: splits, searched: "<split>/wav.scp and <split>/text",
        found: CorpusFiles.sortedEntries(root).filter { CorpusFiles.isFile(root + "/" + $0 + "/wav.scp") })
    }
    for split in present {
      listing.sources += try listSplit(split, rejections: &listing.rejections).sortedById()
    }
    return listing
  }

  private func listSplit(_ split: String, rejections: inout [ItemError]) throws -> [UtteranceSource] {
    let directory = root + "/" + split
    let wavPath = directory + "/wav.scp"
    let textPath = directory + "/text"
    let segmentsPath = directory + "/segments"
    let speakersPath = directory + "/utt2spk"
    let (recordings, undecodedRecordings) = try readTable(wavPath, split: split, rejections: &rejections)
    let (texts, undecodedTexts) = try readTable(textPath, split: split, allowEmptyValue: true, rejections: &rejections)
    let speakers =
      CorpusFiles.exists(speakersPath) ? try readTable(speakersPath, split: split, rejections: &rejections).table : [:]

    // Audio of each recording, or why it cannot be read.
    var audioOf: [String: Result<String, ItemError>] = [:]
    for (key, entry) in recordings {
      audioOf[key] = audioPath(entry.value, key: key, file: wavPath, line: entry.line, split: split)
    }

    // Utterances, and where each is listed (segments or wav.scp) for messages.
    var utterances: [(id: String, recording: String, start: Double, duration: Double?, file: String, line: Int)] = []
    // Utterance ids already rejected for their audio side, not to be reported again.
    var accounted = undecodedRecordings
    let hasSegments = CorpusFiles.exists(segmentsPath)
    if hasSegments {
      let (segments, undecodedSegments) = try readTable(segmentsPath, split: split, rejections: &rejections)
      accounted = undecodedSegments
      var usedRecordings = Set<String>()
      for (id, entry) in segments.sorted(by: { $0.value.line < $1.value.line }) {
        let fields = entry.value.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count == 3, let start = Double(fields[1]), let end = Double(fields[2]), start.isFinite, end.isFinite,
          start >= 0, end == -1 || end > start
        else {
          accounted.insert(id)
          rejections.append(
            ItemError(.malformedTranscript, file: segmentsPath, line: entry.line, utteranceId: id, split: split,
              message: "expected `<utterance-id> <recording-id> <start> <end>` with end > start (or -1)"))
          continue
        }
        let recording = String(fields[0])
        guard recordings[recording] != nil else {
          accounted.insert(id)
          if undecodedRecordings.contains(recording) { continue }
          rejections.append(
            ItemError(.missingAudio, file: segmentsPath, line: entry.line, utteranceId: id, split: split,
              message: "recording \(recording) is not in \(wavPath)"))
          continue
        }
        usedRecordings.insert(recording)
        utterances.append((id, recording, start, end == -1 ? nil : end - start, segmentsPath, entry.line))
      }
      for (key, entry) in recordings.sorted(by: { $0.value.line < $1.value.line }) where !usedRecordings.contains(key) {
        rejections.append(
          ItemError(.missingTranscript, file: wavPath, line: entry.line, utteranceId: key, split: split,
            message: "no segment of recording \(key) in \(segmentsPath)"))
      }
    } else {
      utterances = recordings.map { ($0.key, $0.key, 0, nil, wavPath, $0.value.line) }
    }

    var sources: [UtteranceSource] = []
    for utterance in utterances.sorted(by: { utf8Precedes($0.id, $1.id) }) {
      guard let text = texts[utterance.id] else {
        if !undecodedTexts.contains(utterance.id) {
          rejections.append(
            ItemError(.missingTranscript, file: utterance.file, line: utterance.line, utteranceId: utterance.id,
              split: split, message: "no line for \(utterance.id) in \(textPath)"))
        }
        continue
      }
      let audio: String
      switch audioOf[utterance.recording]! {
      case .success(let path): audio = path
      case .failure(var error):
        error.utteranceId = utterance.id
        rejections.append(error)
        continue
      }
      let transcript = language.normalize(text.value)
      guard !transcript.isEmpty else {
        rejections.append(
          ItemError(.emptyTranscript, file: textPath, line: text.line, utteranceId: utterance.id, split: split,
            message: "transcript is empty after normalization"))
        continue
      }
      sources.append(
        UtteranceSource(
          id: utterance.id, split: split, audioPath: audio, startSeconds: utterance.start,
          durationSeconds: utterance.duration, transcript: transcript, speaker: speakers[utterance.id]?.value,
          transcriptPath: textPath, transcriptLine: text.line))
    }
    let utteranceIds = Set(utterances.map(\.id))
    for (id, entry) in texts.sorted(by: { $0.value.line < $1.value.line })
    where !utteranceIds.contains(id) && !accounted.contains(id) {
      rejections.append(
        ItemError(.missingAudio, file: textPath, line: entry.line, utteranceId: id, split: split,
          message: hasSegments ? "no segment \(id) in \(segmentsPath)" : "no entry \(id) in \(wavPath)"))
    }
    return sources
  }

  /// The file a `wav.scp` value names, or why it cannot be read.
  func audioPath(_ value: String, key: String, file: String, line: Int, split: String) -> Result<String, ItemError> {
    func unreadable(_ message: String) -> Result<String, ItemError> {
      .failure(ItemError(.unreadableAudio, file: file, line: line, utteranceId: key, split: split, message: message))
    }
    let trimmed = value.trimmingCharacters(in: .whitespaces)
    if trimmed.hasSuffix("|") {
      return unreadable(
        "`\(trimmed)` is a command pipe; ds2-data reads audio files only — run the command once to write "
          + "the audio to a file (e.g. `sph2pipe -f wav in.sph out.wav`) and list that file")
    }
    if trimmed.range(of: #"\.ark:[0-9]+$"#, options: .regularExpression) != nil {
      return unreadable("`\(trimmed)` is an offset into a Kaldi archive; write the audio to files (e.g. `wav-copy`) and list those")
    }
    return .success(trimmed)
  }

  /// Reads a Kaldi table: `<key> <value>` per line, keys unique. Problems are appended
  /// to `rejections`; keys of lines that are not UTF-8 are returned so that their
  /// utterances are not reported a second time.
  /// - Throws: `ConfigurationError` when the file cannot be read.
  func readTable(_ path: String, split: String, allowEmptyValue: Bool = false, rejections: inout [ItemError]) throws
    -> (table: [String: TableEntry], undecodedKeys: Set<String>)
  {
    var table: [String: TableEntry] = [:]
    var undecodedKeys = Set<String>()
    for line in TranscriptLines.read(path: path) {
      switch line.text {
      case .failure(var error):
        error.split = split
        if let key = error.utteranceId { undecodedKeys.insert(key) }
        rejections.append(error)
      case .success(let text):
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty { continue }
        let key = String(trimmed.prefix { $0 != " " && $0 != "\t" })
        let value = String(trimmed.dropFirst(key.count)).trimmingCharacters(in: .whitespaces)
        if value.isEmpty && !allowEmptyValue {
          rejections.append(
            ItemError(.malformedTranscript, file: path, line: line.number, utteranceId: key, split: split,
              message: "expected `<key> <value>`"))
          continue
        }
        if let first = table[key] {
          rejections.append(
            ItemError(.duplicateId, file: path, line: line.number, utteranceId: key, split: split,
              message: "\(key) appears again (first on line \(first.line)); the first one is kept"))
          continue
        }
        table[key] = TableEntry(value: value, line: line.number)
      }
    }
    return (table, undecodedKeys)
  }
}
