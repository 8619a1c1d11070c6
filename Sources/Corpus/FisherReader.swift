import Audio
import DS2Core
import Foundation

/// Reads Fisher English Training (LDC2004S13 + LDC2005S13 speech, LDC2004T19 +
/// LDC2005T19 transcripts) in the directory structure LDC ships:
///
///     <root>/…/fe_03_p1_sph1/audio/000/fe_03_00001.sph      (2-channel 8 kHz NIST SPHERE)
///     <root>/…/fe_03_p1_tran/data/trans/000/fe_03_00001.txt
///
/// Every file named `fe_03_NNNNN.sph` (or `.wav`/`.flac`, e.g. converted with `sph2pipe`)
/// and `fe_03_NNNNN.txt` at any depth under `root` is found, so both parts may sit in
/// their LDC-numbered folders, in Kaldi's "one folder holding everything" or mounted as
/// the discs are named. Folders whose names start with `.` are not searched.
///
/// * **Turns.** Transcript lines are `<start> <end> <side>: <text>` with times in
///   seconds; `#` lines are comments. Each turn is one utterance, cut from its own
///   channel (side A = channel 0, side B = channel 1) from `start` for `end − start`.
/// * **Ids.** `fe_03_NNNNN-<side>-<start>-<end>`, times in centiseconds zero-padded to 6
///   digits (Kaldi's `fisher_data_prep.sh` form), e.g. `fe_03_00001-A-000738-000878`.
/// * **Speakers.** `fe_03_NNNNN-<side>` (a conversation side, as Kaldi).
/// * **Splits.** Fisher has no official held-out sets; by conversation number:
///   `dev` = 1–50, `test` = 51–100, `train` = every other conversation of both parts.
///   A split with no conversation under the root is missing.
/// * **Text.** `FisherText.normalize`; turns with `(( ))` spans are rejected as
///   `uncertain_transcript`, turns that normalize to nothing as `empty_transcript`.
/// * **Audio choice.** When a conversation has several audio files, the first that
///   libsndfile can decode is used, in the order FLAC, WAV, SPHERE, then path order.
///   Shorten-compressed SPHERE (as LDC ships it) is recognized from its text header; a
///   conversation with no other file is rejected once as `unsupported_encoding`, with
///   the conversion advice.
public struct FisherReader: CorpusReader, Sendable {
  public static let allSplits = ["train", "dev", "test"]
  /// Conversation numbers of the held-out splits.
  public static let devConversations = 1...50
  public static let testConversations = 51...100

  /// Audio extensions in order of preference.
  static let audioExtensions = ["flac", "wav", "sph"]

  public let root: String
  /// Threads that read conversations (transcripts, audio headers) at once.
  /// Lists on its threads.
  public let pool: WorkerPool

  public init(root: String, pool: WorkerPool = .serial) {
    self.root = root
    self.pool = pool
  }

  /// The split of conversation `fe_03_<number>`.
  public static func split(ofConversation number: Int) -> String {
    if devConversations.contains(number) { return "dev" }
    if testConversations.contains(number) { return "test" }
    return "train"
  }

  /// The files of one conversation found under the root, sorted by path.
  struct Conversation {
    var number: Int
    var transcripts: [String] = []
    var audio: [String: [String]] = [:]  // extension → paths
    var name: String { "fe_03_" + String(format: "%05d", number) }
  }

  public func list(splits: [String]) throws -> CorpusListing {
    try CorpusFiles.requireDirectory(root)
    let conversations = findConversations()
    var listing = CorpusListing()
    var present: [String] = []
    for split in splits {
      if conversations.contains(where: { Self.split(ofConversation: $0.number) == split }) {
        present.append(split)
      } else {
        listing.missingSplits.append(split)
      }
    }
    guard !present.isEmpty else {
      throw CorpusFiles.noSplitsError(
        root: root, splits: splits, searched: "fe_03_NNNNN.sph/.txt files; splits are train, dev, test",
        found: conversations.isEmpty ? [] : ["\(conversations.count) conversations, none in those splits"])
    }
    // Conversations are read on the pool's threads and merged in conversation order, so the
    // listing does not depend on the thread count.
    for split in present {
      let ofSplit = conversations.filter { Self.split(ofConversation: $0.number) == split }
      let parts = try pool.map(ofSplit.count) { [ofSplit] index in
        let conversation = ofSplit[index]
        var part = CorpusListing()
        try listConversation(conversation, split: split, into: &part.sources, rejections: &part.rejections)
        return part
      }
      listing.sources += parts.flatMap(\.sources).sortedById()
      listing.rejections += parts.flatMap(\.rejections)
    }
    return listing
  }

