import DS2Core
import Foundation

/// Unpacks AISHELL-1's per-speaker archives (`data_aishell/wav/S0002.tar.gz`, each
/// holding `<split>/S0002/*.wav`) with the system `tar`, beside the archives.
///
/// * **Where.** Into `wav/<split>/<speaker>/`, exactly where Kaldi's
///   `download_and_untar.sh` puts them; the archives are kept.
/// * **Idempotent.** An archive counts as unpacked when a folder named after it
///   (`S0002`) exists in any split folder of `wav/`; it is then not opened again.
/// * **Safe to interrupt.** Each archive is extracted into a hidden staging folder
///   `wav/.unpacking-<speaker>/` and its speaker folder is moved into place by one
///   rename, so a speaker folder is either complete or absent. Staging folders left by
///   an interrupted run are removed (and their archives redone). Two first runs on the
///   same corpus copy must not overlap.
/// * **Failures.** A corrupt or truncated archive, or one that does not hold
///   `<split>/<speaker>/`, becomes an `unreadable_audio` error naming the archive; the
///   other speakers are unaffected.
public enum AISHELLArchives {
  static let suffix = ".tar.gz"
  static let stagingPrefix = ".unpacking-"

  /// Unpacks every `*.tar.gz` in `wavDirectory` that is not unpacked yet, one `tar` per thread of `pool`.
  /// - Parameter willUnpack: called once with the number of archives, before any is
  ///   unpacked (not called when there is nothing to do).
  /// - Returns: one error per archive that could not be unpacked, in archive name order.
  /// - Throws: `ConfigurationError` when `tar` cannot be run or `wavDirectory` is not
  ///   writable.
  public static func unpack(wavDirectory: String, pool: WorkerPool, willUnpack: ((Int) -> Void)? = nil) throws -> [ItemError] {
    let (pending, special) = pendingArchives(in: wavDirectory)
    // Staging folders of finished speakers (a run stopped between the move and the
    // clean-up); those of pending speakers are cleared when they are redone.
    for entry in CorpusFiles.sortedEntries(wavDirectory) where entry.hasPrefix(stagingPrefix) {
      let speaker = String(entry.dropFirst(stagingPrefix.count))
      if isUnpacked(speaker: speaker, in: wavDirectory) {
        try? FileManager.default.removeItem(atPath: wavDirectory + "/" + entry)
      }
    }
    guard !pending.isEmpty else { return special }
    guard FileManager.default.isWritableFile(atPath: wavDirectory) else {
      throw ConfigurationError(
        "\(wavDirectory) holds \(pending.count) packed speaker archive(s) to unpack, but the folder is not writable; "
          + "make it writable, or unpack them there once: cd \(wavDirectory) && for a in *.tar.gz; do tar -xzf \"$a\"; done")
    }
    willUnpack?(pending.count)
    return try special + pool.map(pending.count) { index in try unpackOne(archive: pending[index], in: wavDirectory) }
      .compactMap { $0 }
  }

  /// The archives of `wavDirectory` not unpacked yet, in name order, and one error for each
  /// `*.tar.gz` that is not a regular file (a FIFO, a device, a socket: never opened, since
  /// reading one may wait forever).
  static func pendingArchives(in wavDirectory: String) -> (archives: [String], special: [ItemError]) {
    var archives: [String] = []
    var special: [ItemError] = []
    for name in CorpusFiles.sortedEntries(wavDirectory) where name.hasSuffix(suffix) && !name.hasPrefix(".") {
      let path = wavDirectory + "/" + name
      let speaker = String(name.dropLast(suffix.count))
      var status = stat()
      guard stat(path, &status) == 0, (status.st_mode & S_IFMT) != S_IFDIR else { continue }
      guard !isUnpacked(speaker: speaker, in: wavDirectory) else { continue }
      guard (status.st_mode & S_IFMT) == S_IFREG else {
        special.append(
          ItemError(
            .unreadableAudio, file: path,
            message: "not a regular file (\(RegularFile.typeName(status.st_mode))); not opened; the utterances of speaker \(speaker) are skipped"))
        continue
      }
      archives.append(name)
    }
    return (archives, special)
  }

  /// A WAV inside a packed archive: where unpacking would put it, and what was read of it.
  struct Member {
    var split: String
    var speaker: String
    var name: String
    var packed: PackedAudio
  }

