/**
 * The WebAssembly kernels against the JavaScript loops they replace (which match PIL bit for
 * bit, see transform_goldens.test.ts): the SIMD resampler and the affine transform; and each
 * committed module against its AssemblyScript source.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resamplePixels } from '../../src/data/transforms/resample.js';
import { affineTransform, rotationMatrix } from '../../src/data/transforms/affine.js';
import {
  adjustBrightness, adjustContrast, adjustSaturation, adjustSharpness, autocontrast, equalize, invert, newPixelImage, posterize, solarize, solarizeAdd,
  toNormalizedChw, type PixelImage,
} from '../../src/data/transforms/pixels.js';
import { useWasmKernels } from '../../src/data/kernels/instance.js';
import { applyLutWasm } from '../../src/data/kernels/point_ops.js';
import { Random } from '../../src/random.js';
import { simdAvailable } from '../../src/data/kernels/resample.js';
import { affineWasm } from '../../src/data/kernels/affine.js';
import { normalizeRgbWasm } from '../../src/data/kernels/normalize.js';
// @ts-expect-error: a plain ES module script without type declarations
import { compileKernel, KERNEL_DIRS, moduleText } from '../../scripts/build_wasm.mjs';

const ROOT = join(import.meta.dirname, '..', '..');

/** `f` run with the JavaScript loops (the WebAssembly kernels turned off). */
function javascript<T>(f: () => T): T {
  const was = useWasmKernels(false);
  try {
    return f();
  } finally {
    useWasmKernels(was);
  }
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

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
      const js = javascript(() => resamplePixels(img, ow, oh, interpolation));
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
          const b = javascript(() => affineTransform(img, m as never, filter, fill));
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
      const a = toNormalizedChw(img, mean, std), b = javascript(() => toNormalizedChw(img, mean, std));
      expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer)), `${n} pixels`).toBe(true);
      // R of the first pixel, by hand in float32
      const f = Math.fround;
      expect(a[0]).toBe(f(f(f(img.data[0]! / 255) - f(0.485)) / f(0.229)));
    }
  });

  it('the point operations (tables, histograms, colour, sharpness) give the JavaScript loops\' bytes', () => {
    expect(applyLutWasm(new Uint8Array(3), new Uint8Array(3), 3, new Uint8Array(768))).toBe(true);
    const rng = new Random(10);
    const ops: [string, (img: PixelImage) => PixelImage][] = [
      ['autocontrast', autocontrast], ['equalize', equalize], ['invert', invert], ['posterize 3', (i) => posterize(i, 3)],
      ['solarize 100', (i) => solarize(i, 100)], ['solarizeAdd 60', (i) => solarizeAdd(i, 60)], ['brightness 1.7', (i) => adjustBrightness(i, 1.7)],
      ['contrast 0.3', (i) => adjustContrast(i, 0.3)], ['saturation 1.9', (i) => adjustSaturation(i, 1.9)], ['sharpness 0.1', (i) => adjustSharpness(i, 0.1)],
      ['sharpness 1.9', (i) => adjustSharpness(i, 1.9)],
    ];
    for (let k = 0; k < 12; k++) {
      const [w, h] = [1 + rng.int(60), 1 + rng.int(50)];
      const rgb = photo(w, h, rng);
      for (const img of [rgb, { ...rgb, data: rgb.data.filter((_, i) => i % 3 === 0), channels: 1 }]) {
        for (const [name, op] of ops) expect(same(op(img).data, javascript(() => op(img)).data), `${name} on ${w}×${h}×${img.channels}`).toBe(true);
      }
    }
  });

  const kernels = (KERNEL_DIRS as { dir: string; flags: string[] }[]).flatMap(({ dir, flags }) => readdirSync(join(ROOT, dir)).filter((f) => f.endsWith('.as.ts'))
    .map((f) => ({ dir, flags, name: f.slice(0, -'.as.ts'.length) })));
  it.each(kernels.map((k) => [`${k.dir}/${k.name}`, k] as const))('the committed %s module is what its source compiles to', async (_: string, { dir, flags, name }: { dir: string; flags: string[]; name: string }) => {
    const wasm = await compileKernel(join(ROOT, `${dir}/${name}.as.ts`), flags);
    expect(moduleText(name, wasm)).toBe(readFileSync(join(ROOT, `${dir}/${name}_module.ts`), 'utf8'));
  });
});
