internal import CLMDB
import DS2Core
import Foundation

/// An LMDB failure, with the C call, the file and LMDB's message.
public struct LMDBError: Error, Sendable, CustomStringConvertible {
  /// LMDB's return code (`MDB_MAP_FULL`, an errno such as `ENOSPC`, …).
  public var code: Int32
  /// The C function that failed.
  public var call: String
  /// The shard file.
  public var path: String
  /// Free bytes on the shard's file system when the error happened.
  public var freeBytes: Int?

  /// A damaged file (LMDB's `MDB_CORRUPTED`), with what is wrong.
  init(damaged reason: String, path: String) {
    self.init(code: MDB_CORRUPTED, call: reason, path: path)
    damage = reason
  }

  /// What is wrong with a damaged file, when ds2-data found it before LMDB did.
  public var damage: String?

  init(code: Int32, call: String, path: String) {
    self.code = code
    self.call = call
    self.path = path
    // LMDB reports a short write (what a full disk causes) as EIO: look at the disk.
    if code == EIO || code == ENOSPC {
      var stats = statvfs()
      let directory = (path as NSString).deletingLastPathComponent
      if statvfs(directory.isEmpty ? "." : directory, &stats) == 0 {
        freeBytes = Int(stats.f_bavail) * Int(stats.f_frsize)
      }
    }
  }

  /// True when the disk is full (free space, then rerun to resume).
  public var isDiskFull: Bool {
    code == ENOSPC || code == EDQUOT || code == EFBIG || (code == EIO && (freeBytes ?? Int.max) < 16 << 20)
  }

  /// True when the map (the shard's size cap) or the disk is full.
  public var isSpaceExhausted: Bool { code == MDB_MAP_FULL || isDiskFull }

  public var description: String {
    if let damage { return "\(path): damaged shard: \(damage)" }
    let text = String(cString: mdb_strerror(code))
    var message = "\(path): \(call): \(text)"
    if code == MDB_MAP_FULL {
      message += " — the shard outgrew its map; raise shards.maxShardBytes and rerun"
    } else if isDiskFull {
      message += " — the disk is full"
      if let freeBytes { message += " (\(freeBytes / 1024) KiB free)" }
      message += "; shards completed so far are kept: free space and rerun the same command to resume"
    }
    return message
  }
}

/// The error chokepoint for every `mdb_*` call.
@inline(__always)
func check(_ code: Int32, _ call: StaticString, path: String) throws {
  if code != 0 { throw LMDBError(code: code, call: "\(call)", path: path) }
}

/// One LMDB environment stored as a single file (`MDB_NOSUBDIR`), without a lock file
/// (`MDB_NOLOCK`): ds2-data writes each shard from one thread and only reads shards that
/// are complete and immutable. Closes the environment in `deinit`.
final class LMDBEnvironment {
  let path: String
  let readOnly: Bool
  fileprivate let env: OpaquePointer
  fileprivate let dbi: MDB_dbi

  /// The mapped file's bytes (readers): every key and value LMDB hands out must lie inside,
  /// or the file is damaged (a value pointing past the end would be a SIGBUS or SIGSEGV).
  private(set) var mappedRange: Range<UInt> = 0..<UInt.max