  /// Every `fe_03_NNNNN.{sph,wav,flac,txt}` under the root, grouped by conversation
  /// number, in number order.
  func findConversations() -> [Conversation] {
    var byNumber: [Int: Conversation] = [:]
    guard let enumerator = FileManager.default.enumerator(atPath: root) else { return [] }
    var relativePaths: [String] = []
    while let relative = enumerator.nextObject() as? String {
      let name = (relative as NSString).lastPathComponent
      if name.hasPrefix(".") {
        if CorpusFiles.isDirectory(root + "/" + relative) { enumerator.skipDescendants() }
        continue
      }
      relativePaths.append(relative)
    }
    for relative in relativePaths.sorted(by: utf8Precedes) {
      let name = (relative as NSString).lastPathComponent
      guard let (number, fileExtension) = Self.parseFileName(name) else { continue }
      let path = root + "/" + relative
      guard CorpusFiles.isFile(path) else { continue }
      var conversation = byNumber[number] ?? Conversation(number: number)
      if fileExtension == "txt" {
        conversation.transcripts.append(path)
      } else {
        conversation.audio[fileExtension, default: []].append(path)
      }
      byNumber[number] = conversation
    }
    return byNumber.keys.sorted().map { byNumber[$0]! }
  }

  /// `fe_03_00001.sph` → (1, "sph"); nil for other names.
  static func parseFileName(_ name: String) -> (Int, String)? {
    let parts = name.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 2, parts[0].hasPrefix("fe_03_") else { return nil }
    let digits = parts[0].dropFirst(6)
    guard digits.count == 5, digits.allSatisfy(\.isASCII), let number = Int(digits) else { return nil }
    let fileExtension = String(parts[1])
    guard fileExtension == "txt" || audioExtensions.contains(fileExtension) else { return nil }
    return (number, fileExtension)
  }

  private func listConversation(
    _ conversation: Conversation, split: String, into sources: inout [UtteranceSource], rejections: inout [ItemError]
  ) throws {
    let name = conversation.name
    for extra in conversation.transcripts.dropFirst() {
      rejections.append(
        ItemError(.duplicateId, file: extra, split: split,
          message: "a second transcript of \(name); \(conversation.transcripts[0]) is used"))
    }
    var candidates: [String] = []
    for fileExtension in Self.audioExtensions { candidates += conversation.audio[fileExtension] ?? [] }
    guard let transcript = conversation.transcripts.first else {
      // One rejection per conversation, naming its preferred audio file.
      rejections.append(
        ItemError(.missingTranscript, file: candidates[0], split: split, message: "no \(name).txt under \(root)"))
      return
    }
    let (turns, problems) = try Self.readTurns(transcriptPath: transcript, conversation: name, split: split)
    guard let firstCandidate = candidates.first else {
      rejections += problems
      rejections.append(
        ItemError(.missingAudio, file: transcript, split: split,
          message: "no \(name).sph (or .wav/.flac) under \(root); its \(turns.count) turns are skipped"))
      return
    }
    // The first file libsndfile can decode; LDC's own files are shorten-compressed.
    guard let audio = candidates.first(where: { AudioDecoder.unsupportedEncoding(path: $0) == nil }) else {
      var unsupported = AudioDecoder.unsupportedEncoding(path: firstCandidate)!
      rejections += problems
      unsupported.split = split
      unsupported.message += "; all \(turns.count) turns of \(name) are skipped "
        + "(put the converted file anywhere under the corpus root; see docs/CORPORA.md)"
      rejections.append(unsupported)
      return
    }
    rejections += problems
    for turn in turns {
      var source = turn
      source.audioPath = audio
      sources.append(source)
    }
  }

  /// Parses one transcript into turns (audio path left empty) and line problems.
  /// - Throws: `ConfigurationError` when the file cannot be read at all.
  static func readTurns(transcriptPath: String, conversation: String, split: String) throws -> (
    [UtteranceSource], [ItemError]
  ) {
    var turns: [UtteranceSource] = []
    var problems: [ItemError] = []
    var seen = Set<String>()
    for line in TranscriptLines.read(path: transcriptPath) {
      let text: String
      switch line.text {
      case .failure(var error):
        error.split = split
        error.utteranceId = nil
        problems.append(error)
        continue
      case .success(let decoded): text = decoded
      }
      let trimmed = text.trimmingCharacters(in: .whitespaces)
      if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
      func reject(_ reason: RejectionReason, _ id: String?, _ message: String) {
        problems.append(
          ItemError(reason, file: transcriptPath, line: line.number, utteranceId: id, split: split, message: message))
      }
      guard let turn = FisherTurn(line: trimmed) else {
        reject(.malformedTranscript, nil, "expected `<start> <end> <A|B>: <text>` with times in seconds, end after start")
        continue
      }
      let id = "\(conversation)-\(turn.side)-\(centisecondsLabel(turn.startSeconds))-\(centisecondsLabel(turn.endSeconds))"
      if FisherText.isUncertain(turn.text) {
        reject(.uncertainTranscript, id, "turn marks speech as unintelligible or uncertain with (( )): \"\(turn.text)\"")
        continue
      }
      let normalized = FisherText.normalize(turn.text)
      if normalized.isEmpty {
        reject(.emptyTranscript, id, "turn \"\(turn.text)\" has no words after removing markup")
        continue
      }
      guard seen.insert(id).inserted else {
        reject(.duplicateId, id, "a second turn with the same side and times; the first one is kept")
        continue
      }
      turns.append(
        UtteranceSource(
          id: id, split: split, audioPath: "", channel: turn.side == "A" ? 0 : 1, startSeconds: turn.startSeconds,
          durationSeconds: turn.endSeconds - turn.startSeconds, transcript: normalized,
          speaker: "\(conversation)-\(turn.side)", transcriptPath: transcriptPath, transcriptLine: line.number))
    }
    return (turns, problems)
  }
}

