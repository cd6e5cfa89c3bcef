/** Host helpers for 2-D maps: resizing, display normalisation, argmax. */

/**
 * Bilinear resize of a [h, w] map to [outH, outW] with half-pixel centres (PyTorch's
 * `interpolate(mode='bilinear', align_corners=False)`, OpenCV's `resize`).
 */
export function resizeBilinear(map: Float32Array, h: number, w: number, outH: number, outW: number): Float32Array {
  if (map.length !== h * w) throw new RangeError(`resizeBilinear: a ${h}×${w} map needs ${h * w} values, got ${map.length}`);
  const out = new Float32Array(outH * outW);
  const sy = h / outH;
  const sx = w / outW;
  for (let y = 0; y < outH; y++) {
    const fy = Math.max(0, (y + 0.5) * sy - 0.5);
    const y0 = Math.min(Math.floor(fy), h - 1);
    const y1 = Math.min(y0 + 1, h - 1);
    const ty = fy - y0;
    for (let x = 0; x < outW; x++) {
      const fx = Math.max(0, (x + 0.5) * sx - 0.5);
      const x0 = Math.min(Math.floor(fx), w - 1);
      const x1 = Math.min(x0 + 1, w - 1);
      const tx = fx - x0;
      const top = map[y0 * w + x0]! * (1 - tx) + map[y0 * w + x1]! * tx;
      const bottom = map[y1 * w + x0]! * (1 - tx) + map[y1 * w + x1]! * tx;
      out[y * outW + x] = top * (1 - ty) + bottom * ty;
    }
  }
  return out;
}

/** (v − min) / (max − min) into [0, 1]; a constant map becomes all zeros. */
export function normaliseMinMax(map: ArrayLike<number>): Float32Array {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < map.length; i++) {
    lo = Math.min(lo, map[i]!);
    hi = Math.max(hi, map[i]!);
  }
  const span = hi - lo;
  return Float32Array.from(map as ArrayLike<number>, (v) => (span > 0 ? (v - lo) / span : 0));
}

/** Index of the largest value of row b of a [B, n] array. */
export function argmaxRow(values: Float32Array, b: number, n: number): number {
  let best = 0;
  for (let j = 1; j < n; j++) if (values[b * n + j]! > values[b * n + best]!) best = j;
  return best;
}
