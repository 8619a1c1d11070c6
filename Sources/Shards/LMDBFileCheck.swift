import DS2Core
import Foundation

/// Checks the structure of an LMDB file before LMDB opens it for reading: LMDB trusts its
/// pages (a damaged meta page or branch page trips its assertions, an abort, or a read past
/// the end of the map, a SIGBUS). Pages are read with `pread`, never through a map.
///
/// Checked: both meta pages (magic, version, page size, a last page inside the file, roots
/// and depths in range); then, from the main database's root, every branch and leaf page
/// (page number, kind, key-pointer bounds, node bounds, at least two children per branch,
/// child and overflow page numbers inside the file, no sub-databases, depth as recorded)
/// and the entry count. Overflow pages (the record values) are not read here: the reader
/// checks each value's bounds against the file when it gets it, and its CRC-32C.
/// Layout: LMDB 0.9 on a 64-bit system (`mdb.c`: `MDB_page`, `MDB_meta`, `MDB_db`, `MDB_node`).
enum LMDBFileCheck {
  static let magic: UInt32 = 0xBEEF_C0DE
  static let headerSize = 16
  static let invalidPage = UInt64.max
  static let branchFlag: UInt16 = 0x01
  static let leafFlag: UInt16 = 0x02
  static let bigDataFlag: UInt16 = 0x01
  static let subDatabaseFlags: UInt16 = 0x02 | 0x04

  struct Meta {
    var pageSize: Int
    var lastPage: UInt64
    var transaction: UInt64
    var mainRoot: UInt64
    var mainDepth: Int
    var mainEntries: UInt64
    var freeRoot: UInt64
  }

