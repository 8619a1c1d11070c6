import DS2Core
import Foundation

/// Reads LibriSpeech as OpenSLR ships it (SLR12):
///
///     <root>/LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
///     <root>/LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt
///     <root>/LibriSpeech/SPEAKERS.TXT
///
/// `root` may be the folder holding `LibriSpeech/` or `LibriSpeech/` itself. Transcript
/// lines are `<id> <TEXT>`; text is normalized with `EnglishText.normalize`.
public struct LibriSpeechReader: CorpusReader, Sendable {
  /// The seven parts of the full corpus.
  public static let allSplits = [
    "train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other", "test-clean", "test-other",
  ]

  public let root: String
  /// Threads that read speaker folders (chapters, transcripts) at once.
  /// Lists on its threads.
  public let pool: WorkerPool

  public init(root: String, pool: WorkerPool = .serial) {
    self.root = root
    self.pool = pool
  }

  /// The folder holding the split folders.
  var base: String {
    let nested = root + "/LibriSpeech"
    return CorpusFiles.isDirectory(nested) ? nested : root
  }

  /// Speaker id → sex (`M`/`F`) from SPEAKERS.TXT, when present.
  public func speakerSexes() -> [String: String] {
    guard let bytes = try? RegularFile.read(base + "/SPEAKERS.TXT", maxBytes: 64 << 20) else { return [:] }
    let data = Data(bytes)
    var sexes: [String: String] = [:]
    for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where !line.hasPrefix(";") {
      let fields = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
      if fields.count >= 2, !fields[0].isEmpty { sexes[fields[0]] = fields[1] }
    }
    return sexes
  }

  public func list(splits: [String]) throws -> CorpusListing {
    try CorpusFiles.requireDirectory(root)
    let base = self.base
    var listing = CorpusListing()
    let present = splits.filter { CorpusFiles.isDirectory(base + "/" + $0) }
    listing.missingSplits = splits.filter { !present.contains($0) }
    guard !present.isEmpty else {
      let found = CorpusFiles.sortedEntries(base)
      throw ConfigurationError(
        "corpus root \(root) holds none of the splits \(splits.joined(separator: ", ")) "
          + "(found: \(found.isEmpty ? "nothing" : found.joined(separator: ", ")))")
    }
    // Each speaker folder is read on its own, on the pool's threads; the results are
    // merged in folder order, so the listing does not depend on the thread count.
    var folders: [(split: String, speaker: String)] = []
    for split in present {
      do {
        folders += try CorpusFiles.listFolder(base + "/" + split, split: split).map { (split: split, speaker: $0) }
      } catch let error as ItemError {
        listing.rejections.append(error)
      }
    }
    let speakers = try pool.map(folders.count) { [folders] index -> CorpusListing in
      let folder = folders[index]
      return try listSpeaker(folder.speaker, split: folder.split, at: base + "/" + folder.split + "/" + folder.speaker)
    }
    for split in present {
      var sources: [UtteranceSource] = []
      for (folder, speaker) in zip(folders, speakers) where folder.split == split {
        sources += speaker.sources
        listing.rejections += speaker.rejections
      }
      listing.sources += sources.sortedById()
    }
    return listing
  }

