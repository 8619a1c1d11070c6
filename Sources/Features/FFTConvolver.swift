internal import CFFTW
import Foundation

/// Linear convolution of a signal with an impulse response by FFT (FFTW r2c/c2r),
/// for reverberation with room impulse responses.
///
/// Owns its plans and buffers (made for the sizes of the first call, remade when larger
/// ones are needed) and frees them in `deinit`. Not Sendable: one per thread.
public final class FFTConvolver {
  private var size = 0
  private var input: UnsafeMutablePointer<Float>?
  private var spectrum: UnsafeMutablePointer<fftwf_complex>?
  private var kernelSpectrum: UnsafeMutablePointer<fftwf_complex>?
  private var forward: fftwf_plan?
  private var inverse: fftwf_plan?

  public init() {}

  deinit { release() }

  private func release() {
    plannerLock.lock()
    if let forward { fftwf_destroy_plan(forward) }
    if let inverse { fftwf_destroy_plan(inverse) }
    plannerLock.unlock()
    fftwf_free(input)
    fftwf_free(spectrum)
    fftwf_free(kernelSpectrum)
    forward = nil
    inverse = nil
    input = nil
    spectrum = nil
    kernelSpectrum = nil
  }

  /// Smallest size ≥ n of the form 2^a·3^b·5^c (fast FFTW sizes).
  static func fastSize(_ n: Int) -> Int {
    var best = Int.max
    var p2 = 1
    while p2 < 2 * n {
      var p3 = p2
      while p3 < 2 * n {
        var p5 = p3
        while p5 < 2 * n {
          if p5 >= n { best = min(best, p5) }
          p5 *= 5
        }
        p3 *= 3
      }
      p2 *= 2
    }
    return best
  }

  private func prepare(size needed: Int) {
    let n = Self.fastSize(needed)
    guard n != size else { return }
    release()
    size = n
    input = fftwf_alloc_real(n)
    spectrum = fftwf_alloc_complex(n / 2 + 1)
    kernelSpectrum = fftwf_alloc_complex(n / 2 + 1)
    plannerLock.lock()
    forward = fftwf_plan_dft_r2c_1d(Int32(n), input, spectrum, UInt32(FFTW_ESTIMATE))
    inverse = fftwf_plan_dft_c2r_1d(Int32(n), spectrum, input, UInt32(FFTW_ESTIMATE))
    plannerLock.unlock()
  }

  /// The first `signal.count` samples of `signal ∗ impulseResponse` (the reverberant
  /// tail past the end is cut, so lengths are unchanged).
  public func convolve(_ signal: [Float], with impulseResponse: [Float]) -> [Float] {
    guard !signal.isEmpty, !impulseResponse.isEmpty else { return signal.map { _ in 0 } }
    prepare(size: signal.count + impulseResponse.count - 1)
    let n = size
    let bins = n / 2 + 1
    let input = self.input!
    let spectrum = UnsafeMutableRawPointer(self.spectrum!).assumingMemoryBound(to: Float.self)
    let kernel = UnsafeMutableRawPointer(self.kernelSpectrum!).assumingMemoryBound(to: Float.self)
    // Kernel spectrum.
    input.initialize(repeating: 0, count: n)
    impulseResponse.withUnsafeBufferPointer { input.update(from: $0.baseAddress!, count: $0.count) }
    fftwf_execute(forward)
    kernel.update(from: spectrum, count: 2 * bins)
    // Signal spectrum, product, inverse.
    input.initialize(repeating: 0, count: n)
    signal.withUnsafeBufferPointer { input.update(from: $0.baseAddress!, count: $0.count) }
    fftwf_execute(forward)
    let scale = 1 / Float(n)
    for k in 0..<bins {
      let (a, b) = (spectrum[2 * k], spectrum[2 * k + 1])
      let (c, d) = (kernel[2 * k], kernel[2 * k + 1])
      spectrum[2 * k] = (a * c - b * d) * scale
      spectrum[2 * k + 1] = (a * d + b * c) * scale
    }
    fftwf_execute(inverse)
    return Array(UnsafeBufferPointer(start: input, count: signal.count))
  }
}
