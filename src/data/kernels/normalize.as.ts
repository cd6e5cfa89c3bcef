// AssemblyScript (compiled by scripts/build_wasm.mjs into normalize_module.ts; not part of the
// TypeScript build). torchvision's ToTensor + Normalize for interleaved 8-bit RGB on 128-bit
// SIMD, in its float32 order: ((v / 255) − mean) / std, each step rounded to float32, written as
// three CHW planes. pixels.ts's toNormalizedChw computes the same values with Math.fround.

/** `n` RGB pixels at `src` → float32 planes at `dst` (R, then G, then B); `params` holds mean[3], std[3] as f32. */
export function normalizeRgb(src: usize, n: i32, dst: usize, params: usize): void {
  const k255 = f32x4.splat(255);
  const m0 = f32x4.splat(load<f32>(params)), m1 = f32x4.splat(load<f32>(params, 4)), m2 = f32x4.splat(load<f32>(params, 8));
  const s0 = f32x4.splat(load<f32>(params, 12)), s1 = f32x4.splat(load<f32>(params, 16)), s2 = f32x4.splat(load<f32>(params, 20));
  const plane = <usize>n * 4;
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const p = src + <usize>(i * 3);
    const a = v128.load(p), b = v128.load(p, 16), c = v128.load(p, 32);
    // de-interleave 16 pixels: lanes 16–31 of a shuffle address its second operand
    const rAB = i8x16.shuffle(a, b, 0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 0, 0, 0, 0, 0);
    const r = i8x16.shuffle(rAB, c, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 17, 20, 23, 26, 29);
    const gAB = i8x16.shuffle(a, b, 1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 0, 0, 0, 0, 0);
    const g = i8x16.shuffle(gAB, c, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 18, 21, 24, 27, 30);
    const bAB = i8x16.shuffle(a, b, 2, 5, 8, 11, 14, 17, 20, 23, 26, 29, 0, 0, 0, 0, 0, 0);
    const bl = i8x16.shuffle(bAB, c, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 19, 22, 25, 28, 31);
    const o = dst + <usize>i * 4;
    plane16(r, o, k255, m0, s0);
    plane16(g, o + plane, k255, m1, s1);
    plane16(bl, o + 2 * plane, k255, m2, s2);
  }
  for (; i < n; i++) {
    const p = src + <usize>(i * 3);
    const o = dst + <usize>i * 4;
    store<f32>(o, (<f32>load<u8>(p) / 255 - load<f32>(params)) / load<f32>(params, 12));
    store<f32>(o + plane, (<f32>load<u8>(p, 1) / 255 - load<f32>(params, 4)) / load<f32>(params, 16));
    store<f32>(o + 2 * plane, (<f32>load<u8>(p, 2) / 255 - load<f32>(params, 8)) / load<f32>(params, 20));
  }
}

/** 16 bytes → 16 normalised floats at `o`. */
@inline function plane16(v: v128, o: usize, k255: v128, m: v128, s: v128): void {
  const lo = i16x8.extend_low_i8x16_u(v), hi = i16x8.extend_high_i8x16_u(v);
  v128.store(o, f32x4.div(f32x4.sub(f32x4.div(f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(lo)), k255), m), s));
  v128.store(o, f32x4.div(f32x4.sub(f32x4.div(f32x4.convert_i32x4_u(i32x4.extend_high_i16x8_u(lo)), k255), m), s), 16);
  v128.store(o, f32x4.div(f32x4.sub(f32x4.div(f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(hi)), k255), m), s), 32);
  v128.store(o, f32x4.div(f32x4.sub(f32x4.div(f32x4.convert_i32x4_u(i32x4.extend_high_i16x8_u(hi)), k255), m), s), 48);
}

/** Where the caller's buffers may start (after the module's static data). */
export function heapBase(): usize {
  return __heap_base;
}
