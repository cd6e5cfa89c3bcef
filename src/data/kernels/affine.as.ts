// AssemblyScript (compiled by scripts/build_wasm.mjs into affine_module.ts; not part of the
// TypeScript build). PIL's Image.transform(AFFINE) for 8-bit images with the BILINEAR or BICUBIC
// filter (libImaging/Geometry.c), exactly as affine.ts computes it: the same float64 arithmetic
// in the same order (WebAssembly never fuses multiply-adds), so the bytes are identical. RGB
// bicubic runs two channels per float64x2 vector.

// PIL's BICUBIC macro: the a = −1 cubic through four samples
@inline function cubic(v1: f64, v2: f64, v3: f64, v4: f64, d: f64): f64 {
  return v2 + d * (-v1 + v3 + d * (2 * (v1 - v2) + v3 - v4 + d * (-v1 + v2 - v3 + v4)));
}

@inline function toByte(v: f64): u8 {
  return v <= 0 ? 0 : v >= 255 ? 255 : <u8>(<i32>v);
}

@inline function clampTo(v: i32, n: i32): i32 {
  return v < 0 ? 0 : v < n ? v : n - 1;
}

// RGB pixels on 128-bit SIMD: a pixel's R, G, B (and the next byte, unused) as i32x4, split into
// float64 pairs (R, G) and (B, ·); the cubic runs on both lanes with the scalar's operation order.

@inline function rgb(src: usize, at: i32): v128 {
  return i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(src + <usize>at)));
}

@inline function lo(p: v128): v128 {
  return f64x2.convert_low_i32x4_u(p);
}

@inline function hi(p: v128): v128 {
  return f64x2.convert_low_i32x4_u(i32x4.shuffle(p, p, 2, 3, 0, 1));
}

@inline function cubicv(v1: v128, v2: v128, v3: v128, v4: v128, d: v128): v128 {
  const t3 = f64x2.add(f64x2.sub(f64x2.add(f64x2.neg(v1), v2), v3), v4);
  const t2 = f64x2.add(f64x2.sub(f64x2.add(f64x2.mul(f64x2.splat(2), f64x2.sub(v1, v2)), v3), v4), f64x2.mul(d, t3));
  const t1 = f64x2.add(f64x2.add(f64x2.neg(v1), v3), f64x2.mul(d, t2));
  return f64x2.add(v2, f64x2.mul(d, t1));
}

@inline function storeRgb(o: usize, rg: v128, bx: v128): void {
  store<u8>(o, toByte(f64x2.extract_lane(rg, 0)));
  store<u8>(o, toByte(f64x2.extract_lane(rg, 1)), 1);
  store<u8>(o, toByte(f64x2.extract_lane(bx, 0)), 2);
}

@inline function px(src: usize, i: i32): f64 {
  return <f64>load<u8>(src + <usize>i);
}

/**
 * `w`×`h` pixels of `c` channels at `src` → `dst`: output pixel centre (x + ½, y + ½) samples the
 * input at (a·x + b·y + cc, d·x + e·y + f); outside the input, the fill bytes at `fill`.
 */
