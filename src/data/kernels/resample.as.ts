// AssemblyScript (compiled by scripts/build_wasm.mjs into resample_module.ts; not part of the
// TypeScript build). PIL's 8-bit resampling passes (libImaging/Resample.c: ImagingResampleHorizontal_8bpc,
// ImagingResampleVertical_8bpc) for interleaved RGB, on 128-bit SIMD: the same 22-bit fixed-point
// coefficients, int32 sums and clip8 as PIL, so the results are bit-identical to resample.ts.
//
// Memory is laid out by the caller. Coefficients: per output index a (min, taps) pair of i32 in
// `bounds` and `ksize` i32 weights in `weights`. Buffers need 16 bytes of slack after their end:
// the passes read and write whole vectors past the last pixel.

const PRECISION_BITS: i32 = 32 - 8 - 2;

/** Along rows: `height` rows of `inWidth` RGB pixels at `src` → rows of `outWidth` pixels at `dst`. */
export function horizontalRgb(src: usize, inWidth: i32, height: i32, dst: usize, outWidth: i32, bounds: usize, weights: usize, ksize: i32): void {
  const half = i32x4.splat(1 << (PRECISION_BITS - 1));
  const inStride = <usize>(inWidth * 3);
  for (let y = 0; y < height; y++) {
    const row = src + <usize>y * inStride;
    let o = dst + <usize>(y * outWidth * 3);
    for (let x = 0; x < outWidth; x++) {
      const min = load<i32>(bounds + (<usize>x << 3));
      const taps = load<i32>(bounds + (<usize>x << 3), 4);
      let p = row + <usize>(min * 3);
      let w = weights + <usize>(x * ksize) * 4;
      let acc = half;
      for (let t = 0; t < taps; t++) {
        // R, G, B and the next pixel's R (weighted into lane 3, which is dropped)
        const px = i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(p)));
        acc = i32x4.add(acc, i32x4.mul(px, i32x4.splat(load<i32>(w))));
        p += 3;
        w += 4;
      }
      const s = i32x4.shr_s(acc, PRECISION_BITS);
      const n = i16x8.narrow_i32x4_s(s, s);
      // four bytes out: the fourth is the next pixel's R, written after this one
      v128.store32_lane(o, i8x16.narrow_i16x8_u(n, n), 0);
      o += 3;
    }
  }
}

/** Down columns: rows of `stride` bytes at `src` → `outHeight` rows at `dst`. */
export function vertical(src: usize, stride: i32, dst: usize, outHeight: i32, bounds: usize, weights: usize, ksize: i32): void {
  const half = i32x4.splat(1 << (PRECISION_BITS - 1));
  const rowBytes = <usize>stride;
  for (let yy = 0; yy < outHeight; yy++) {
    const min = load<i32>(bounds + (<usize>yy << 3));
    const taps = load<i32>(bounds + (<usize>yy << 3), 4);
    const w0 = weights + <usize>(yy * ksize) * 4;
    const first = src + <usize>min * rowBytes;
    const o = dst + <usize>yy * rowBytes;
    for (let i: usize = 0; i < rowBytes; i += 16) {
      let a0 = half, a1 = half, a2 = half, a3 = half;
      let p = first + i;
      let w = w0;
      for (let t = 0; t < taps; t++) {
        const v = v128.load(p);
        const k = i32x4.splat(load<i32>(w));
        const lo = i16x8.extend_low_i8x16_u(v), hi = i16x8.extend_high_i8x16_u(v);
        a0 = i32x4.add(a0, i32x4.mul(i32x4.extend_low_i16x8_u(lo), k));
        a1 = i32x4.add(a1, i32x4.mul(i32x4.extend_high_i16x8_u(lo), k));
        a2 = i32x4.add(a2, i32x4.mul(i32x4.extend_low_i16x8_u(hi), k));
        a3 = i32x4.add(a3, i32x4.mul(i32x4.extend_high_i16x8_u(hi), k));
        p += rowBytes;
        w += 4;
      }
      const lo16 = i16x8.narrow_i32x4_s(i32x4.shr_s(a0, PRECISION_BITS), i32x4.shr_s(a1, PRECISION_BITS));
      const hi16 = i16x8.narrow_i32x4_s(i32x4.shr_s(a2, PRECISION_BITS), i32x4.shr_s(a3, PRECISION_BITS));
      // a row's last vector spills into the next row, which is written after it
      v128.store(o + i, i8x16.narrow_i16x8_u(lo16, hi16));
    }
  }
}

/** Where the caller's buffers may start (after the module's static data). */
export function heapBase(): usize {
  return __heap_base;
}