/// One parsed line `7.38 8.78 A: an- so the topic is`.
struct FisherTurn {
  var startSeconds: Double
  var endSeconds: Double
  /// `A` or `B`.
  var side: String
  var text: String

  /// Parses a non-comment transcript line; nil when it is not a well-formed turn
  /// (times must be finite, start ≥ 0, end > start; the side `A:` or `B:`).
  init?(line: String) {
    let fields = line.split(maxSplits: 2, omittingEmptySubsequences: true) { $0 == " " || $0 == "\t" }
    guard fields.count == 3, let start = Double(fields[0]), let end = Double(fields[1]),
      start.isFinite, end.isFinite, start >= 0, end > start
    else { return nil }
    let rest = fields[2]
    guard rest.hasPrefix("A:") || rest.hasPrefix("B:") else { return nil }
    startSeconds = start
    endSeconds = end
    side = String(rest.prefix(1))
    text = String(rest.dropFirst(2)).trimmingCharacters(in: .whitespaces)
  }
}

/// Text normalization of Fisher transcripts (LDC quick-transcription markup) into the
/// English character vocabulary.
public enum FisherText {
  /// True when the turn has an unintelligible `(( ))` or uncertain `(( words ))` span.
  /// Such turns are dropped (Kaldi's `fisher_data_prep.sh` drops every line with `((`):
  /// their audio holds speech the labels would not spell.
  public static func isUncertain(_ text: String) -> Bool {
    text.contains("((") || text.contains("))")
  }

  /// The rule, in order:
  ///
  /// 1. Bracketed events — `[laughter]`, `[laugh]`, `[noise]`, `[mn]`, `[sigh]`,
  ///    `[cough]`, `[breath]`, `[lipsmack]`, `[[skip]]` and any other `[…]` span — are
  ///    removed (replaced by a space). The vocabulary has no noise symbols.
  /// 2. Spelled letters and acronyms: `._` becomes a space and every other `.` is
  ///    removed, so `t._v.` → `t v`, `a.` → `a` (each spoken letter is one word;
  ///    `u._s.` stays distinct from the word `us`).
  /// 3. Hyphens: at the start or end of a word (partial words `th-`, `-tion`) they are
  ///    removed and the letters kept; inside a word (`x-ray`) they become a space.
  /// 4. `_ ? ! , ; : "` become spaces.
  /// 5. `EnglishText.normalize`: A–Z → a–z, whitespace runs → one space, trimmed.
  ///
  /// Anything else (digits, other symbols) is left for the vocabulary to reject by
  /// name. An empty result means the turn had no words.
  public static func normalize(_ text: String) -> String {
    // 1. Bracketed events, nesting allowed.
    var withoutEvents = ""
    var depth = 0
    for character in text {
      if character == "[" {
        depth += 1
        withoutEvents.append(" ")
      } else if character == "]" && depth > 0 {
        depth -= 1
      } else if depth == 0 {
        withoutEvents.append(character)
      }
    }
    // 2. Spelled letters and acronyms.
    let letters = withoutEvents.replacingOccurrences(of: "._", with: " ").replacingOccurrences(of: ".", with: "")
    // 4. Punctuation that separates words.
    let separators: Set<Character> = ["_", "?", "!", ",", ";", ":", "\""]
    let spaced = String(letters.map { separators.contains($0) ? " " : $0 })
    // 3. Hyphens, word by word.
    let words = spaced.split(whereSeparator: { $0.isWhitespace }).map { word -> String in
      let trimmed = word.drop(while: { $0 == "-" }).reversed().drop(while: { $0 == "-" }).reversed()
      return String(trimmed).replacingOccurrences(of: "-", with: " ")
    }
    // 5.
    return EnglishText.normalize(words.joined(separator: " "))
  }
}
