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
  fileprivate var dbi: MDB_dbi = 0

  /// Opens (or, when writing, creates) the environment at `path`.
  /// - Parameter mapSizeBytes: the map size, i.e. the largest the file may grow (writers).
  /// - Throws: `LMDBError`.
  init(path: String, readOnly: Bool, mapSizeBytes: Int = 0) throws {
    self.path = path
    self.readOnly = readOnly
    var env: OpaquePointer?
    try check(mdb_env_create(&env), "mdb_env_create", path: path)
    self.env = env!
    do {
      if mapSizeBytes > 0 {
        try check(mdb_env_set_mapsize(self.env, mapSizeBytes), "mdb_env_set_mapsize", path: path)
      }
      var flags = UInt32(MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOTLS)
      flags |= readOnly ? UInt32(MDB_RDONLY) : UInt32(MDB_NOSYNC)
      try check(mdb_env_open(self.env, path, flags, 0o644), "mdb_env_open", path: path)
      try withTransaction(write: false) { txn in
        var dbi: MDB_dbi = 0
        try check(mdb_dbi_open(txn, nil, 0, &dbi), "mdb_dbi_open", path: path)
        self.dbi = dbi
      }
    } catch {
      mdb_env_close(self.env)
      throw error
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
        return try body(UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size))
      }
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