export function affine(src: usize, dst: usize, w: i32, h: i32, c: i32, a: f64, b: f64, cc: f64, d: f64, e: f64, f: f64, bicubic: bool, fill: usize): void {
  const stride = w * c;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const xin = a * (<f64>x + 0.5) + b * (<f64>y + 0.5) + cc;
      const yin = d * (<f64>x + 0.5) + e * (<f64>y + 0.5) + f;
      const o = dst + <usize>((y * w + x) * c);
      if (xin < 0 || xin >= <f64>w || yin < 0 || yin >= <f64>h) {
        for (let k = 0; k < c; k++) store<u8>(o + <usize>k, load<u8>(fill + <usize>k));
        continue;
      }
      const xf = xin - 0.5, yf = yin - 0.5;
      const x0 = <i32>Math.floor(xf), y0 = <i32>Math.floor(yf);
      const dx = xf - <f64>x0, dy = yf - <f64>y0;
      if (!bicubic) {
        // PIL's BILINEAR_BODY: clamped columns; the second row only if inside, else the first again
        const c0 = clampTo(x0, w) * c, c1 = clampTo(x0 + 1, w) * c;
        const r0 = clampTo(y0, h) * stride;
        const r1 = y0 + 1 >= 0 && y0 + 1 < h ? (y0 + 1) * stride : -1;
        for (let k = 0; k < c; k++) {
          const p0 = px(src, r0 + c0 + k), p1 = px(src, r0 + c1 + k);
          const v1 = p0 + (p1 - p0) * dx;
          let v2 = v1;
          if (r1 >= 0) {
            const q0 = px(src, r1 + c0 + k), q1 = px(src, r1 + c1 + k);
            v2 = q0 + (q1 - q0) * dx;
          }
          store<u8>(o + <usize>k, toByte(v1 + (v2 - v1) * dy));
        }
        continue;
      }
      // PIL's BICUBIC_BODY: four clamped columns; a row past the edge repeats the previous row's value
      const q0 = clampTo(x0 - 1, w) * c, q1 = clampTo(x0, w) * c, q2 = clampTo(x0 + 1, w) * c, q3 = clampTo(x0 + 2, w) * c;
      const r0 = clampTo(y0 - 1, h) * stride;
      const r1 = y0 >= 0 && y0 < h ? y0 * stride : r0;
      // a zero fraction makes that axis's cubic return its second sample exactly
      if (dy == 0 && c == 3 && dx != 0) {
        const dxv = f64x2.splat(dx);
        const p0 = rgb(src, r1 + q0), p1 = rgb(src, r1 + q1), p2 = rgb(src, r1 + q2), p3 = rgb(src, r1 + q3);
        storeRgb(o, cubicv(lo(p0), lo(p1), lo(p2), lo(p3), dxv), cubicv(hi(p0), hi(p1), hi(p2), hi(p3), dxv));
        continue;
      }
      if (dy == 0) {
        for (let k = 0; k < c; k++) {
          const v = dx == 0 ? px(src, r1 + q1 + k) : cubic(px(src, r1 + q0 + k), px(src, r1 + q1 + k), px(src, r1 + q2 + k), px(src, r1 + q3 + k), dx);
          store<u8>(o + <usize>k, toByte(v));
        }
        continue;
      }
      const r2 = y0 + 1 >= 0 && y0 + 1 < h ? (y0 + 1) * stride : r1;
      const r3 = y0 + 2 >= 0 && y0 + 2 < h ? (y0 + 2) * stride : r2;
      if (c == 3 && dx != 0) {
        const dxv = f64x2.splat(dx);
        const a0 = rgb(src, r0 + q0), a1 = rgb(src, r0 + q1), a2 = rgb(src, r0 + q2), a3 = rgb(src, r0 + q3);
        const b0 = rgb(src, r1 + q0), b1 = rgb(src, r1 + q1), b2 = rgb(src, r1 + q2), b3 = rgb(src, r1 + q3);
        const c0 = rgb(src, r2 + q0), c1 = rgb(src, r2 + q1), c2 = rgb(src, r2 + q2), c3 = rgb(src, r2 + q3);
        const d0 = rgb(src, r3 + q0), d1 = rgb(src, r3 + q1), d2 = rgb(src, r3 + q2), d3 = rgb(src, r3 + q3);
        const rg = cubicv(
          cubicv(lo(a0), lo(a1), lo(a2), lo(a3), dxv), cubicv(lo(b0), lo(b1), lo(b2), lo(b3), dxv),
          cubicv(lo(c0), lo(c1), lo(c2), lo(c3), dxv), cubicv(lo(d0), lo(d1), lo(d2), lo(d3), dxv), f64x2.splat(dy));
        const bx = cubicv(
          cubicv(hi(a0), hi(a1), hi(a2), hi(a3), dxv), cubicv(hi(b0), hi(b1), hi(b2), hi(b3), dxv),
          cubicv(hi(c0), hi(c1), hi(c2), hi(c3), dxv), cubicv(hi(d0), hi(d1), hi(d2), hi(d3), dxv), f64x2.splat(dy));
        storeRgb(o, rg, bx);
        continue;
      }
      if (c == 3) {
        // dx == 0 here: one column, four rows
        const dyv = f64x2.splat(dy);
        const p0 = rgb(src, r0 + q1), p1 = rgb(src, r1 + q1), p2 = rgb(src, r2 + q1), p3 = rgb(src, r3 + q1);
        storeRgb(o, cubicv(lo(p0), lo(p1), lo(p2), lo(p3), dyv), cubicv(hi(p0), hi(p1), hi(p2), hi(p3), dyv));
        continue;
      }
      for (let k = 0; k < c; k++) {
        if (dx == 0) {
          store<u8>(o + <usize>k, toByte(cubic(px(src, r0 + q1 + k), px(src, r1 + q1 + k), px(src, r2 + q1 + k), px(src, r3 + q1 + k), dy)));
          continue;
        }
        const v1 = cubic(px(src, r0 + q0 + k), px(src, r0 + q1 + k), px(src, r0 + q2 + k), px(src, r0 + q3 + k), dx);
        const v2 = cubic(px(src, r1 + q0 + k), px(src, r1 + q1 + k), px(src, r1 + q2 + k), px(src, r1 + q3 + k), dx);
        const v3 = cubic(px(src, r2 + q0 + k), px(src, r2 + q1 + k), px(src, r2 + q2 + k), px(src, r2 + q3 + k), dx);
        const v4 = cubic(px(src, r3 + q0 + k), px(src, r3 + q1 + k), px(src, r3 + q2 + k), px(src, r3 + q3 + k), dx);
        store<u8>(o + <usize>k, toByte(cubic(v1, v2, v3, v4, dy)));
      }
    }
  }
}

/** Where the caller's buffers may start (after the module's static data). */
export function heapBase(): usize {
  return __heap_base;
}
