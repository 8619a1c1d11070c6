// swift-tools-version:6.0
//
// ds2-data: a Deep Speech 2 data pipeline (corpus → log spectrograms → length-sorted
// LMDB shards) with a bundled CTC trainer.
//
// Module layout (dependencies point downward only):
//
//   DS2DataCLI (ds2-data)          thin argument parsing → one library call per command
//   Pipeline   Trainer             orchestration / training runs (batches, checkpoints, decoding)
//              DataParallel        MPI collectives for data-parallel training (the only MPI user)
//              Plots               PNG pictures of records, lengths and training (libpng)
//              Training            the numerical core (layers, CTC, optimizers on OpenBLAS)
//   Corpus Audio Features Shards   one stage each; each owns exactly one C library family
//   DS2Core                        value types, errors, RNG, statistics, the worker pool — no C
//   C*                             system-library shims (pkg-config; CSyncFileRange, CMalloc: glibc extensions;
//                                  CPrefetch: a compiler builtin; COpenBLAS: entry points of a library
//                                  opened at first use)
//
// Linux only (glibc, /proc). No CPU flags here: scripts/build adds them for the CPU it runs on.

import Foundation
import PackageDescription

let package = Package(
  name: "ds2-data",
  products: [
    .executable(name: "ds2-data", targets: ["DS2DataCLI"]),
    .executable(name: "ds2-bench", targets: ["DS2Bench"]),
    .library(name: "DS2Data", targets: ["Pipeline", "Training", "Trainer"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
  ],
  targets: [
    // MARK: C libraries (Debian: libsndfile1-dev libsamplerate0-dev libfftw3-dev liblmdb-dev libopenblas-dev)
    .systemLibrary(name: "CSndFile", pkgConfig: "sndfile", providers: [.apt(["libsndfile1-dev"])]),
    .systemLibrary(name: "CSampleRate", pkgConfig: "samplerate", providers: [.apt(["libsamplerate0-dev"])]),
    .systemLibrary(name: "CFFTW", pkgConfig: "fftw3f", providers: [.apt(["libfftw3-dev"])]),
    .systemLibrary(name: "CLMDB", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
    // OpenBLAS: opened at first use (dlopen), not linked; the shim declares its entry points.
    .systemLibrary(name: "COpenBLAS"),
    // glibc extensions Swift's Glibc module leaves out: sync_file_range (Shards), mallopt (ProcessSettings).
    // OpenMPI (Debian: libopenmpi-dev) for data-parallel training.
    .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
    // libpng (Debian: libpng-dev) for the pictures.
    .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
    .systemLibrary(name: "CSyncFileRange"),
    .systemLibrary(name: "CMalloc"),
    // The compiler's prefetch builtin (Shards' decoding loops).
    .systemLibrary(name: "CPrefetch"),

    // MARK: Library modules
    .target(name: "DS2Core"),
    .target(name: "Audio", dependencies: ["DS2Core", "CSndFile", "CSampleRate"]),
    .target(name: "Features", dependencies: ["DS2Core", "Audio", "CFFTW"]),
    .target(name: "Corpus", dependencies: ["DS2Core", "Audio"]),
    .target(name: "Augmentation", dependencies: ["DS2Core", "Audio", "Features"]),
    .target(
      name: "Shards",
      dependencies: ["DS2Core", "CLMDB", "CSyncFileRange", "CPrefetch", .product(name: "Crypto", package: "swift-crypto")]),
    .target(
      name: "Pipeline",
      dependencies: [
        "DS2Core", "Audio", "Features", "Corpus", "Shards", "Augmentation",
        .product(name: "Yams", package: "Yams"),
        .product(name: "Logging", package: "swift-log"),
      ]),
    .target(name: "Training", dependencies: ["DS2Core", "COpenBLAS"]),
    .target(name: "DataParallel", dependencies: ["Training", "CMPI"]),
    .target(name: "Plots", dependencies: ["DS2Core", "Shards", "CPNG"]),
    .target(
      name: "Trainer",
      dependencies: ["DS2Core", "Training", "Shards", "Audio", "Features", .product(name: "Yams", package: "Yams")]),
    // Process-wide settings (the allocator), which only executables make.
    .target(name: "ProcessSettings", dependencies: ["CMalloc"]),
    .executableTarget(
      name: "DS2DataCLI",
      dependencies: [
        "ProcessSettings", "Pipeline", "Training", "Trainer", "DataParallel", "Plots", "DS2Core", "Augmentation",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
      ]),

    .executableTarget(name: "DS2Bench", dependencies: ["ProcessSettings", "Augmentation", "Audio", "DS2Core", "Shards"]),

    // MARK: Tests
    .target(name: "TestSupport", dependencies: ["DS2Core", "Audio", "Shards"], path: "Tests/TestSupport"),
    .testTarget(name: "DS2CoreTests", dependencies: ["DS2Core", "TestSupport"]),
    .testTarget(name: "AudioTests", dependencies: ["Audio", "DS2Core", "TestSupport"]),
    .testTarget(name: "FeaturesTests", dependencies: ["Features", "DS2Core", "TestSupport"]),
    .testTarget(name: "CorpusTests", dependencies: ["Corpus", "Audio", "DS2Core", "TestSupport"]),
    .testTarget(name: "AugmentationTests", dependencies: ["Augmentation", "Audio", "Features", "DS2Core", "TestSupport"]),
    .testTarget(name: "ShardsTests", dependencies: ["Shards", "DS2Core", "TestSupport"]),
    .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "Shards", "DS2Core", "TestSupport"]),
    .testTarget(name: "TrainingTests", dependencies: ["Training", "DS2Core"]),
    .testTarget(
      name: "TrainerTests", dependencies: ["Trainer", "Training", "Shards", "Pipeline", "DS2Core", "TestSupport"]),
    .testTarget(
      name: "CLITests",
      dependencies: [
        "DS2DataCLI", "Shards", "DS2Core", "TestSupport", "Trainer", "Training", "Plots", .product(name: "Yams", package: "Yams"),
      ]),
  ],
  swiftLanguageModes: [.v6]
)