  /// Opens (or, when writing, creates) the environment at `path`. A reader opens only a
  /// regular file, and checks that the file holds every page LMDB's meta page claims
  /// before anything is read through the map.
  /// - Parameter mapSizeBytes: the map size, i.e. the largest the file may grow (writers).
  /// - Throws: `LMDBError`.
  init(path: String, readOnly: Bool, mapSizeBytes: Int = 0) throws {
    self.path = path
    self.readOnly = readOnly
    if readOnly {
      var status = stat()
      guard lstat(path, &status) == 0 else { throw LMDBError(code: errno, call: "lstat", path: path) }
      guard (status.st_mode & S_IFMT) == S_IFREG else {
        throw LMDBError(damaged: "not a regular file", path: path)
      }
      guard status.st_size >= 2 * Self.pageSize else {
        throw LMDBError(damaged: "\(status.st_size) bytes, too short for an LMDB file", path: path)
      }
      let descriptor = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
      guard descriptor >= 0 else { throw LMDBError(code: errno, call: "open", path: path) }
      defer { close(descriptor) }
      try LMDBFileCheck.validate(descriptor: descriptor, fileSize: Int(status.st_size), path: path)
    }
    var created: OpaquePointer?
    try check(mdb_env_create(&created), "mdb_env_create", path: path)
    guard let env = created else { throw LMDBError(code: ENOMEM, call: "mdb_env_create", path: path) }
    var dbi: MDB_dbi = 0
    do {
      if mapSizeBytes > 0 {
        try check(mdb_env_set_mapsize(env, mapSizeBytes), "mdb_env_set_mapsize", path: path)
      }
      var flags = UInt32(MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOTLS)
      flags |= readOnly ? UInt32(MDB_RDONLY) : UInt32(MDB_NOSYNC)
      try check(mdb_env_open(env, path, flags, 0o644), "mdb_env_open", path: path)
      if readOnly { mappedRange = try Self.checkedMap(env, path: path) }
      var txn: OpaquePointer?
      try check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin", path: path)
      let code = mdb_dbi_open(txn, nil, 0, &dbi)
      mdb_txn_abort(txn)
      try check(code, "mdb_dbi_open", path: path)
    } catch {
      mdb_env_close(env)
      throw error
    }
    self.env = env
    self.dbi = dbi
  }

