/**
 * The WebAssembly SIMD resampler against the JavaScript passes it replaces (which match PIL
 * bit for bit, see transform_goldens.test.ts), and the committed module against its source.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resamplePixels } from '../../src/data/resample.js';
import { newPixelImage } from '../../src/data/pixels.js';
import { Random } from '../../src/random.js';
import { simdAvailable } from '../../src/data/simd/resample.js';
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

  it('the committed module is what resample.as.ts compiles to', async () => {
    const wasm = await compileKernel(join(ROOT, 'src/data/simd/resample.as.ts'));
    expect(moduleText('resample', wasm)).toBe(readFileSync(join(ROOT, 'src/data/simd/resample_module.ts'), 'utf8'));
  });
});
