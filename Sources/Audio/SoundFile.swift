internal import CSndFile
import DS2Core
import Foundation

/// What a file's header says about its audio.
public struct AudioInfo: Sendable, Equatable {
  /// Frames (samples per channel) declared by the header.
  public var frames: Int
  public var sampleRateHertz: Int
  public var channels: Int
  /// Container and encoding, e.g. `FLAC/PCM_16`, `NIST/ULAW`.
  public var formatName: String

  public var durationSeconds: Double { Double(frames) / Double(sampleRateHertz) }
}

/// A libsndfile handle open for reading. Frees the handle in `deinit`.
///
/// Not Sendable: each thread opens its own.
final class SoundFile {
  let path: String
  let info: AudioInfo
  private let handle: OpaquePointer
  /// The bytes a handle opened from memory reads (kept alive as long as the handle).
  private let memory: MemoryStream?

  /// Opens `path` for reading: only a regular file (opened without blocking, so a FIFO or
  /// device named like audio is refused, never waited on). A header that declares no
  /// length (a streamed FLAC) is completed by decoding the file once, up to
  /// `AudioDecoder.maximumFrames`. The corresponding C function is `sf_open_fd`.
  /// - Throws: `ItemError` (`unreadable_audio`, or `unsupported_encoding` for shorten SPHERE).
  init(path: String) throws {
    let descriptor = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    guard descriptor >= 0 else {
      let reason = errno == ENOENT ? "no such file" : String(cString: strerror(errno))
      throw ItemError(.unreadableAudio, file: path, message: "cannot open: \(reason)")
    }
    var status = stat()
    guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
      let kind = RegularFile.typeName(status.st_mode)
      close(descriptor)
      throw ItemError(.unreadableAudio, file: path, message: "not a regular file (\(kind)); not opened")
    }
    _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) & ~O_NONBLOCK)
    var sfInfo = SF_INFO()
    guard let handle = sf_open_fd(descriptor, Int32(SFM_READ), &sfInfo, 1) else {
      let message = String(cString: sf_strerror(nil))
      throw Self.openError(path: path, libraryMessage: message)
    }
    (self.handle, self.path, self.memory) = (handle, path, nil)
    self.info = try Self.checkedInfo(sfInfo, handle: handle, path: path)
  }

  /// Opens audio held in memory: `bytes` are the first bytes of a file of `declaredBytes`
  /// (all of it, or only its header for a probe). Reads past `bytes` find the end of the
  /// file. `path` names it in errors. The corresponding C function is `sf_open_virtual`.
  /// - Throws: `ItemError(.unreadableAudio)`.
  init(bytes: [UInt8], declaredBytes: Int, path: String) throws {
    let stream = MemoryStream(bytes: bytes, declaredBytes: max(bytes.count, declaredBytes))
    var io = SF_VIRTUAL_IO(
      get_filelen: { user in sf_count_t(Unmanaged<MemoryStream>.fromOpaque(user!).takeUnretainedValue().declaredBytes) },
      seek: { offset, whence, user in Unmanaged<MemoryStream>.fromOpaque(user!).takeUnretainedValue().seek(Int(offset), whence) },
      read: { destination, count, user in
        Unmanaged<MemoryStream>.fromOpaque(user!).takeUnretainedValue().read(into: destination, count: Int(count))
      },
      write: { _, _, _ in 0 },
      tell: { user in sf_count_t(Unmanaged<MemoryStream>.fromOpaque(user!).takeUnretainedValue().position) })
    var sfInfo = SF_INFO()
    guard let handle = sf_open_virtual(&io, Int32(SFM_READ), &sfInfo, Unmanaged.passUnretained(stream).toOpaque()) else {
      throw ItemError(.unreadableAudio, file: path, message: "sf_open_virtual: \(String(cString: sf_strerror(nil)))")
    }
    (self.handle, self.path, self.memory) = (handle, path, stream)
    self.info = try Self.checkedInfo(sfInfo, handle: handle, path: path)
  }

  /// The header's description, checked, with the length counted when it declares none.
  private static func checkedInfo(_ sfInfo: SF_INFO, handle: OpaquePointer, path: String) throws -> AudioInfo {
    var frames = Int(sfInfo.frames)
    guard sfInfo.samplerate > 0, sfInfo.channels > 0, sfInfo.channels <= 1024 else {
      sf_close(handle)
      throw ItemError(
        .unreadableAudio, file: path,
        message: "header declares \(sfInfo.channels) channels at \(sfInfo.samplerate) Hz")
    }
    if sfInfo.frames == sf_count_t.max || sfInfo.frames < 0 {
      do { frames = try countFrames(handle, channels: Int(sfInfo.channels), path: path) } catch {
        sf_close(handle)
        throw error
      }
    }
    return AudioInfo(
      frames: frames, sampleRateHertz: Int(sfInfo.samplerate),
      channels: Int(sfInfo.channels), formatName: formatName(sfInfo.format))
  }

  /// Decodes the whole file to count its frames (for headers without a length), stopping
  /// one past `AudioDecoder.maximumFrames`, then rewinds.
  private static func countFrames(_ handle: OpaquePointer, channels: Int, path: String) throws -> Int {
    let blockFrames = 16_384
    var block = [Float](repeating: 0, count: blockFrames * channels)
    var total = 0
    while total <= AudioDecoder.maximumFrames {
      let got = block.withUnsafeMutableBufferPointer { Int(sf_readf_float(handle, $0.baseAddress, sf_count_t(blockFrames))) }
      if got <= 0 { break }
      total += got
    }
    guard sf_error(handle) == 0, sf_seek(handle, 0, SEEK_SET) == 0 else {
      throw ItemError(
        .unreadableAudio, file: path,
        message: "the header declares no length and decoding to find it failed: \(String(cString: sf_strerror(handle)))")
    }
    return total
  }



  deinit { sf_close(handle) }

  /// Reads `frames` interleaved frames starting at `startFrame` into `destination`.
  /// Returns the frames actually read. The corresponding C functions are `sf_seek`
  /// and `sf_readf_float`.
  func readInterleaved(
    startFrame: Int, frames: Int, into destination: UnsafeMutablePointer<Float>
  ) throws -> Int {
    if startFrame > 0 {
      let position = sf_seek(handle, sf_count_t(startFrame), SEEK_SET)
      if position < 0 { throw error(call: "sf_seek") }
    }
    var total = 0
    while total < frames {
      let got = Int(
        sf_readf_float(
          handle, destination + total * info.channels, sf_count_t(frames - total)))
      if got <= 0 { break }
      total += got
    }
    let status = sf_error(handle)
    if status != 0 { throw error(call: "sf_readf_float") }
    return total
  }

  /// The error chokepoint: the C call, the file and libsndfile's own message.
  private func error(call: String) -> ItemError {
    let message = String(cString: sf_strerror(handle))
    return ItemError(.unreadableAudio, file: path, message: "\(call): \(message)")
  }

  private static func openError(path: String, libraryMessage: String) -> ItemError {
    if !FileManager.default.fileExists(atPath: path) {
      return ItemError(.unreadableAudio, file: path, message: "sf_open: no such file")
    }
    if let unsupported = unsupportedEncoding(path: path) { return unsupported }
    return ItemError(.unreadableAudio, file: path, message: "sf_open: \(libraryMessage)")
  }

  /// The `unsupported_encoding` error for a shorten-compressed NIST SPHERE file, judged
  /// from its text header alone; nil for any other file.
  static func unsupportedEncoding(path: String) -> ItemError? {
    guard let coding = sphereSampleCoding(path: path), coding.contains("shorten") else { return nil }
    return ItemError(
      .unsupportedEncoding, file: path,
      message: "NIST SPHERE with sample_coding \(coding): shorten compression is not "
        + "decodable by libsndfile; convert first, e.g. `sph2pipe -f wav in.sph out.wav`")
  }

  /// The `sample_coding` field of a NIST SPHERE header, if `path` is one.
  static func sphereSampleCoding(path: String) -> String? {
    // Only a regular file is opened (without blocking): a FIFO under an audio name would
    // otherwise wait for a writer forever.
    guard let head = RegularFile.prefix(path, count: 1024), head.starts(with: Array("NIST_1A".utf8)) else { return nil }
    let text = String(decoding: head, as: UTF8.self)
    for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
      let fields = line.split(separator: " ", maxSplits: 2)
      if fields.count == 3, fields[0] == "sample_coding" { return String(fields[2]) }
    }
    return nil
  }

  private static func formatName(_ format: Int32) -> String {
    var major = SF_FORMAT_INFO()
    major.format = format & Int32(SF_FORMAT_TYPEMASK)
    var sub = SF_FORMAT_INFO()
    sub.format = format & Int32(SF_FORMAT_SUBMASK)
    let majorName =
      sf_command(nil, Int32(SFC_GET_FORMAT_INFO), &major, Int32(MemoryLayout<SF_FORMAT_INFO>.size))
        == 0 ? major.name.map { String(cString: $0) } ?? "?" : "?"
    let subName =
      sf_command(nil, Int32(SFC_GET_FORMAT_INFO), &sub, Int32(MemoryLayout<SF_FORMAT_INFO>.size))
        == 0 ? sub.name.map { String(cString: $0) } ?? "?" : "?"
    return "\(majorName)/\(subName)"
  }
}

