import DS2Core
import Foundation

/// Reads AISHELL-1 as OpenSLR ships it (SLR33, `data_aishell.tgz` unpacked once):
///
///     <root>/data_aishell/transcript/aishell_transcript_v0.8.txt
///     <root>/data_aishell/wav/S0002.tar.gz …                  (one archive per speaker, as shipped)
///     <root>/data_aishell/wav/{train,dev,test}/<speaker>/<id>.wav   (16 kHz mono)
///
/// `root` may be the folder holding `data_aishell/` or `data_aishell/` itself.
///
/// * **Archives.** Per-speaker `*.tar.gz` in `wav/` are unpacked beside themselves, into
///   `wav/<split>/<speaker>/`, the layout Kaldi's download script leaves
///   (`AISHELLArchives.unpack`). This happens once; later runs find the folders.
/// * **Transcripts.** Lines `<id> <word> <word> …` (words are space-separated
///   characters); text is normalized with `MandarinText.normalize`.
/// * **Ids and speakers.** The file name without `.wav` (e.g. `BAC009S0002W0122`); the
///   speaker is the folder name (`S0002`).
/// * **Untranscribed audio.** WAVs without a transcript line (the real corpus has a few
///   hundred) are skipped and counted as `missing_transcript`.
/// * **Lines without audio.** Reported as `missing_audio` when the speaker's folder is
///   in a requested split (so that split lost an utterance); lines of speakers in other
///   splits, or whose archive failed to unpack, are not reported again.
public struct AISHELLReader: CorpusReader {
  public static let allSplits = ["train", "dev", "test"]
  static let transcriptName = "aishell_transcript_v0.8.txt"

  public let root: String
  /// Its threads run one `tar` each when archives are unpacked.
  public var pool: WorkerPool
  /// Told the number of archives and the `wav` folder before a pass unpacks any (the
  /// first run on a downloaded corpus writes about 15 GB there).
  public var willUnpack: ((_ archives: Int, _ wavDirectory: String) -> Void)?
  /// False for a dry run: archives not unpacked yet are read as streams (their members'
  /// sizes and headers, `AISHELLArchives.readPacked`) and nothing is written.
  public var unpacksArchives = true

  public init(
    root: String, pool: WorkerPool = .serial,
    willUnpack: ((_ archives: Int, _ wavDirectory: String) -> Void)? = nil
  ) {
    self.root = root
    self.pool = pool
    self.willUnpack = willUnpack
  }

  /// The `data_aishell` folder.
  var base: String {
    let nested = root + "/data_aishell"
    return CorpusFiles.isDirectory(nested) ? nested : root
  }

  /// One WAV found in a split folder.
  struct AudioFile {
    var split: String
    var speaker: String
    var path: String
    var packed: PackedAudio? = nil
  }