  /// Reads the archives not unpacked yet without writing anything: each is decompressed
  /// as a stream (`gzip -dc`, one per thread of `pool`) and its tar headers parsed; of each
  /// `<split>/<speaker>/*.wav` member it keeps the size and first bytes (for a header
  /// probe), and the whole bytes of the first `keptPerArchive` members of the first
  /// `keptArchives` archives (for a dry run's calibration).
  /// - Returns: the members in archive order, and one error per archive that is corrupt,
  ///   truncated, or holds anything but `<split>/<speaker>/`, as unpacking would report it.
  /// - Throws: `ConfigurationError` when `gzip` cannot be run.
  static func readPacked(
    wavDirectory: String, pool: WorkerPool, keptArchives: Int = 8, keptPerArchive: Int = 32
  ) throws -> (members: [Member], errors: [ItemError]) {
    let (pending, special) = pendingArchives(in: wavDirectory)
    let results = try pool.map(pending.count) { index -> Result<[Member], ItemError> in
      try readArchive(
        wavDirectory + "/" + pending[index], speaker: String(pending[index].dropLast(suffix.count)),
        keeping: index < keptArchives ? keptPerArchive : 0)
    }
    var members: [Member] = []
    var errors = special
    for result in results {
      switch result {
      case .success(let found): members += found
      case .failure(let error): errors.append(error)
      }
    }
    return (members, errors)
  }

