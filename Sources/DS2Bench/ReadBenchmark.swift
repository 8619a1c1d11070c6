import DS2Core
import Foundation
import Shards

/// What the per-record CRC-32C costs a reader: the whole read path (LMDB cursor, record
/// checks, CRC, float16 → Float, normalization) of a freshly opened dataset with and
/// without the checksums (interleaved), and the CRC alone over the same records, warm page
/// cache, best of `repeats`.
func benchmarkReading(datasetPath: String, repeats: Int = 7) throws {
  let dataset = try Dataset(directory: datasetPath)
  let splits = dataset.manifest.splits.map(\.name)
  let bytes = dataset.manifest.splits.flatMap(\.shards).reduce(0) { $0 + $1.bytes }
  let audioSeconds = dataset.manifest.splits.reduce(0) { $0 + $1.audioSeconds }
  func best(_ body: () throws -> Double) rethrows -> Double {
    var best = Double.infinity
    var sink = 0.0
    for _ in 0..<repeats {
      let start = DispatchTime.now()
      sink += try body()
      best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9)
    }
    if sink.isNaN { print("") }
    return best
  }
  // The first pass of a reader checks every record's CRC-32C; later passes (a trainer's
  // next epochs) read the same mapped records without it.
  func readAll(_ dataset: Dataset) throws -> Double {
    var sum = 0.0
    for split in splits {
      try dataset.forEachRecord(split: split) { record in
        sum += Double(record.features.values[0])
        return true
      }
    }
    return sum
  }
  /// The fastest of `passes` first reads by a freshly opened dataset, each after `prepare`
  /// (a pass is skipped when `prepare` returns false).
  func firstRead(passes: Int, verifying: Bool = true, after prepare: () -> Bool = { true }) throws -> Double {
    var fastest = Double.infinity
    for _ in 0..<passes where prepare() {
      let fresh = try Dataset(directory: datasetPath, verifyingChecksums: verifying)
      let start = DispatchTime.now()
      _ = try readAll(fresh)
      fastest = min(fastest, Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9)
    }
    return fastest
  }
  // Interleaved, so that both see the same machine: first reads with and without the checks.
  var firstPass = Double.infinity
  var uncheckedPass = Double.infinity
  for _ in 0..<repeats {
    firstPass = min(firstPass, try firstRead(passes: 1))
    uncheckedPass = min(uncheckedPass, try firstRead(passes: 1, verifying: false))
  }
  // From the disk: the page cache emptied before each pass (needs root; skipped otherwise).
  var coldPass = Double.infinity
  var coldUnchecked = Double.infinity
  for _ in 0..<3 {
    coldPass = min(coldPass, try firstRead(passes: 1, after: dropPageCache))
    coldUnchecked = min(coldUnchecked, try firstRead(passes: 1, verifying: false, after: dropPageCache))
  }
  // What the checks add to a first read, as run (the CRC inside the decoding pass).
  let added = max(0, firstPass - uncheckedPass)
  _ = try readAll(dataset)
  let read = try best { try readAll(dataset) }
  /// A cursor walk over every record, applying `touch` to each value.
  func walk(_ touch: @escaping (UnsafeRawBufferPointer) -> Double) throws -> Double {
    try best {
      var sum = 0.0
      for split in splits {
        try dataset.forEachRawRecord(split: split) { _, _, value in
          sum += touch(value)
          return true
        }
      }
      return sum
    }
  }
  let raw = try walk { Double($0.count) }
  let checksum = try walk { Double(RecordLayout.checksum(of: $0)) }
  let crcOnly = max(0, checksum - raw)
  print(String(format: "dataset %@: %.2f h audio, %.1f MiB of shards (%@)", datasetPath, audioSeconds / 3600,
    Double(bytes) / 1048576, dataset.manifest.features.dtype.rawValue))
  print(String(format: "first read (cursor, checks, CRC, decode, normalize) %8.1f ms  %7.0f MiB/s  %9.0f× real time",
    firstPass * 1e3, Double(bytes) / 1048576 / firstPass, audioSeconds / firstPass))
  print(String(format: "later reads (no CRC: checked on first read)        %8.1f ms  %7.0f MiB/s  %9.0f× real time",
    read * 1e3, Double(bytes) / 1048576 / read, audioSeconds / read))
  print(String(format: "cursor walk alone                                  %8.1f ms", raw * 1e3))
  print(String(format: "CRC-32C alone                                      %8.1f ms  %7.0f MiB/s", crcOnly * 1e3,
    Double(bytes) / 1048576 / max(crcOnly, 1e-9)))
  print(String(format: "first read without the checksums                   %8.1f ms  %7.0f MiB/s", uncheckedPass * 1e3,
    Double(bytes) / 1048576 / uncheckedPass))
  print(String(format: "CRC-32C share of a first read (in the decode pass)  %8.1f %%", 100 * added / firstPass))
  print(String(format: "(the CRC alone, as a separate pass, would be        %8.1f %%)", 100 * crcOnly / firstPass))
  if coldPass.isFinite {
    print(String(format: "first read from disk (page cache dropped)          %8.1f ms  %7.0f MiB/s", coldPass * 1e3,
      Double(bytes) / 1048576 / coldPass))
    print(String(format: "first read from disk without the checksums         %8.1f ms", coldUnchecked * 1e3))
    print(String(format: "CRC-32C share of a first read from disk            %8.1f %%", 100 * max(0, coldPass - coldUnchecked) / coldPass))
  }
  print(String(format: "CRC-32C share over 10 epochs of reads              %8.1f %%", 100 * added / (firstPass + 9 * read)))
}

/// Writes back dirty pages and empties the page cache (`/proc/sys/vm/drop_caches`, root
/// only); false when that is not allowed.
func dropPageCache() -> Bool {
  sync()
  guard let handle = FileHandle(forWritingAtPath: "/proc/sys/vm/drop_caches") else { return false }
  defer { try? handle.close() }
  do { try handle.write(contentsOf: Data("3\n".utf8)) } catch { return false }
  return true
}