  public func list(splits: [String]) throws -> CorpusListing {
    try CorpusFiles.requireDirectory(root)
    let base = self.base
    let wavDirectory = base + "/wav"
    let transcriptPath = base + "/transcript/" + Self.transcriptName
    guard CorpusFiles.isDirectory(wavDirectory) else {
      throw ConfigurationError("AISHELL-1 root \(root) has no data_aishell/wav folder (looked for \(wavDirectory))")
    }
    guard CorpusFiles.isFile(transcriptPath) else {
      throw ConfigurationError("AISHELL-1 root \(root) has no transcript file \(transcriptPath)")
    }
    var listing = CorpusListing()
    var packed: [AISHELLArchives.Member] = []
    if unpacksArchives {
      let announce = willUnpack
      listing.rejections += try AISHELLArchives.unpack(
        wavDirectory: wavDirectory, pool: pool, willUnpack: { announce?($0, wavDirectory) })
    } else {
      let read = try AISHELLArchives.readPacked(wavDirectory: wavDirectory, pool: pool)
      packed = read.members
      listing.rejections += read.errors
    }

    var present: [String] = []
    for split in splits {
      if CorpusFiles.isDirectory(wavDirectory + "/" + split) || packed.contains(where: { $0.split == split }) {
        present.append(split)
      } else {
        listing.missingSplits.append(split)
      }
    }
    guard !present.isEmpty else {
      throw CorpusFiles.noSplitsError(
        root: root, splits: splits, searched: "\(wavDirectory)/<split>/",
        found: CorpusFiles.sortedEntries(wavDirectory).filter { !$0.hasPrefix(".") })
    }

    // Audio of the requested splits, by id.
    var audio: [String: AudioFile] = [:]
    var speakerSplit: [String: String] = [:]
    for split in present {
      let splitPath = wavDirectory + "/" + split
      for speaker in CorpusFiles.sortedEntries(splitPath) where !speaker.hasPrefix(".") {
        let speakerPath = splitPath + "/" + speaker
        guard CorpusFiles.isDirectory(speakerPath) else { continue }
        speakerSplit[speaker] = split
        for name in CorpusFiles.sortedEntries(speakerPath) where name.lowercased().hasSuffix(".wav") {
          let id = String(name.dropLast(4))
          let file = AudioFile(split: split, speaker: speaker, path: speakerPath + "/" + name)
          if let first = audio[id] {
            listing.rejections.append(
              ItemError(.duplicateId, file: file.path, utteranceId: id, split: split,
                message: "a second audio file for \(id); \(first.path) is used"))
          } else {
            audio[id] = file
          }
        }
      }
    }
    // Members of packed archives, where unpacking would put them.
    for member in packed where present.contains(member.split) {
      let id = String(member.name.dropLast(4))
      let file = AudioFile(
        split: member.split, speaker: member.speaker,
        path: wavDirectory + "/" + member.split + "/" + member.speaker + "/" + member.name, packed: member.packed)
      speakerSplit[member.speaker] = member.split
      if let first = audio[id] {
        listing.rejections.append(
          ItemError(.duplicateId, file: file.path, utteranceId: id, split: member.split,
            message: "a second audio file for \(id); \(first.path) is used"))
      } else {
        audio[id] = file
      }
    }

    var sources: [UtteranceSource] = []
    var transcribed = Set<String>()
    for line in TranscriptLines.read(path: transcriptPath) {
      switch line.text {
      case .failure(var error):
        // Reported when the line may belong to a requested split.
        if let id = error.utteranceId {
          if let file = audio[id] {
            error.split = file.split
            transcribed.insert(id)
          } else if let speaker = Self.speaker(ofId: id), let split = speakerSplit[speaker] {
            error.split = split
          } else {
            continue
          }
        }
        listing.rejections.append(error)
      case .success(let text):
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty { continue }
        let id = String(trimmed.prefix { $0 != " " && $0 != "\t" })
        let words = String(trimmed.dropFirst(id.count))
        guard let file = audio[id] else {
          if let speaker = Self.speaker(ofId: id), let split = speakerSplit[speaker] {
            listing.rejections.append(
              ItemError(.missingAudio, file: transcriptPath, line: line.number, utteranceId: id, split: split,
                message: "no \(id).wav in \(wavDirectory)/\(split)/\(speaker)"))
          }
          continue
        }
        guard transcribed.insert(id).inserted else {
          listing.rejections.append(
            ItemError(.duplicateId, file: transcriptPath, line: line.number, utteranceId: id, split: file.split,
              message: "a second transcript line for \(id); the first one is kept"))
          continue
        }
        let normalized = MandarinText.normalize(words)
        guard !normalized.isEmpty else {
          listing.rejections.append(
            ItemError(.malformedTranscript, file: transcriptPath, line: line.number, utteranceId: id, split: file.split,
              message: "expected `<utterance-id> <text>`"))
          continue
        }
        var source = UtteranceSource(
          id: id, split: file.split, audioPath: file.path, transcript: normalized, speaker: file.speaker,
          transcriptPath: transcriptPath, transcriptLine: line.number)
        source.packed = file.packed
        sources.append(source)
      }
    }
    for (id, file) in audio.sorted(by: { utf8Precedes($0.key, $1.key) }) where !transcribed.contains(id) {
      listing.rejections.append(
        ItemError(.missingTranscript, file: file.path, utteranceId: id, split: file.split,
          message: "no line for \(id) in \(transcriptPath)"))
    }
    for split in present {
      listing.sources += sources.filter { $0.split == split }.sortedById()
    }
    return listing
  }

  /// The speaker named inside an AISHELL-1 id: `BAC009S0002W0122` → `S0002`.
  static func speaker(ofId id: String) -> String? {
    let characters = Array(id)
    guard characters.count >= 11, id.hasPrefix("BAC009"), characters[6] == "S" else { return nil }
    return String(characters[6..<11])
  }
}

/// Text normalization for Mandarin character vocabularies.
public enum MandarinText {
  /// The rule: every whitespace character is removed (AISHELL's transcripts separate
  /// words with spaces; the labels are characters). Nothing else changes: each
  /// remaining Unicode scalar is one label, and one outside the vocabulary is rejected
  /// by name.
  public static func normalize(_ text: String) -> String {
    String(String.UnicodeScalarView(text.unicodeScalars.filter { !$0.properties.isWhitespace }))
  }
}
