import DS2Core
import Foundation

/// Speed perturbation by rational-ratio polyphase resampling (Ko et al. 2015; Kaldi's
/// `sp0.9`/`sp1.1`): a factor `f` shortens the signal to `1/f` of its length and scales
/// every frequency (pitch and formants) by `f`, like playing a tape faster.
///
/// `f` is taken as the reduced fraction `M/L` (e.g. 1.1 = 11/10, 0.9 = 9/10; factors are
/// rounded to 1/1000). Output sample `m` is the band-limited value of the input at
/// position `m·M/L`, computed by a Kaiser-windowed sinc low-pass (`tapsPerPhase` taps per
/// output sample, cutoff `rolloff · min(1, 1/f)` of the input Nyquist, Kaiser β = 12:
/// about 120 dB stop-band attenuation, pass band to ~86 % of the output Nyquist) split
/// into `L` phases. The filter is built once per factor. Tests hold it to libsamplerate's
/// `SINC_MEDIUM` quality (pass-band error against `SINC_BEST`, alias rejection) at
/// ~15× its speed.
/// Output length: `floor(n · L / M)` samples for `n` input samples.
public final class SpeedPerturber: Sendable {
  public let factor: Double
  /// Upsampling factor `L` and downsampling factor `M` (`factor = M / L`).
  public let up: Int
  public let down: Int
  public let tapsPerPhase: Int
  /// `up × tapsPerPhase` coefficients; phase `p`'s taps are contiguous.
  private let table: [Float]

  /// - Parameters:
  ///   - factor: speed factor in (0.5, 2].
  ///   - tapsPerPhase: filter length per output sample (a multiple of 8).
  /// - Precondition: factor in (0.5, 2], tapsPerPhase a positive multiple of 8.
  public init(factor: Double, tapsPerPhase: Int = 128, rolloff: Double = 0.93, kaiserBeta: Double = 12.0) {
    precondition(factor > 0.5 && factor <= 2, "speed factor must be in (0.5, 2]")
    precondition(tapsPerPhase > 0 && tapsPerPhase % 8 == 0, "taps per phase must be a positive multiple of 8")
    self.factor = factor
    var m = Int((factor * 1000).rounded())
    var l = 1000
    let divisor = gcd(m, l)
    m /= divisor
    l /= divisor
    up = l
    down = m
    self.tapsPerPhase = tapsPerPhase
    let half = tapsPerPhase / 2
    // Cutoff in cycles per upsampled sample.
    let cutoff = rolloff * 0.5 / Double(max(l, m))
    let span = Double(half * l)  // half-length of the prototype in upsampled samples
    let i0Beta = besselI0(kaiserBeta)
    var table = [Float](repeating: 0, count: l * tapsPerPhase)
    for phase in 0..<l {
      for k in 0..<tapsPerPhase {
        let d = Double((half - 1 - k) * l + phase)  // distance in upsampled samples
        let ratio = d / span
        guard abs(ratio) < 1 else { continue }
        let window = besselI0(kaiserBeta * (1 - ratio * ratio).squareRoot()) / i0Beta
        let x = 2 * cutoff * d
        let sinc = x == 0 ? 1 : sin(Double.pi * x) / (Double.pi * x)
        table[phase * tapsPerPhase + k] = Float(Double(l) * 2 * cutoff * sinc * window)
      }
    }
    self.table = table
  }

  /// Output length for `inputCount` samples: `floor(inputCount · L / M)`.
  public func outputCount(inputCount: Int) -> Int { inputCount * up / down }

  /// The perturbed signal (same sample rate).
  public func apply(_ input: [Float]) -> [Float] {
    let count = outputCount(inputCount: input.count)
    let half = tapsPerPhase / 2
    // Zero-pad so every tap window is in range.
    var padded = [Float](repeating: 0, count: input.count + tapsPerPhase + 8)
    padded.withUnsafeMutableBufferPointer { p in
      input.withUnsafeBufferPointer { x in
        (p.baseAddress! + half).update(from: x.baseAddress!, count: x.count)
      }
    }
    return [Float](unsafeUninitializedCapacity: count) { output, initialized in
      padded.withUnsafeBufferPointer { x in
        table.withUnsafeBufferPointer { h in
          let xBase = UnsafeRawPointer(x.baseAddress!)
          let hBase = UnsafeRawPointer(h.baseAddress!)
          let blocks = tapsPerPhase / 8
          // Output m reads input position m·M/L = base + phase/L; step both without dividing.
          var base = 0
          var phase = 0
          for m in 0..<count {
            if m > 0 {
              phase += down
              while phase >= up {
                phase -= up
                base += 1
              }
            }
            // input index of tap 0: base − half + 1; in the padded array: + half
            var xp = xBase + (base + 1) * MemoryLayout<Float>.stride
            var hp = hBase + phase * tapsPerPhase * MemoryLayout<Float>.stride
            // Four independent multiply-add chains (tapsPerPhase is a multiple of 8), each
            // product rounded before the add: without FMA in the target (a portable build) a
            // fused `addProduct` becomes a call to libm's software fma per lane, 6× slower.
            var acc0 = SIMD8<Float>()
            var acc1 = SIMD8<Float>()
            var acc2 = SIMD8<Float>()
            var acc3 = SIMD8<Float>()
            var b = 0
            while b + 3 < blocks {
              acc0 += xp.loadUnaligned(as: SIMD8<Float>.self) * hp.loadUnaligned(as: SIMD8<Float>.self)
              acc1 += (xp + 32).loadUnaligned(as: SIMD8<Float>.self) * (hp + 32).loadUnaligned(as: SIMD8<Float>.self)
              acc2 += (xp + 64).loadUnaligned(as: SIMD8<Float>.self) * (hp + 64).loadUnaligned(as: SIMD8<Float>.self)
              acc3 += (xp + 96).loadUnaligned(as: SIMD8<Float>.self) * (hp + 96).loadUnaligned(as: SIMD8<Float>.self)
              xp += 128
              hp += 128
              b += 4
            }
            while b < blocks {
              acc0 += xp.loadUnaligned(as: SIMD8<Float>.self) * hp.loadUnaligned(as: SIMD8<Float>.self)
              xp += 32
              hp += 32
              b += 1
            }
            acc0 += acc2
            acc1 += acc3
            output[m] = (acc0 + acc1).sum()
          }
        }
      }
      initialized = count
    }
  }
}

private func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

/// Zeroth-order modified Bessel function of the first kind (power series).
func besselI0(_ x: Double) -> Double {
  var sum = 1.0
  var term = 1.0
  let half = x / 2
  for k in 1..<60 {
    term *= (half / Double(k)) * (half / Double(k))
    sum += term
    if term < 1e-17 * sum { break }
  }
  return sum
}