/// Container and encoding for writing audio with libsndfile.
public enum AudioFileFormat: String, Sendable, Codable, CaseIterable {
  case wavPCM16, wavFloat, flac16, sphereULaw, oggVorbis, oggOpus, mp3

  var code: Int32 {
    switch self {
    case .wavPCM16: return Int32(SF_FORMAT_WAV | SF_FORMAT_PCM_16)
    case .wavFloat: return Int32(SF_FORMAT_WAV | SF_FORMAT_FLOAT)
    case .flac16: return Int32(SF_FORMAT_FLAC | SF_FORMAT_PCM_16)
    case .sphereULaw: return Int32(SF_FORMAT_NIST | SF_FORMAT_ULAW)
    case .oggVorbis: return Int32(SF_FORMAT_OGG | SF_FORMAT_VORBIS)
    case .oggOpus: return Int32(SF_FORMAT_OGG | SF_FORMAT_OPUS)
    case .mp3: return Int32(SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III)
    }
  }
}

/// Writes audio files with libsndfile (fixtures, noise banks, exported audio).
public enum AudioEncoder {
  /// Writes interleaved `channels` of `samples` (frame-major) to `path`.
  /// The corresponding C functions are `sf_open` (SFM_WRITE) and `sf_writef_float`.
  /// - Throws: `ItemError(.unreadableAudio)` with libsndfile's message.
  public static func write(
    interleaved samples: [Float], channels: Int = 1, sampleRateHertz: Int, format: AudioFileFormat, to path: String
  ) throws {
    precondition(channels >= 1 && samples.count % channels == 0, "samples must hold whole frames")
    var info = SF_INFO()
    info.samplerate = Int32(sampleRateHertz)
    info.channels = Int32(channels)
    info.format = format.code
    guard let handle = sf_open(path, Int32(SFM_WRITE), &info) else {
      throw ItemError(.unreadableAudio, file: path, message: "sf_open for writing: \(String(cString: sf_strerror(nil)))")
    }
    defer { sf_close(handle) }
    let frames = samples.count / channels
    let written = samples.withUnsafeBufferPointer { sf_writef_float(handle, $0.baseAddress, sf_count_t(frames)) }
    guard written == frames else {
      throw ItemError(.unreadableAudio, file: path, message: "sf_writef_float: \(String(cString: sf_strerror(handle)))")
    }
  }

