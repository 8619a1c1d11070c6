import DS2Core
import Foundation

@testable import Shards

/// Datasets as format version 2 wrote them, made from current ones, for the tests that old
/// datasets are still read (docs/FORMAT.md §8).
public enum LegacyFormat {
  /// The same record as record version 2 wrote it: for uint8, the minimum and step in
  /// float32 (float16 from version 3); other dtypes differ only in the version field.
  public static func recordVersionTwo(_ value: [UInt8]) throws -> [UInt8] {
    try value.withUnsafeBytes { raw in
      let header = try ShardRecord.decodeHeader(raw)
      var bytes = Array(value[0..<header.featuresOffset])
      bytes[4] = 2
      if header.dtype == .uint8 {
        for k in 0..<(2 * header.bins) {
          let half = raw.loadUnaligned(fromByteOffset: header.featuresOffset + 2 * k, as: UInt16.self)
          withUnsafeBytes(of: FeatureCodec.float(fromHalf: UInt16(littleEndian: half)).bitPattern.littleEndian) {
            bytes.append(contentsOf: $0)
          }
        }
        bytes.append(contentsOf: value[(header.featuresOffset + 4 * header.bins)...])
      } else {
        bytes.append(contentsOf: value[header.featuresOffset...])
      }
      let crc = bytes.withUnsafeBytes { RecordLayout.checksum(of: $0) }
      withUnsafeBytes(of: crc.littleEndian) { bytes.replaceSubrange(36..<40, with: $0) }
      return bytes
    }
  }

  /// Rewrites the dataset at `directory` as format version 2 wrote it: every shard with one
  /// record (of record version 2) per LMDB value, the manifest's sizes and digests updated
  /// and its `formatVersion` 2.
  public static func rewriteAsFormatTwo(directory: String) throws {
    var manifest = try Dataset(directory: directory).manifest
    for splitIndex in manifest.splits.indices {
      for shardIndex in manifest.splits[splitIndex].shards.indices {
        let path = directory + "/" + manifest.splits[splitIndex].shards[shardIndex].file
        var pairs: [(key: [UInt8], value: [UInt8])] = []
        try LMDBEnvironment(path: path, readOnly: true).forEachRecord(grouped: true) { key, record in
          pairs.append((Array(key), try recordVersionTwo(Array(record))))
          return true
        }
        try FileManager.default.removeItem(atPath: path)
        try LMDBEnvironment(path: path, readOnly: false, mapSizeBytes: 256 << 20).append(pairs)
        let (bytes, digest) = try SplitWriter.sizeAndDigest(path: path)
        manifest.splits[splitIndex].shards[shardIndex].bytes = bytes
        manifest.splits[splitIndex].shards[shardIndex].sha256 = digest
      }
    }
    manifest.formatVersion = 2
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    try encoder.encode(manifest).write(to: URL(fileURLWithPath: directory + "/manifest.json"))
  }
}