  /// - Throws: `LMDBError(damaged:)` naming what is wrong.
  static func validate(descriptor: Int32, fileSize: Int, path: String) throws {
    func damaged(_ reason: String) -> LMDBError { LMDBError(damaged: reason, path: path) }
    func read(_ offset: Int, _ count: Int) throws -> [UInt8] {
      guard offset >= 0, count >= 0, offset <= fileSize - count else { throw damaged("a page lies past the end of the file") }
      var bytes = [UInt8](repeating: 0, count: count)
      var done = 0
      while done < count {
        let n = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress! + done, count - done, off_t(offset + done)) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { throw damaged("cannot read \(count) bytes at \(offset)") }
        done += n
      }
      return bytes
    }
    func meta(at offset: Int) throws -> Meta {
      let page = try read(offset, headerSize + 136)
      let m = headerSize
      guard u32(page, m) == magic, u32(page, m + 4) == 1 else { throw damaged("not an LMDB meta page at byte \(offset)") }
      let pageSize = Int(u32(page, m + 24))
      return Meta(
        pageSize: pageSize, lastPage: u64(page, m + 120), transaction: u64(page, m + 128), mainRoot: u64(page, m + 112),
        mainDepth: Int(u16(page, m + 78)), mainEntries: u64(page, m + 104), freeRoot: u64(page, m + 64))
    }
    guard fileSize >= 2 * 512 else { throw damaged("\(fileSize) bytes, too short for an LMDB file") }
    let first = try meta(at: 0)
    let pageSize = first.pageSize
    guard pageSize >= 512, pageSize <= 65_536, pageSize & (pageSize - 1) == 0 else {
      throw damaged("meta page gives a page size of \(pageSize) bytes")
    }
    let second = try meta(at: pageSize)
    guard second.pageSize == pageSize else { throw damaged("the two meta pages give different page sizes") }
    let pagesInFile = UInt64(fileSize / pageSize)
    for m in [first, second] {
      guard m.lastPage >= 1, m.lastPage < pagesInFile else {
        throw damaged("meta page names page \(m.lastPage) as the last; the file holds \(pagesInFile)")
      }
      for root in [m.mainRoot, m.freeRoot] where root != invalidPage {
        guard root >= 2, root <= m.lastPage else { throw damaged("meta page names root page \(root), outside 2…\(m.lastPage)") }
      }
      guard m.mainDepth <= 16 else { throw damaged("meta page gives a tree depth of \(m.mainDepth)") }
    }
    let current = first.transaction >= second.transaction ? first : second
    guard current.mainRoot != invalidPage else {
      guard current.mainEntries == 0 else { throw damaged("an empty tree with \(current.mainEntries) entries") }
      return
    }
    var entries: UInt64 = 0
    var visited = 0
    // Depth-first from the root; each level's pages are read once.
    var stack: [(page: UInt64, depth: Int)] = [(current.mainRoot, 1)]
    while let (pageNumber, depth) = stack.popLast() {
      visited += 1
      guard visited <= Int(current.lastPage), depth <= current.mainDepth else {
        throw damaged("the tree is deeper than its meta page says, or has a cycle")
      }
      let page = try read(Int(pageNumber) * pageSize, pageSize)
      guard u64(page, 0) == pageNumber else { throw damaged("page \(pageNumber) carries number \(u64(page, 0))") }
      let flags = u16(page, 10)
      let isBranch = flags & branchFlag != 0
      let isLeaf = flags & leafFlag != 0
      guard isBranch != isLeaf else { throw damaged("page \(pageNumber) is neither a branch nor a leaf page") }
      let lower = Int(u16(page, 12))
      let upper = Int(u16(page, 14))
      guard lower >= headerSize, lower <= upper, upper <= pageSize, (lower - headerSize) % 2 == 0 else {
        throw damaged("page \(pageNumber) has bounds \(lower)…\(upper)")
      }
      let keys = (lower - headerSize) / 2
      if isBranch {
        guard keys >= 2 else { throw damaged("branch page \(pageNumber) has \(keys) child(ren)") }
        guard depth < current.mainDepth else { throw damaged("branch page \(pageNumber) at the leaf level") }
      } else {
        guard depth == current.mainDepth else { throw damaged("leaf page \(pageNumber) above the leaf level") }
      }
      for index in 0..<keys {
        let node = Int(u16(page, headerSize + 2 * index))
        guard node >= upper, node + 8 <= pageSize else { throw damaged("page \(pageNumber) node \(index) lies outside the page") }
        let low = UInt64(u16(page, node))
        let high = UInt64(u16(page, node + 2))
        let nodeFlags = u16(page, node + 4)
        let keySize = Int(u16(page, node + 6))
        if isBranch {
          guard node + 8 + keySize <= pageSize else { throw damaged("branch page \(pageNumber) key \(index) runs past the page") }
          let child = low | high << 16 | UInt64(nodeFlags) << 32
          guard child >= 2, child <= current.lastPage else { throw damaged("branch page \(pageNumber) names page \(child)") }
          stack.append((child, depth + 1))
        } else {
          guard nodeFlags & subDatabaseFlags == 0 else { throw damaged("leaf page \(pageNumber) holds a sub-database") }
          let dataSize = Int(low | high << 16)
          if nodeFlags & bigDataFlag != 0 {
            guard node + 8 + keySize + 8 <= pageSize else { throw damaged("leaf page \(pageNumber) node \(index) runs past the page") }
            let overflow = u64(page, node + 8 + keySize)
            let pagesNeeded = UInt64((dataSize + headerSize + pageSize - 1) / pageSize)
            guard overflow >= 2, overflow <= current.lastPage, overflow + pagesNeeded <= current.lastPage + 1 else {
              throw damaged("leaf page \(pageNumber) node \(index) names overflow page \(overflow) for \(dataSize) bytes")
            }
          } else {
            guard node + 8 + keySize + dataSize <= pageSize else {
              throw damaged("leaf page \(pageNumber) node \(index) runs past the page")
            }
          }
          entries += 1
        }
      }
    }
    guard entries == current.mainEntries else {
      throw damaged("the tree holds \(entries) entries, its meta page says \(current.mainEntries)")
    }
  }

  static func u16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) | UInt16(b[o + 1]) << 8 }
  static func u32(_ b: [UInt8], _ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[o + $1]) << (8 * UInt32($1)) } }
  static func u64(_ b: [UInt8], _ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) } }
}