  /// The utterances and rejections of one `<split>/<speaker>` folder (nothing when it is
  /// not a folder).
  private func listSpeaker(_ speaker: String, split: String, at speakerPath: String) throws -> CorpusListing {
    var listing = CorpusListing()
    guard CorpusFiles.isDirectory(speakerPath) else { return listing }
    let chapters: [String]
    do { chapters = try CorpusFiles.listFolder(speakerPath, split: split) } catch let error as ItemError {
      listing.rejections.append(error)
      return listing
    }
    for chapter in chapters where CorpusFiles.isDirectory(speakerPath + "/" + chapter) {
      let chapterPath = speakerPath + "/" + chapter
      let entries: [String]
      do { entries = try CorpusFiles.listFolder(chapterPath, split: split) } catch let error as ItemError {
        listing.rejections.append(error)
        continue
      }
      var audio = Set(entries.filter { $0.hasSuffix(".flac") }.map { String($0.dropLast(5)) })
      var matched = Set<String>()
      for transcript in entries where transcript.hasSuffix(".trans.txt") {
        let path = chapterPath + "/" + transcript
        for line in TranscriptLines.read(path: path) {
          switch line.text {
          case .failure(var error):
            error.split = split
            // The line's audio is accounted for by this rejection, not again as untranscribed.
            if let id = error.utteranceId, audio.remove(id) != nil { matched.insert(id) }
            listing.rejections.append(error)
          case .success(let text):
            guard let space = text.firstIndex(where: { $0 == " " || $0 == "\t" }), space != text.startIndex else {
              if !text.trimmingCharacters(in: .whitespaces).isEmpty {
                listing.rejections.append(
                  ItemError(.malformedTranscript, file: path, line: line.number, split: split,
                    message: "expected `<utterance-id> <TRANSCRIPT>`"))
              }
              continue
            }
            let id = String(text[..<space])
            let audioPath = chapterPath + "/" + id + ".flac"
            if matched.contains(id) {
              listing.rejections.append(
                ItemError(.duplicateId, file: path, line: line.number, utteranceId: id, split: split,
                  message: "a second transcript line for \(id); the first one is kept"))
              continue
            }
            guard audio.remove(id) != nil else {
              listing.rejections.append(
                ItemError(.missingAudio, file: path, line: line.number, utteranceId: id, split: split,
                  message: "no audio file \(id).flac beside the transcript"))
              continue
            }
            matched.insert(id)
            listing.sources.append(
              UtteranceSource(
                id: id, split: split, audioPath: audioPath,
                transcript: EnglishText.normalize(String(text[space...])), speaker: speaker,
                transcriptPath: path, transcriptLine: line.number))
          }
        }
      }
      for id in audio.sorted(by: utf8Precedes) {
        listing.rejections.append(
          ItemError(.missingTranscript, file: chapterPath + "/" + id + ".flac", utteranceId: id, split: split,
            message: "no line for \(id) in any *.trans.txt of \(chapterPath)"))
      }
    }
    return listing
  }
}

/// Line-by-line reading of transcript files that tolerates bad bytes: each line is
/// decoded on its own, so one non-UTF-8 line rejects that line only.
public enum TranscriptLines {
  public struct Line: Sendable {
    /// 1-based line number.
    public var number: Int
    /// The line without its terminator, or why it could not be decoded.
    public var text: Result<String, ItemError>
  }

  /// Reads `path`. A file that cannot be read (permissions, not a regular file, too large)
  /// gives one failed line (number 0) carrying `ItemError(.unreadableFile)`, so that every
  /// reader rejects it as an item and goes on.
  public static func read(path: String) -> [Line] {
    let data: [UInt8]
    do {
      data = try CorpusFiles.readRegularFile(path)
    } catch let error as ItemError {
      return [Line(number: 0, text: .failure(error))]
    } catch {
      return [Line(number: 0, text: .failure(ItemError(.unreadableFile, file: path, message: "\(error)")))]
    }
    var lines: [Line] = []
    var number = 0
    for raw in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
      number += 1
      var bytes = raw
      if bytes.last == UInt8(ascii: "\r") { bytes = bytes.dropLast() }
      if bytes.isEmpty { continue }
      if let text = String(validating: bytes, as: UTF8.self) {
        lines.append(Line(number: number, text: .success(text)))
      } else {
        // Name the utterance when the id before the first space is readable.
        let idBytes = bytes.prefix { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }
        let id = String(validating: idBytes, as: UTF8.self)
        lines.append(
          Line(
            number: number,
            text: .failure(
              ItemError(.nonUTF8Transcript, file: path, line: number, utteranceId: id, message: "line is not valid UTF-8"))))
      }
    }
    return lines
  }
}
