/// The per-block loops of `BatchNorm` over a `rows × C` view (C innermost): for `Float`, 8
/// columns at a time (`SIMD8<Float>`, AVX on x86-64); for other scalars (the Double that the
/// numerical-gradient tests use) plain loops. Per column both add the same terms in the
/// same order. The Float path is checked against a direct Double computation.
enum BatchNormKernels {
  /// `sum[j] += x[row, j]` over `rows`.
  static func addColumns<S: TensorScalar>(_ x: UnsafePointer<S>, rows: Range<Int>, columns c: Int, into sum: UnsafeMutablePointer<S>) {
    if S.self == Float.self {
      let (x, sum) = (x.as(Float.self), sum.as(Float.self))
      for row in rows {
        let source = x + row &* c
        var j = 0
        while j &+ 8 <= c {
          store(load(sum + j) + load(source + j), sum + j)
          j &+= 8
        }
        while j < c {
          sum[j] += source[j]
          j &+= 1
        }
      }
      return
    }
    for row in rows {
      for j in 0..<c { sum[j] += x[row * c + j] }
    }
  }

  /// `sum[j] += (x[row, j] − mean[j])²` over `rows`.
  static func addSquaredDeviations<S: TensorScalar>(
    _ x: UnsafePointer<S>, rows: Range<Int>, columns c: Int, mean: UnsafePointer<S>, into sum: UnsafeMutablePointer<S>
  ) {
    if S.self == Float.self {
      let (x, mean, sum) = (x.as(Float.self), mean.as(Float.self), sum.as(Float.self))
      for row in rows {
        let source = x + row &* c
        var j = 0
        while j &+ 8 <= c {
          let d = load(source + j) - load(mean + j)
          store(load(sum + j) + d * d, sum + j)
          j &+= 8
        }
        while j < c {
          let d = source[j] - mean[j]
          sum[j] += d * d
          j &+= 1
        }
      }
      return
    }
    for row in rows {
      for j in 0..<c {
        let d = x[row * c + j] - mean[j]
        sum[j] += d * d
      }
    }
  }

  /// Training: `x̂ = (x − mean) · inverse` into `xHat`; always `y = x · factor + offset`,
  /// clipped to [0, 20] when `clips` (a −0 becomes +0, as `min(max(y, 0), 20)` gives). `y`
  /// may be `x`.
  static func normalize<S: TensorScalar>(
    _ x: UnsafePointer<S>, rows: Range<Int>, columns c: Int,
    xHat: (UnsafeMutablePointer<S>, mean: UnsafePointer<S>, inverse: UnsafePointer<S>)?,
    factor: UnsafePointer<S>, offset: UnsafePointer<S>, clips: Bool, into y: UnsafeMutablePointer<S>
  ) {
    let ceiling = S(ClippedReLU.ceiling)
    if S.self == Float.self {
      let (x, y, factor, offset) = (x.as(Float.self), y.as(Float.self), factor.as(Float.self), offset.as(Float.self))
      let cached = xHat.map { ($0.0.as(Float.self), $0.mean.as(Float.self), $0.inverse.as(Float.self)) }
      let (zero, top) = (SIMD8<Float>(repeating: 0), SIMD8<Float>(repeating: Float(ceiling)))
      for row in rows {
        let (source, destination) = (x + row &* c, y + row &* c)
        var j = 0
        while j &+ 8 <= c {
          let value = load(source + j)
          if let (xHat, mean, inverse) = cached {
            store((value - load(mean + j)) * load(inverse + j), xHat + (row &* c &+ j))
          }
          var affine = value * load(factor + j) + load(offset + j)
          if clips {
            // (pointwiseMin/Max are not inlined here; masked replacement is.)
            affine = affine.replacing(with: zero, where: affine .<= zero).replacing(with: top, where: affine .> top)
          }
          store(affine, destination + j)
          j &+= 8
        }
        while j < c {
          let value = source[j]
          if let (xHat, mean, inverse) = cached { xHat[row &* c &+ j] = (value - mean[j]) * inverse[j] }
          let affine = value * factor[j] + offset[j]
          destination[j] = clips ? min(max(affine, 0), Float(ceiling)) : affine
          j &+= 1
        }
      }
      return
    }
    for row in rows {
      let base = row * c
      for j in 0..<c {
        let value = x[base + j]
        if let (cache, mean, inverse) = xHat { cache[base + j] = (value - mean[j]) * inverse[j] }
        let affine = value * factor[j] + offset[j]
        y[base + j] = clips ? min(max(affine, 0), ceiling) : affine
      }
    }
  }

