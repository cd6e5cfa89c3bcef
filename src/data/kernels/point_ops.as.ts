// AssemblyScript (compiled by scripts/build_wasm.mjs into point_ops_module.ts; not part of the
// TypeScript build). The per-pixel RandAugment / ImageEnhance operations of pixels.ts for 8-bit
// images, with the same arithmetic (PIL's lookup tables, float32 blends truncated to uint8, the
// SMOOTH filter in float64), so the bytes are identical.

/** dst[i] = lut[i mod c][src[i]]: `c` tables of 256 bytes at `luts`. */
export function applyLut(src: usize, dst: usize, n: i32, c: i32, luts: usize): void {
  if (c == 3) {
    for (let i = 0; i + 3 <= n; i += 3) {
      const p = src + <usize>i, o = dst + <usize>i;
      store<u8>(o, load<u8>(luts + <usize>load<u8>(p)));
      store<u8>(o, load<u8>(luts + 256 + <usize>load<u8>(p, 1)), 1);
      store<u8>(o, load<u8>(luts + 512 + <usize>load<u8>(p, 2)), 2);
    }
    return;
  }
  for (let i = 0; i < n; i++) store<u8>(dst + <usize>i, load<u8>(luts + <usize>(i % c) * 256 + <usize>load<u8>(src + <usize>i)));
}

/** Per-channel histograms: `c` × 256 u32 counts at `out` (zeroed here). */
export function histograms(src: usize, n: i32, c: i32, out: usize): void {
  memory.fill(out, 0, <usize>c * 1024);
  for (let i = 0; i < n; i++) {
    const at = out + (<usize>(i % c) * 256 + <usize>load<u8>(src + <usize>i)) * 4;
    store<u32>(at, load<u32>(at) + 1);
  }
}

// Image.blend(degenerate, img, factor) for one value, in PIL's float32 arithmetic
@inline function blend(d: f32, v: f32, a: f32): u8 {
  const t: f32 = d + a * (v - d);
  return t <= 0 ? 0 : t >= 255 ? 255 : <u8>(<i32>t);
}

// PIL's convert('L'): ITU-R 601-2 luma, 16-bit fixed point, rounded
@inline function luma(p: usize): i32 {
  return <i32>((<u32>load<u8>(p) * 19595 + <u32>load<u8>(p, 1) * 38470 + <u32>load<u8>(p, 2) * 7471 + 0x8000) >> 16);
}

/** ImageEnhance.Color on RGB: blend each pixel with its luma. */
export function saturation(src: usize, dst: usize, pixels: i32, factor: f32): void {
  for (let i = 0; i < pixels; i++) {
    const p = src + <usize>(i * 3), o = dst + <usize>(i * 3);
    const l = <f32>luma(p);
    store<u8>(o, blend(l, <f32>load<u8>(p), factor));
    store<u8>(o, blend(l, <f32>load<u8>(p, 1), factor), 1);
    store<u8>(o, blend(l, <f32>load<u8>(p, 2), factor), 2);
  }
}

/** ImageEnhance.Sharpness: blend with ImageFilter.SMOOTH; border pixels are copied (they blend with themselves). */
export function sharpness(src: usize, dst: usize, w: i32, h: i32, c: i32, factor: f32): void {
  const stride = w * c;
  memory.copy(dst, src, <usize>(stride * h));
  const k: f64 = <f64>(<f32>(1.0 / 13.0)), k5: f64 = <f64>(<f32>(5.0 / 13.0));
  for (let y = 1; y < h - 1; y++) {
    for (let i = y * stride + c, end = (y + 1) * stride - c; i < end; i++) {
      const p = src + <usize>i;
      const up = p - <usize>stride, down = p + <usize>stride;
      const ring = <i32>load<u8>(up - <usize>c) + <i32>load<u8>(up) + <i32>load<u8>(up + <usize>c) + <i32>load<u8>(p - <usize>c)
        + <i32>load<u8>(p + <usize>c) + <i32>load<u8>(down - <usize>c) + <i32>load<u8>(down) + <i32>load<u8>(down + <usize>c);
      const s = <f64>load<u8>(p);
      const v = 0.5 + <f64>ring * k + s * k5;
      const smooth: f32 = v <= 0 ? 0 : v >= 255 ? 255 : <f32>(<i32>v);
      store<u8>(dst + <usize>i, blend(smooth, <f32>s, factor));
    }
  }
}

/** Where the caller's buffers may start (after the module's static data). */
export function heapBase(): usize {
  return __heap_base;
}
