/**
 * The web page's preprocessing (web/preprocess.js: resize, centre crop, channels, normalise)
 * against the server's (src/data/image/image.ts: libvips when shrinking, PIL's algorithm when enlarging)
 * on the same decoded pixels. Decoding itself is the browser's and is covered by the browser test.
 * If the server's eval transform changes, this test says the page must follow.
 */
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { loadImageForModel, type EvalTransform } from '../../src/data/image/image.js';

interface WebPreprocess {
  preprocess(rgba: Uint8Array, width: number, height: number, meta: unknown): { pixels: Uint8Array; tensor: Float32Array };
}
let web: WebPreprocess;
let fashion: Buffer;

beforeAll(async () => {
  web = await import(new URL('../../web/preprocess.js', import.meta.url).href) as WebPreprocess;
  const ds = await loadBuiltinDataset('fashion-mnist', 'test');
  fashion = await sharp(Buffer.from(ds.images.subarray(0, 784)), { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer();
});

/** A colourful test picture with edges, gradients and fine detail. */
function picture(w: number, h: number): Promise<Buffer> {
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = 3 * (y * w + x);
      px[i] = (x * 255) / w;
      px[i + 1] = 127 + 120 * Math.sin(x / 5) * Math.cos(y / 7);
      px[i + 2] = (x - w / 2) ** 2 + (y - h / 2) ** 2 < (Math.min(w, h) / 3) ** 2 ? 230 : 20;
    }
  }
  return sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}

/** Max and mean |difference| in 8-bit pixel levels between the page's tensor and the server's. */
async function compare(file: Buffer, t: EvalTransform): Promise<{ max: number; mean: number }> {
  const server = await loadImageForModel(file, t);
  const { data, info } = await sharp(file).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  const meta = { input_size: t.inputSize, crop_pct: t.cropPct, interpolation: t.interpolation, mean: t.mean, std: t.std };
  const page = web.preprocess(new Uint8Array(data), info.width, info.height, meta).tensor;
  expect(page.length).toBe(server.length);
  const [c, h, w] = t.inputSize;
  let max = 0;
  let sum = 0;
  for (let i = 0; i < server.length; i++) {
    const std = t.std[Math.floor(i / (h * w))] ?? t.std[0]!;
    const d = Math.abs(page[i]! - server[i]!) * std * 255;
    max = Math.max(max, d);
    sum += d;
  }
  return { max, mean: sum / (c * h * w) };
}

const gray28 = (cropPct: number, interpolation: 'bilinear' | 'bicubic' = 'bilinear'): EvalTransform =>
  ({ inputSize: [1, 28, 28], cropPct, interpolation, mean: [0.286], std: [0.353] });
const rgb = (size: number, cropPct: number, interpolation: 'bilinear' | 'bicubic'): EvalTransform =>
  ({ inputSize: [3, size, size], cropPct, interpolation, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });

describe('the page preprocesses images as the server does', () => {
  it('a 28×28 Fashion-MNIST PNG: identical', async () => {
    expect(await compare(fashion, gray28(1))).toEqual({ max: 0, mean: 0 });
  });

  it('colour → luma for a 1-channel model, as PIL\'s convert(\'L\'): identical', async () => {
    const r = await compare(await picture(28, 28), gray28(1));
    expect(r.max).toBeLessThanOrEqual(1e-4); // float rounding only
  });

  it('shrinking (libvips: box pre-shrink + antialiased kernel) and centre crop: within two levels', async () => {
    for (const [file, t] of [
      [await sharp(fashion).resize(224, 224, { kernel: 'cubic' }).png().toBuffer(), gray28(1)],
      [await picture(300, 200), rgb(32, 0.875, 'bilinear')],
      [await picture(640, 480), rgb(64, 0.9, 'bicubic')],
      [await picture(45, 37), gray28(0.875)],
    ] as const) {
      const r = await compare(file, t);
      expect(r.max, JSON.stringify(t)).toBeLessThanOrEqual(2.0001); // libvips' fixed-point rounding
      expect(r.mean).toBeLessThan(0.5);
    }
  });

  it('enlarging small images (PIL\'s resize) and zero-padded crops: identical', async () => {
    for (const t of [rgb(32, 1, 'bilinear'), rgb(32, 1, 'bicubic'), gray28(0.875, 'bicubic')]) {
      const r = await compare(await picture(20, 24), t);
      expect(r.max, t.interpolation).toBeLessThanOrEqual(1e-4);
    }
    expect((await compare(await picture(30, 20), rgb(32, 1.0, 'bilinear'))).max).toBeLessThanOrEqual(1e-4);
  });
});
