import Audio
import Augmentation
import DS2Core
import Foundation
import Shards
import TestSupport
import XCTest

@testable import Pipeline

/// `threads` bounds the whole run: listing, header probes, noise-bank indexing, archive
/// unpacking (its `tar` processes count), featurization, digests. Measured as CPU time
/// (this process and the children it waited for) against wall time: a run on one thread
/// never computes on two at once, so its CPU time cannot exceed its wall time by more than
/// the clock's granularity. Threads that only wait (fsync) add no CPU time.
final class ThreadBudgetTests: XCTestCase {
  /// CPU seconds of this process and its waited-for children so far.
  func cpuSeconds() -> Double {
    var own = rusage()
    var children = rusage()
    getrusage(RUSAGE_SELF.rawValue, &own)
    getrusage(RUSAGE_CHILDREN.rawValue, &children)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(own.ru_utime) + seconds(own.ru_stime) + seconds(children.ru_utime) + seconds(children.ru_stime)
  }

  /// (CPU seconds, wall seconds) of `body`, run again until at least `minimumSeconds` of
  /// wall time have passed, so that an optimized build measures more than clock ticks.
  func measure(minimumSeconds: Double = 0.8, _ body: () throws -> Void) rethrows -> (cpu: Double, wall: Double) {
    let (cpu, wall) = (cpuSeconds(), DispatchTime.now().uptimeNanoseconds)
    var elapsed = 0.0
    repeat {
      try body()
      elapsed = Double(DispatchTime.now().uptimeNanoseconds - wall) / 1e9
    } while elapsed < minimumSeconds
    return (cpuSeconds() - cpu, elapsed)
  }

  func quiet() -> PrepareOptions {
    var options = PrepareOptions()
    options.logger.logLevel = .critical
    return options
  }

  /// Whether this machine runs two busy threads at once right now (not when other work
  /// holds its cores): a pure computation on a 2-thread pool, CPU time against wall time.
  func twoCoresAreFree() -> Bool {
    guard ProcessInfo.processInfo.activeProcessorCount >= 2 else { return false }
    let pool = WorkerPool(threads: 2)
    let busy = measure(minimumSeconds: 0.3) {
      pool.forEach(2) { _ in
        var x = 1.0
        for i in 0..<20_000_000 { x = x * 1.000_000_1 + Double(i & 1) }
        precondition(x > 0)
      }
    }
    return busy.cpu > busy.wall * 1.6
  }

  /// Noise-bank indexing alone, `augment` with that bank (each repeated for at least 0.8 s),
  /// and `prepare` of the packed AISHELL corpus (unpacked with one `tar` per thread), each
  /// with 1 thread: CPU time stays within wall time (+5 % and 50 ms of clock granularity).
  /// With 2 threads, when two cores are free, indexing and the augment run use more than
  /// one core: the measurement sees parallel work when there is some.
  func testOneThreadNeverComputesOnTwo() throws {
    let directory = TemporaryDirectory("budget")
    let root = directory.path + "/corpus"
    try LibriSpeechFixture(root: root).write(LibriSpeechFixture.standard(perSplit: 12))
    for i in 0..<24 {
      try AudioEncoder.write(
        interleaved: Signals.noise(count: 64_000, amplitude: 0.2, seed: UInt64(i)), sampleRateHertz: 16_000,
        format: .flac16, to: directory.file("bank/noise/n\(i).flac"))
    }
    // Noise-bank indexing alone (it decodes every file): the phase that once ignored `threads`.
    // The 2-thread runs show that the measurement sees parallel work; they need two free cores.
    let parallelVisible = twoCoresAreFree()
    for threads in [1, 2] where threads == 1 || parallelVisible {
      let indexing = try measure {
        _ = try NoiseBank.index(root: directory.path + "/bank", subsets: ["noise"], pool: WorkerPool(threads: threads))
      }
      if threads == 1 {
        XCTAssertLessThanOrEqual(indexing.cpu, indexing.wall * 1.05 + 0.05, "noise-bank indexing on 1 thread used more: \(indexing)")
      } else {
        XCTAssertGreaterThan(indexing.cpu, indexing.wall * 1.2, "noise-bank indexing on 2 threads was not parallel: \(indexing)")
      }
    }
    func augmentRecipe(threads: Int) -> Recipe {
      var recipe = Recipe(
        name: "budget", corpus: CorpusConfig(kind: .librispeech, root: root, splits: ["train-clean-100", "dev-clean"]),
        output: directory.path + "/aug\(threads)")
      recipe.threads = threads
      var config = AugmentConfig()
      config.noise.bank = directory.path + "/bank"
      config.speedFactors = [0.9, 1.0, 1.1]
      recipe.augment = config
      return recipe
    }
    var again = quiet()
    again.force = true
    let one = try measure { _ = try augment(recipe: augmentRecipe(threads: 1), options: again) }
    XCTAssertLessThanOrEqual(one.cpu, one.wall * 1.05 + 0.05, "augment --threads 1 used more than one core: \(one)")

    let corpus = directory.path + "/mini-aishell"
    let bundled = repositoryRoot + "/corpora/mini-aishell/data_aishell"
    try copyTree(bundled + "/transcript", to: corpus + "/data_aishell/transcript")
    for archive in try FileManager.default.contentsOfDirectory(atPath: bundled + "/wav") where archive.hasSuffix(".tar.gz") {
      try copyTree(bundled + "/wav/" + archive, to: corpus + "/data_aishell/wav/" + archive)
    }
    var aishell = try Recipe.load(path: repositoryRoot + "/recipes/mini-aishell.yaml")
    aishell.corpus.root = corpus
    aishell.output = directory.path + "/aishell"
    aishell.threads = 1
    let unpacked = try measure(minimumSeconds: 0) { _ = try prepare(recipe: aishell, options: quiet()) }
    XCTAssertTrue(FileManager.default.fileExists(atPath: corpus + "/data_aishell/wav/train"))
    XCTAssertLessThanOrEqual(unpacked.cpu, unpacked.wall * 1.05 + 0.05, "AISHELL prepare --threads 1 used more than one core: \(unpacked)")

    if parallelVisible {
      let two = try measure { _ = try augment(recipe: augmentRecipe(threads: 2), options: again) }
      XCTAssertGreaterThan(two.cpu, two.wall * 1.1, "augment --threads 2 did not compute in parallel: \(two)")
    }
  }
}