  /// First backward pass: `g = dy` — exactly 0, even for a non-finite dy, where the clipped
  /// output `mask` is at 0 or 20 — written to `dx` (which may be `dy`);
  /// `sumGradient[j] += g`, `sumGradientNormalized[j] += g · x̂`.
  static func gradientSums<S: TensorScalar>(
    _ dy: UnsafePointer<S>, mask: UnsafePointer<S>?, xHat: UnsafePointer<S>, rows: Range<Int>, columns c: Int,
    into dx: UnsafeMutablePointer<S>, sumGradient: UnsafeMutablePointer<S>, sumGradientNormalized: UnsafeMutablePointer<S>
  ) {
    let ceiling = S(ClippedReLU.ceiling)
    if S.self == Float.self {
      let (dy, xHat, dx) = (dy.as(Float.self), xHat.as(Float.self), dx.as(Float.self))
      let (sumG, sumGX) = (sumGradient.as(Float.self), sumGradientNormalized.as(Float.self))
      let mask = mask.map { $0.as(Float.self) }
      let (zero, top) = (SIMD8<Float>(repeating: 0), SIMD8<Float>(repeating: Float(ceiling)))
      for row in rows {
        let base = row &* c
        var j = 0
        while j &+ 8 <= c {
          var g = load(dy + (base &+ j))
          if let mask {
            let y = load(mask + (base &+ j))
            g = zero.replacing(with: g, where: (y .> zero) .& (y .< top))
          }
          store(g, dx + (base &+ j))
          store(load(sumG + j) + g, sumG + j)
          store(load(sumGX + j) + g * load(xHat + (base &+ j)), sumGX + j)
          j &+= 8
        }
        while j < c {
          var g = dy[base &+ j]
          if let mask, !(mask[base &+ j] > 0 && mask[base &+ j] < Float(ceiling)) { g = 0 }
          dx[base &+ j] = g
          sumG[j] += g
          sumGX[j] += g * xHat[base &+ j]
          j &+= 1
        }
      }
      return
    }
    for row in rows {
      let base = row * c
      for j in 0..<c {
        var g = dy[base + j]
        if let mask, !(mask[base + j] > 0 && mask[base + j] < ceiling) { g = 0 }
        dx[base + j] = g
        sumGradient[j] += g
        sumGradientNormalized[j] += g * xHat[base + j]
      }
    }
  }

  /// Second backward pass: `dx = factor · (dx − a − x̂ · b)`.
  static func inputGradient<S: TensorScalar>(
    _ dx: UnsafeMutablePointer<S>, xHat: UnsafePointer<S>, rows: Range<Int>, columns c: Int,
    factor: UnsafePointer<S>, a: UnsafePointer<S>, b: UnsafePointer<S>
  ) {
    if S.self == Float.self {
      let (dx, xHat, factor, a, b) = (dx.as(Float.self), xHat.as(Float.self), factor.as(Float.self), a.as(Float.self), b.as(Float.self))
      for row in rows {
        let base = row &* c
        var j = 0
        while j &+ 8 <= c {
          let value = load(factor + j) * (load(dx + (base &+ j)) - load(a + j) - load(xHat + (base &+ j)) * load(b + j))
          store(value, dx + (base &+ j))
          j &+= 8
        }
        while j < c {
          dx[base &+ j] = factor[j] * (dx[base &+ j] - a[j] - xHat[base &+ j] * b[j])
          j &+= 1
        }
      }
      return
    }
    for row in rows {
      let base = row * c
      for j in 0..<c { dx[base + j] = factor[j] * (dx[base + j] - a[j] - xHat[base + j] * b[j]) }
    }
  }

  @inline(__always)
  private static func load(_ pointer: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(pointer).loadUnaligned(as: SIMD8<Float>.self)
  }

  @inline(__always)
  private static func load(_ pointer: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(pointer).loadUnaligned(as: SIMD8<Float>.self)
  }

  @inline(__always)
  private static func store(_ value: SIMD8<Float>, _ pointer: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: SIMD8<Float>.self)
  }
}

extension UnsafePointer {
  /// The same address as a pointer to `T` (the kernels' `Float` fast paths; `T` is the
  /// pointee type at run time).
  @inline(__always)
  fileprivate func `as`<T>(_: T.Type) -> UnsafePointer<T> { UnsafeRawPointer(self).assumingMemoryBound(to: T.self) }
}

extension UnsafeMutablePointer {
  @inline(__always)
  fileprivate func `as`<T>(_: T.Type) -> UnsafeMutablePointer<T> {
    UnsafeMutableRawPointer(self).assumingMemoryBound(to: T.self)
  }
}
