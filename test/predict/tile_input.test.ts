/**
 * Cutting tiles: the one-pass window of a tile the eval transform leaves alone gives torchvision's
 * ((v / 255) − mean) / std floats of that window (written out here in float32 steps), with the
 * WebAssembly kernel and without; the cases that still need the resize chain are told apart; and
 * predictTiles' two batch buffers are not refilled while a runner holds one.
 */
import { describe, expect, it } from 'vitest';
import { useWasmKernels } from '../../src/data/kernels/instance.js';
import { tileInput, tileIsModelInput, type TileSource } from '../../src/predict/tile_input.js';
import { predictTiles, tileGrid } from '../../src/predict/tiled.js';

const f = Math.fround;
const mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225];

/** A width × height RGB image whose bytes differ from pixel to pixel and channel to channel. */
function image(width: number, height: number): TileSource {
  const data = Uint8Array.from({ length: width * height * 3 }, (_, i) => (i * 2654435761) >>> 24);
  return { kind: 'pixels', img: { data, width, height, channels: 3 } };
}

/** The window's CHW floats, each step rounded to float32 as torchvision's ToTensor + Normalize are. */
function reference(d: TileSource, top: number, left: number, h: number, w: number): Float32Array {
  const out = new Float32Array(3 * h * w);
  for (let c = 0; c < 3; c++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const v = d.img.data[((top + y) * d.img.width + left + x) * 3 + c]!;
    out[(c * h + y) * w + x] = f(f(f(v / 255) - f(mean[c]!)) / f(std[c]!));
  }
  return out;
}

const bitsEqual = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe('tileInput', () => {
  const t = { inputSize: [3, 24, 20] as const, cropPct: 1, interpolation: 'bicubic' as const, mean, std };

  it('tells the tiles the eval transform leaves alone from those it resizes or crops', () => {
    expect(tileIsModelInput({ left: 0, top: 0, width: 20, height: 24 }, t)).toBe(true);
    expect(tileIsModelInput({ left: 0, top: 0, width: 24, height: 20 }, t)).toBe(false);
    expect(tileIsModelInput({ left: 0, top: 0, width: 21, height: 24 }, t)).toBe(false);
    expect(tileIsModelInput({ left: 0, top: 0, width: 20, height: 24 }, { ...t, cropPct: 0.875 })).toBe(false);
    const square = { ...t, inputSize: [3, 224, 224] as const };
    expect(tileIsModelInput({ left: 0, top: 0, width: 224, height: 224 }, square)).toBe(true);
    expect(tileIsModelInput({ left: 0, top: 0, width: 224, height: 224 }, { ...square, cropPct: 0.95 })).toBe(false);
  });

  for (const wasm of [true, false]) {
    it(`a tile of the model's input size at crop_pct 1 is its window, normalised (${wasm ? 'WebAssembly' : 'JavaScript'})`, () => {
      const was = useWasmKernels(wasm);
      try {
        const d = image(97, 61);
        for (const [top, left] of [[0, 0], [37, 77], [13, 41]] as const) {
          const out = new Float32Array(3 * 24 * 20).fill(NaN);
          tileInput(d, { left, top, width: 20, height: 24 }, t, 'img', out);
          expect(bitsEqual(out, reference(d, top, left, 24, 20))).toBe(true);
        }
      } finally {
        useWasmKernels(was);
      }
    });
  }

  it('a tile the full width of the image (its rows contiguous) is cut the same way', () => {
    const d = image(20, 50);
    const out = new Float32Array(3 * 24 * 20);
    tileInput(d, { left: 0, top: 26, width: 20, height: 24 }, t, 'img', out);
    expect(bitsEqual(out, reference(d, 26, 0, 24, 20))).toBe(true);
  });
});

describe('predictTiles batch buffers', () => {
  it('every batch reaches the runner as its tiles, unchanged until its run has settled', async () => {
    const t = { inputSize: [3, 8, 8] as const, cropPct: 1, interpolation: 'bilinear' as const, mean, std };
    const d = image(40, 24);
    const boxes = tileGrid(40, 24, 8, 4);
    const per = 3 * 8 * 8;
    let seen = 0, calls = 0;
    // a runner that reads its input late (after predictTiles has cut the next batch)
    const run = async (x: Float32Array, n: number) => {
      calls++;
      const atCall = x.slice();
      await new Promise((r) => setTimeout(r, 5));
      expect(bitsEqual(x, atCall)).toBe(true);
      for (let i = 0; i < n; i++) {
        const b = boxes[seen + i]!;
        expect(bitsEqual(x.subarray(i * per, (i + 1) * per), reference(d, b.top, b.left, 8, 8))).toBe(true);
      }
      seen += n;
      return new Float32Array(n * 2);
    };
    const p = await predictTiles(d, t, run, 2, { tile: 8, stride: 4, aggregate: 'mean', batchSize: 7 });
    expect(boxes).toHaveLength(45);
    expect(seen).toBe(45);
    expect(calls).toBe(7);
    expect(p.timings.batches).toBe(7);
  });
});