  /// Writes a mono waveform.
  public static func write(_ waveform: Waveform, format: AudioFileFormat, to path: String) throws {
    try write(interleaved: waveform.samples, sampleRateHertz: waveform.sampleRateHertz, format: format, to: path)
  }
}

/// The file libsndfile's virtual I/O reads from memory: `bytes`, then nothing up to
/// `declaredBytes` (a read there returns fewer bytes, as at the end of a file).
final class MemoryStream {
  let bytes: [UInt8]
  let declaredBytes: Int
  var position = 0

  init(bytes: [UInt8], declaredBytes: Int) {
    (self.bytes, self.declaredBytes) = (bytes, declaredBytes)
  }

  func seek(_ offset: Int, _ whence: Int32) -> sf_count_t {
    let base = whence == SEEK_CUR ? position : whence == SEEK_END ? declaredBytes : 0
    let (target, overflow) = base.addingReportingOverflow(offset)
    guard !overflow, target >= 0, target <= declaredBytes else { return -1 }
    position = target
    return sf_count_t(target)
  }

  func read(into destination: UnsafeMutableRawPointer?, count: Int) -> sf_count_t {
    guard let destination, count > 0, position < bytes.count else { return 0 }
    let available = min(count, bytes.count - position)
    bytes.withUnsafeBytes { source in
      destination.copyMemory(from: source.baseAddress! + position, byteCount: available)
    }
    position += available
    return sf_count_t(available)
  }
}
