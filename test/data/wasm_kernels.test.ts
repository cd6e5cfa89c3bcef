/**
 * The WebAssembly kernels against the JavaScript loops they replace (which match PIL bit for
 * bit, see transform_goldens.test.ts): the SIMD resampler and the affine transform; and each
 * committed module against its AssemblyScript source.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resamplePixels } from '../../src/data/resample.js';
import { affineTransform, rotationMatrix } from '../../src/data/affine.js';
import { newPixelImage, toNormalizedChw } from '../../src/data/pixels.js';
import { Random } from '../../src/random.js';
import { simdAvailable } from '../../src/data/wasm/resample.js';
import { affineWasm } from '../../src/data/wasm/affine.js';
import { normalizeRgbWasm } from '../../src/data/wasm/normalize.js';
// @ts-expect-error: a plain ES module script without type declarations
import { compileKernel, moduleText } from '../../scripts/build_wasm.mjs';

const ROOT = join(import.meta.dirname, '..', '..');

function photo(w: number, h: number, rng: Random) {
  const img = newPixelImage(w, h, 3);
  // smooth ramps plus noise and hard edges: every tap weight and the clipping get exercised
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) img.data[(y * w + x) * 3 + c] = (x * (c + 1) + y * 3 + (((x >> 3) + (y >> 3)) & 1) * 120 + rng.int(40)) & 255;
    }
  }
  return img;
}

describe('SIMD resampling', () => {
  it('gives the same bytes as the JavaScript passes for random sizes, both filters, up and down', () => {
    // Node 20 has WebAssembly SIMD: the comparison below must not be JavaScript against itself
    expect(simdAvailable()).toBe(true);
    const rng = new Random(7);
    for (let k = 0; k < 120; k++) {
      const [w, h] = [1 + rng.int(260), 1 + rng.int(200)];
      const [ow, oh] = [1 + rng.int(240), 1 + rng.int(240)];
      const interpolation = rng.int(2) ? 'bicubic' : 'bilinear';
      const img = photo(w, h, rng);
      const simd = resamplePixels(img, ow, oh, interpolation);
      const js = resamplePixels(img, ow, oh, interpolation, { simd: false });
      expect([simd.width, simd.height, simd.channels]).toEqual([ow, oh, 3]);
      expect(Buffer.from(simd.data).equals(Buffer.from(js.data)), `${w}×${h} → ${ow}×${oh} ${interpolation}`).toBe(true);
    }
  });

  it('the affine transform gives the JavaScript loop\'s bytes for rotations, shears, translations and general matrices', () => {
    expect(affineWasm(new Uint8Array(3), new Uint8Array(3), 1, 1, 3, [1, 0, 0, 0, 1, 0], true, [0, 0, 0])).toBe(true);
    const rng = new Random(8);
    for (let k = 0; k < 80; k++) {
      const [w, h] = [1 + rng.int(90), 1 + rng.int(70)];
      const channels = rng.int(3) === 0 ? 1 : 3;
      const rgb = photo(w, h, rng);
      const img = channels === 3 ? rgb : { ...rgb, data: rgb.data.filter((_, i) => i % 3 === 0), channels: 1 };
      const s = (rng.uniform() - 0.5) * 0.6;
      const matrices = [
        rotationMatrix(w, h, (rng.uniform() - 0.5) * 60),
        [1, s, 0, 0, 1, 0], [1, 0, 0, s, 1, 0],
        [1, 0, (rng.uniform() - 0.5) * w, 0, 1, 0], [1, 0, 0, 0, 1, Math.round((rng.uniform() - 0.5) * h)],
        Array.from({ length: 6 }, () => (rng.uniform() - 0.5) * 3),
      ] as const;
      for (const m of matrices) {
        for (const filter of ['bilinear', 'bicubic'] as const) {
          const fill = [rng.int(256), rng.int(256), rng.int(256)];
          const a = affineTransform(img, m as never, filter, fill);
          const b = affineTransform(img, m as never, filter, fill, { wasm: false });
          expect(Buffer.from(a.data).equals(Buffer.from(b.data)), `${w}×${h}×${channels} ${filter} [${m.join(', ')}]`).toBe(true);
        }
      }
    }
  });

  it("ToTensor + Normalize gives the JavaScript table's floats (torchvision's float32 order) for any pixel count", () => {
    expect(normalizeRgbWasm(new Uint8Array(3), 1, [0], [1], new Float32Array(3))).toBe(true);
    const rng = new Random(9);
    for (const n of [1, 15, 16, 17, 100, 224 * 224]) {
      const img = photo(n, 1, rng);
      const mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225];
      const a = toNormalizedChw(img, mean, std), b = toNormalizedChw(img, mean, std, undefined, { wasm: false });
      expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer)), `${n} pixels`).toBe(true);
      // R of the first pixel, by hand in float32
      const f = Math.fround;
      expect(a[0]).toBe(f(f(f(img.data[0]! / 255) - f(0.485)) / f(0.229)));
    }
  });

  it.each(['resample', 'affine', 'normalize'])('the committed %s module is what its source compiles to', async (name) => {
    const wasm = await compileKernel(join(ROOT, `src/data/wasm/${name}.as.ts`));
    expect(moduleText(name, wasm)).toBe(readFileSync(join(ROOT, `src/data/wasm/${name}_module.ts`), 'utf8'));
  });
});