  /// The address range of the file's bytes in the map, after checking that the file is as
  /// long as the last page the meta page names.
  private static func checkedMap(_ env: OpaquePointer, path: String) throws -> Range<UInt> {
    var info = MDB_envinfo()
    try check(mdb_env_info(env, &info), "mdb_env_info", path: path)
    var stat = MDB_stat()
    try check(mdb_env_stat(env, &stat), "mdb_env_stat", path: path)
    var descriptor: Int32 = -1
    try check(mdb_env_get_fd(env, &descriptor), "mdb_env_get_fd", path: path)
    var status = Glibc.stat()
    guard fstat(descriptor, &status) == 0 else { throw LMDBError(code: errno, call: "fstat", path: path) }
    let pageSize = Int(stat.ms_psize)
    let (pages, overflow1) = Int(info.me_last_pgno).addingReportingOverflow(1)
    let (needed, overflow2) = pages.multipliedReportingOverflow(by: pageSize)
    guard pageSize > 0, !overflow1, !overflow2, needed <= Int(status.st_size) else {
      throw LMDBError(
        damaged: "truncated: \(status.st_size) bytes, but its pages run to \(needed) bytes", path: path)
    }
    // The map's address: the mapping of this file that holds the first key's page.
    var txn: OpaquePointer?
    try check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin", path: path)
    defer { mdb_txn_abort(txn) }
    var dbi: MDB_dbi = 0
    try check(mdb_dbi_open(txn, nil, 0, &dbi), "mdb_dbi_open", path: path)
    var cursor: OpaquePointer?
    try check(mdb_cursor_open(txn, dbi, &cursor), "mdb_cursor_open", path: path)
    defer { mdb_cursor_close(cursor) }
    var key = MDB_val()
    var value = MDB_val()
    let code = mdb_cursor_get(cursor, &key, &value, MDB_FIRST)
    if code == MDB_NOTFOUND { return 0..<UInt.max }  // no records: nothing will be read
    try check(code, "mdb_cursor_get", path: path)
    let probe = UInt(bitPattern: key.mv_data)
    let fileBytes = UInt(status.st_size)
    // LMDB maps the file from its first byte at a boundary of the system's pages. When its
    // pages divide those, the page holding the first key starts at the key's address rounded
    // down to a page, and that page's header (the same system page as the key, so mapped)
    // holds its page number, which `LMDBFileCheck` checked against the file: the map starts
    // that many pages earlier.
    let systemPageSize = UInt(sysconf(Int32(_SC_PAGESIZE)))
    if pageSize > 0, systemPageSize % UInt(pageSize) == 0 {
      let pageStart = probe & ~(UInt(pageSize) - 1)
      let pageNumber = UnsafeRawPointer(bitPattern: pageStart)!.loadUnaligned(as: UInt64.self)
      let (offset, overflow) = UInt(truncatingIfNeeded: pageNumber).multipliedReportingOverflow(by: UInt(pageSize))
      guard pageNumber <= UInt64(info.me_last_pgno), !overflow, offset <= pageStart,
        isMapped(pageStart - offset, bytes: fileBytes, pageSize: systemPageSize)
      else {
        throw LMDBError(damaged: "a key points outside the file (damaged pages)", path: path)
      }
      return (pageStart - offset)..<(pageStart - offset + fileBytes)
    }
    // Pages larger than the system's (a file made where pages are larger): the mapping of
    // this file that holds the key, from /proc/self/maps. The kernel writes that file a page
    // at a time, so a mapping another thread adds or removes meanwhile can shift a line out
    // of it: it is read again before concluding that the key is outside the file.
    for _ in 0..<8 {
      let mappings = fileMappings(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
      if let start = mappings.first(where: { $0.contains(probe) })?.lowerBound { return start..<(start + fileBytes) }
    }
    throw LMDBError(damaged: "a key points outside the file (damaged pages)", path: path)
  }

  /// Whether the first and the last system page of `start ..< start + bytes` are mapped
  /// (`mincore` fails with ENOMEM on an address that is not).
  private static func isMapped(_ start: UInt, bytes: UInt, pageSize: UInt) -> Bool {
    guard bytes > 0, start % pageSize == 0, start <= UInt.max - bytes else { return false }
    var residency: UInt8 = 0
    let last = (start + bytes - 1) & ~(pageSize - 1)
    return [start, last].allSatisfy { page in
      mincore(UnsafeMutableRawPointer(bitPattern: page), Int(pageSize), &residency) == 0
    }
  }

  /// Throws unless `buffer` lies inside the mapped file.
  @inline(__always)
  private func checkMapped(_ pointer: UnsafeMutableRawPointer?, _ count: Int, _ what: StaticString) throws {
    guard readOnly else { return }
    let start = UInt(bitPattern: pointer)
    guard count == 0 || (mappedRange.contains(start) && UInt(count) <= mappedRange.upperBound - start) else {
      throw LMDBError(damaged: "a \(what) points outside the file (damaged pages)", path: path)
    }
  }

  deinit { mdb_env_close(env) }

  /// Runs `body` in a transaction: a write transaction commits when `body` returns and
  /// aborts when it throws; a read transaction always ends with `body`.
  fileprivate func withTransaction<R>(write: Bool, _ body: (OpaquePointer) throws -> R) throws -> R {
    var txn: OpaquePointer?
    try check(
      mdb_txn_begin(env, nil, write ? 0 : UInt32(MDB_RDONLY), &txn), "mdb_txn_begin", path: path)
    let result: R
    do {
      result = try body(txn!)
    } catch {
      mdb_txn_abort(txn)
      throw error
    }
    if write {
      try check(mdb_txn_commit(txn), "mdb_txn_commit", path: path)
    } else {
      mdb_txn_abort(txn)
    }
    return result
  }

  /// Appends `(key, value)` pairs in one write transaction. Keys must ascend
  /// (`MDB_APPEND`); the transaction commits on return and aborts on a throw.
  func append(_ pairs: [(key: [UInt8], value: [UInt8])]) throws {
    try withTransaction(write: true) { txn in
      for pair in pairs {
        try pair.key.withUnsafeBytes { keyBytes in
          try pair.value.withUnsafeBytes { valueBytes in
            var key = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
            var value = MDB_val(
              mv_size: valueBytes.count, mv_data: UnsafeMutableRawPointer(mutating: valueBytes.baseAddress))
            try check(mdb_put(txn, dbi, &key, &value, UInt32(MDB_APPEND)), "mdb_put", path: path)
          }
        }
      }
    }
  }

  /// Calls `body` with each `(key, value)` in key order inside one read transaction.
  /// The buffers are valid only during the call. Return false from `body` to stop.
  func forEach(
    startingAt startKey: [UInt8]? = nil,
    _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
  ) throws {
    try withTransaction(write: false) { txn in
      var cursor: OpaquePointer?
      try check(mdb_cursor_open(txn, dbi, &cursor), "mdb_cursor_open", path: path)
      defer { mdb_cursor_close(cursor) }
      var key = MDB_val()
      var value = MDB_val()
      var op = MDB_FIRST
      var startStorage = startKey ?? []
      if startKey != nil {
        op = MDB_SET_RANGE
      }
      var code: Int32 = 0
      code = startStorage.withUnsafeMutableBytes { bytes -> Int32 in
        if op == MDB_SET_RANGE {
          key = MDB_val(mv_size: bytes.count, mv_data: bytes.baseAddress)
        }
        return mdb_cursor_get(cursor, &key, &value, op)
      }
      while code == 0 {
        try checkMapped(key.mv_data, key.mv_size, "key")
        try checkMapped(value.mv_data, value.mv_size, "value")
        let keyBuffer = UnsafeRawBufferPointer(start: key.mv_data, count: key.mv_size)
        let valueBuffer = UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size)
        if try !body(keyBuffer, valueBuffer) { return }
        code = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)
      }
      if code != MDB_NOTFOUND { try check(code, "mdb_cursor_get", path: path) }
    }
  }

  /// Looks up one key; calls `body` with its value (valid only during the call).
  func withValue<R>(forKey keyBytes: [UInt8], _ body: (UnsafeRawBufferPointer?) throws -> R) throws -> R {
    try withTransaction(write: false) { txn in
      var storage = keyBytes
      return try storage.withUnsafeMutableBytes { bytes in
        var key = MDB_val(mv_size: bytes.count, mv_data: bytes.baseAddress)
        var value = MDB_val()
        let code = mdb_get(txn, dbi, &key, &value)
        if code == MDB_NOTFOUND { return try body(nil) }
        try check(code, "mdb_get", path: path)
        try checkMapped(value.mv_data, value.mv_size, "value")
        return try body(UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size))
      }
    }
  }

  /// Looks up the entry with the greatest key ≤ `keyBytes`; calls `body` with its key and
  /// value (valid only during the call), or nil when every key is greater.
  func withEntry<R>(
    atOrBefore keyBytes: [UInt8], _ body: ((key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)?) throws -> R
  ) throws -> R {
    try withTransaction(write: false) { txn in
      var cursor: OpaquePointer?
      try check(mdb_cursor_open(txn, dbi, &cursor), "mdb_cursor_open", path: path)
      defer { mdb_cursor_close(cursor) }
      var storage = keyBytes
      return try storage.withUnsafeMutableBytes { bytes in
        var key = MDB_val(mv_size: bytes.count, mv_data: bytes.baseAddress)
        var value = MDB_val()
        var code = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE)
        if code == 0 {
          try checkMapped(key.mv_data, key.mv_size, "key")
          let found = UnsafeRawBufferPointer(start: key.mv_data, count: key.mv_size)
          if !found.elementsEqual(UnsafeRawBufferPointer(bytes)) { code = mdb_cursor_get(cursor, &key, &value, MDB_PREV) }
        } else if code == MDB_NOTFOUND {
          code = mdb_cursor_get(cursor, &key, &value, MDB_LAST)
        }
        if code == MDB_NOTFOUND { return try body(nil) }
        try check(code, "mdb_cursor_get", path: path)
        try checkMapped(key.mv_data, key.mv_size, "key")
        try checkMapped(value.mv_data, value.mv_size, "value")
        return try body(
          (UnsafeRawBufferPointer(start: key.mv_data, count: key.mv_size),
           UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size)))
      }
    }
  }

  /// Calls `body` with the key and bytes of every record in key order: stored in groups
  /// (`RecordGroup`) when `grouped` (format 3), else one per value (formats 1 and 2); the
  /// buffers are valid only during the call. Return false from `body` to stop.
  /// - Throws: `RecordDecodingError` for a damaged group, a value of the other layout, or
  ///   keys that do not ascend from one record to the next; `LMDBError`; what `body` throws.
  func forEachRecord(
    grouped: Bool, _ body: (_ key: UnsafeRawBufferPointer, _ record: UnsafeRawBufferPointer) throws -> Bool
  ) throws {
    var previous: UnsafeRawBufferPointer?
    func ascending(_ key: UnsafeRawBufferPointer) throws {
      if let previous, !previous.lexicographicallyPrecedes(key) {
        throw RecordDecodingError(
          "keys out of order: \(RecordLayout.describe(key: key)) follows \(RecordLayout.describe(key: previous))")
      }
      previous = key
    }
    try forEach { key, value in
      try Self.checkLayout(value, key: key, grouped: grouped)
      guard grouped else {
        try ascending(key)
        return try body(key, value)
      }
      return try RecordGroup.forEachRecord(in: value, storedKey: key) { recordKey, record in
        try ascending(recordKey)
        return try body(recordKey, record)
      }
    }
  }

  /// Looks up the record stored under `keyBytes` (in a group when `grouped`); calls `body`
  /// with its bytes (valid only during the call), or nil.
  /// - Throws: `RecordDecodingError` for a damaged group or a value of the other layout,
  ///   `LMDBError`, or what `body` throws.
  func withRecord<R>(forKey keyBytes: [UInt8], grouped: Bool, _ body: (UnsafeRawBufferPointer?) throws -> R) throws -> R {
    try withEntry(atOrBefore: keyBytes) { entry in
      guard let entry else { return try body(nil) }
      try Self.checkLayout(entry.value, key: entry.key, grouped: grouped)
      guard grouped else { return try body(entry.key.elementsEqual(keyBytes) ? entry.value : nil) }
      let record = try keyBytes.withUnsafeBytes { try RecordGroup.record(forKey: $0, in: entry.value, storedKey: entry.key) }
      return try body(record)
    }
  }

  /// Throws unless `value` is a record group exactly when `grouped`.
  private static func checkLayout(_ value: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer, grouped: Bool) throws {
    if RecordGroup.isGroup(value) != grouped {
      throw RecordDecodingError(
        grouped
          ? "the value under \(RecordLayout.describe(key: key)) is not a record group (format 3 stores records only in groups)"
          : "a record group under \(RecordLayout.describe(key: key)) in a dataset of format 1 or 2")
    }
  }

  /// Number of entries (`mdb_stat`).
  func entryCount() throws -> Int {
    try withTransaction(write: false) { txn in
      var stat = MDB_stat()
      try check(mdb_stat(txn, dbi, &stat), "mdb_stat", path: path)
      return Int(stat.ms_entries)
    }
  }

  /// LMDB's page size on this machine.
  static var pageSize: Int { Int(sysconf(Int32(_SC_PAGESIZE))) }
}