  /// One archive's WAV members, read from `gzip -dc`'s output.
  static func readArchive(_ archivePath: String, speaker: String, keeping: Int) throws -> Result<[Member], ItemError> {
    func failure(_ message: String) -> Result<[Member], ItemError> {
      .failure(
        ItemError(.unreadableAudio, file: archivePath, message: "\(message); the utterances of speaker \(speaker) are skipped"))
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["gzip", "-dc", "--", archivePath]
    let output = Pipe()
    let errorPipe = Pipe()
    process.standardOutput = output
    process.standardError = errorPipe
    process.standardInput = FileHandle.nullDevice
    do { try process.run() } catch {
      throw ConfigurationError("cannot run gzip to read AISHELL-1 archives: \(error.localizedDescription)")
    }
    var stream = TarStream(handle: output.fileHandleForReading)
    var members: [Member] = []
    var problem: String?
    do {
      // Whole members are kept for the first `keeping` WAVs, up to 8 MiB per archive.
      var keptBytes = 0
      while let entry = try stream.next(
        keepingHeader: PackedAudio.headerLimit,
        keepingAll: { size in
          guard members.count < keeping, keptBytes + size <= 8 << 20 else { return false }
          keptBytes += size
          return true
        })
      {
        guard entry.kind != .directory else { continue }
        let parts = entry.name.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
          .filter { $0 != "." }
        guard parts.count == 3, parts[1] == speaker else {
          problem = "expected the archive to hold <split>/\(speaker)/ only, found \(entry.name)"
          break
        }
        guard parts[2].lowercased().hasSuffix(".wav") else { continue }
        var packed = PackedAudio(
          archive: archivePath, member: entry.name, fileBytes: entry.size, header: entry.header, contents: entry.contents)
        if case .other(let kind) = entry.kind { packed.notRegular = kind }
        members.append(Member(split: parts[0], speaker: speaker, name: parts[2], packed: packed))
      }
    } catch {
      problem = "\(error)"
    }
    // Refused part-way: stop gzip rather than decompress the rest.
    if problem != nil && process.isRunning { process.terminate() }
    while let chunk = try? output.fileHandleForReading.read(upToCount: 1 << 16), !chunk.isEmpty {}
    let errorText = String(decoding: errorPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    if process.terminationStatus == 127 {
      throw ConfigurationError("cannot run gzip to read AISHELL-1 archives: gzip is not installed (apt-get install gzip)")
    }
    if let problem { return failure(problem) }
    guard process.terminationStatus == 0 else {
      let detail = errorText.split(separator: "\n").prefix(3).joined(separator: " / ")
      return failure("gzip -dc failed with status \(process.terminationStatus) (corrupt or truncated archive?): \(detail)")
    }
    if members.isEmpty && !stream.sawEntries { return failure("the archive is empty") }
    return .success(members)
  }

  /// True when a split folder of `wavDirectory` holds a folder named `speaker`.
  static func isUnpacked(speaker: String, in wavDirectory: String) -> Bool {
    CorpusFiles.sortedEntries(wavDirectory).contains { entry in
      !entry.hasPrefix(".") && CorpusFiles.isDirectory(wavDirectory + "/" + entry + "/" + speaker)
    }
  }

  /// Extracts one archive through its staging folder.
  /// - Throws: `ConfigurationError` when `tar` cannot be started.
  /// - Returns: nil when the speaker folder is in place, else the archive's error.
  static func unpackOne(archive: String, in wavDirectory: String) throws -> ItemError? {
    let fileManager = FileManager.default
    let archivePath = wavDirectory + "/" + archive
    let speaker = String(archive.dropLast(suffix.count))
    let staging = wavDirectory + "/" + stagingPrefix + speaker
    func failure(_ message: String) -> ItemError {
      try? fileManager.removeItem(atPath: staging)
      return ItemError(.unreadableAudio, file: archivePath, message: "\(message); the utterances of speaker \(speaker) are skipped")
    }
    do {
      if fileManager.fileExists(atPath: staging) { try fileManager.removeItem(atPath: staging) }
      try fileManager.createDirectory(atPath: staging, withIntermediateDirectories: false)
    } catch {
      return failure("cannot create the staging folder \(staging): \(error.localizedDescription)")
    }

    let (status, errorOutput) = try runTar(["-xzf", archivePath, "-C", staging, "--no-same-owner"])
    guard status == 0 else {
      let detail = errorOutput.split(separator: "\n").prefix(3).joined(separator: " / ")
      return failure("tar -xzf failed with status \(status) (corrupt or truncated archive?): \(detail)")
    }

    // Expect <split>/<speaker>/ and nothing else.
    let splits = CorpusFiles.sortedEntries(staging)
    var moves: [(String, String)] = []
    for split in splits {
      let contents = CorpusFiles.sortedEntries(staging + "/" + split)
      guard CorpusFiles.isDirectory(staging + "/" + split), contents == [speaker],
        CorpusFiles.isDirectory(staging + "/" + split + "/" + speaker)
      else {
        return failure("expected the archive to hold <split>/\(speaker)/ only, found \(split)/\(contents.joined(separator: ", "))")
      }
      moves.append((staging + "/" + split + "/" + speaker, wavDirectory + "/" + split + "/" + speaker))
    }
    guard !moves.isEmpty else { return failure("the archive is empty") }
    do {
      for (from, to) in moves {
        try fileManager.createDirectory(
          atPath: (to as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try fileManager.moveItem(atPath: from, toPath: to)
      }
      try fileManager.removeItem(atPath: staging)
    } catch {
      return failure("cannot move the unpacked folder into place: \(error.localizedDescription)")
    }
    return nil
  }

  /// Runs `tar` (found on PATH) and returns its exit status and standard error.
  /// - Throws: `ConfigurationError` when it cannot be started.
  static func runTar(_ arguments: [String]) throws -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["tar"] + arguments
    let errorPipe = Pipe()
    process.standardError = errorPipe
    process.standardOutput = FileHandle.nullDevice
    do {
      try process.run()
    } catch {
      throw ConfigurationError("cannot run tar to unpack AISHELL-1 archives: \(error.localizedDescription)")
    }
    let errorData = errorPipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    if process.terminationStatus == 127 {
      throw ConfigurationError("cannot run tar to unpack AISHELL-1 archives: tar is not installed (apt-get install tar gzip)")
    }
    return (process.terminationStatus, String(decoding: errorData, as: UTF8.self))
  }
}

/// A tar archive read from a pipe, entry by entry (ustar, GNU long names, pax paths).
struct TarStream {
  enum Kind: Equatable {
    case file, directory
    /// A link, FIFO or device: what it is.
    case other(String)
  }

  struct Entry {
    var name: String
    var size: Int
    var kind: Kind
    var header: [UInt8]
    var contents: [UInt8]?
  }

  struct Damaged: Error, CustomStringConvertible {
    var description: String
  }

  let handle: FileHandle
  var buffer: [UInt8] = []
  var offset = 0
  var sawEntries = false

  init(handle: FileHandle) { self.handle = handle }

  /// Exactly `count` bytes, or fewer at the end of the stream.
  mutating func read(_ count: Int) throws -> [UInt8] {
    while buffer.count - offset < count {
      guard let chunk = try handle.read(upToCount: max(1 << 16, count)), !chunk.isEmpty else { break }
      if offset > 0 {
        buffer.removeFirst(offset)
        offset = 0
      }
      buffer.append(contentsOf: chunk)
    }
    let available = min(count, buffer.count - offset)
    defer { offset += available }
    return Array(buffer[offset..<(offset + available)])
  }

  /// Skips `count` bytes; throws when the stream ends first.
  mutating func skip(_ count: Int) throws {
    var left = count
    while left > 0 {
      let got = try read(min(left, 1 << 20)).count
      guard got > 0 else { throw Damaged(description: "the archive ends inside an entry (truncated)") }
      left -= got
    }
  }

  /// The next entry (its data consumed: the first `keepingHeader` bytes kept, all kept when
  /// `keepingAll`, given its size, says so for a regular file), or nil at the end of the
  /// archive.
  mutating func next(keepingHeader: Int, keepingAll: (Int) -> Bool) throws -> Entry? {
    var longName: String?
    while true {
      let block = try read(512)
      if block.isEmpty || block.allSatisfy({ $0 == 0 }) { return nil }
      guard block.count == 512 else { throw Damaged(description: "the archive ends inside a header (truncated)") }
      sawEntries = true
      guard Self.checksumMatches(block) else { throw Damaged(description: "a tar header's checksum does not match (not a tar archive?)") }
      let size = try Self.size(block)
      guard size <= 1 << 40 else { throw Damaged(description: "a tar entry of \(size) bytes") }
      let padded = (size + 511) / 512 * 512
      let type = block[156]
      // Extended headers: a GNU long name (L) or link name (K), pax headers (x, and g for
      // the whole archive); only a long name or a pax path applies, to the next entry.
      if [UInt8(ascii: "L"), UInt8(ascii: "K"), UInt8(ascii: "x"), UInt8(ascii: "g")].contains(type) {
        guard size <= 1 << 20 else { throw Damaged(description: "an extended header of \(size) bytes") }
        let data = try read(padded)
        guard data.count == padded else { throw Damaged(description: "the archive ends inside an entry (truncated)") }
        let text = String(decoding: data[0..<size].prefix { $0 != 0 }, as: UTF8.self)
        if type == UInt8(ascii: "L") {
          longName = text
        } else if type == UInt8(ascii: "x"), let path = Self.paxPath(text) {
          longName = path
        }
        continue
      }
      var name = longName ?? Self.string(block[0..<100])
      if longName == nil, block[257..<262].elementsEqual("ustar".utf8) {
        let prefix = Self.string(block[345..<500])
        if !prefix.isEmpty { name = prefix + "/" + name }
      }
      let isFile = type == UInt8(ascii: "0") || type == 0 || type == UInt8(ascii: "7")
      let kinds: [UInt8: String] = [
        UInt8(ascii: "1"): "hard link", UInt8(ascii: "2"): "symbolic link", UInt8(ascii: "3"): "character device",
        UInt8(ascii: "4"): "block device", UInt8(ascii: "6"): "FIFO",
      ]
      let kind: Kind = isFile ? .file : type == UInt8(ascii: "5") ? .directory : .other(kinds[type] ?? "tar entry type \(type)")
      var entry = Entry(name: name, size: size, kind: kind, header: [], contents: nil)
      if isFile && keepingAll(size) {
        let data = try read(padded)
        guard data.count == padded else { throw Damaged(description: "the archive ends inside \(name) (truncated)") }
        entry.contents = Array(data[0..<size])
        entry.header = Array(data[0..<min(size, keepingHeader)])
      } else {
        let head = try read(min(padded, (keepingHeader + 511) / 512 * 512))
        entry.header = Array(head.prefix(min(size, keepingHeader)))
        try skip(padded - head.count)
      }
      return entry
    }
  }

  static func string(_ bytes: ArraySlice<UInt8>) -> String {
    String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
  }

  /// The size field: octal digits, or base-256 when its first byte has the high bit set.
  static func size(_ block: [UInt8]) throws -> Int {
    let field = block[124..<136]
    var value = 0
    if field.first! & 0x80 != 0 {
      for (index, byte) in field.enumerated() {
        let digit = Int(index == 0 ? byte & 0x7F : byte)
        guard value <= (Int.max >> 8) else { throw Damaged(description: "a tar entry's size does not fit") }
        value = value << 8 | digit
      }
      return value
    }
    for byte in field {
      if byte == 0 || byte == UInt8(ascii: " ") {
        if value > 0 { break } else { continue }
      }
      guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "7") else {
        throw Damaged(description: "a tar header's size field is not octal")
      }
      value = value * 8 + Int(byte - UInt8(ascii: "0"))
    }
    return value
  }

  /// The header checksum: the sum of its bytes with the checksum field read as spaces.
  static func checksumMatches(_ block: [UInt8]) -> Bool {
    var sum = 0
    for (index, byte) in block.enumerated() { sum += (148..<156).contains(index) ? 32 : Int(byte) }
    var stored = 0
    for byte in block[148..<156] where byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "7") {
      stored = stored * 8 + Int(byte - UInt8(ascii: "0"))
    }
    return sum == stored
  }

  /// The `path` record of a pax extended header (`<length> path=<value>\n` records).
  static func paxPath(_ text: String) -> String? {
    for line in text.split(separator: "\n") {
      guard let space = line.firstIndex(of: " ") else { continue }
      let record = line[line.index(after: space)...]
      if record.hasPrefix("path=") { return String(record.dropFirst(5)) }
    }
    return nil
  }
}