/// This process's mappings of the file `(device, inode)` that start at file offset 0, from
/// `/proc/self/maps` (LMDB maps an environment file as one mapping and does not say where:
/// `mdb_env_info` reports only a fixed-map address).
func fileMappings(device: UInt64, inode: UInt64) -> [Range<UInt>] {
  // Read to the end (the file reports size 0, and Foundation's readers return only what the
  // first read gives: one page of lines), and decoded leniently: a mapped file whose name is
  // not UTF-8 must not hide the others.
  guard let bytes = try? RegularFile.read("/proc/self/maps", maxBytes: 1 << 30) else { return [] }
  let text = String(decoding: bytes, as: UTF8.self)
  // glibc's encoding of dev_t (gnu_dev_major / gnu_dev_minor).
  let major = ((device >> 8) & 0xfff) | ((device >> 32) & ~0xfff)
  let minor = (device & 0xff) | ((device >> 12) & ~0xff)
  var ranges: [Range<UInt>] = []
  for line in text.split(separator: "\n") {
    let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
    guard fields.count >= 5, UInt64(fields[4]) == inode, UInt64(fields[2], radix: 16) == 0 else { continue }
    let deviceParts = fields[3].split(separator: ":")
    guard deviceParts.count == 2, UInt64(deviceParts[0], radix: 16) == major,
      UInt64(deviceParts[1], radix: 16) == minor
    else { continue }
    let bounds = fields[0].split(separator: "-")
    guard bounds.count == 2, let start = UInt(bounds[0], radix: 16), let end = UInt(bounds[1], radix: 16), start < end
    else { continue }
    ranges.append(start..<end)
  }
  return ranges
}
