/**
 * Tiled inference: grid, aggregation and class map against NumPy (scripts/make_multispectral_goldens.py);
 * a tile covering the whole image answers as plain predict; and a 4-band 16-bit TIFF goes
 * through `tessera predict` as the NumPy tensor (its logits are the model's on that tensor).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metaFor, saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { compileInference } from '../../src/models/executables.js';
import { createModel } from '../../src/models/registry.js';
import type { ImageModel } from '../../src/models/model.js';
import { predictTiles, tileClassMap, tileGrid, type TileResult } from '../../src/predict/tiled.js';
import type { Executable } from '../../src/runtime/compile.js';
import { runCli } from '../helpers/cli.js';

const DIR = join(__dirname, '../fixtures/multispectral');
const golden = JSON.parse(readFileSync(join(DIR, 'goldens.json'), 'utf8'));
const tiled = golden.tiled as { width: number; height: number; tile: number; stride: number; classes: number; boxes: number[][]; logits: number[]; mean: number[]; max: number[]; class_map: number[] }[];
const roundTrip = golden.eval[0] as { file: string; input_size: [number, number, number]; crop_pct: number; interpolation: 'bicubic'; mean: number[]; std: number[]; tensor: number[] };

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

describe('tile grid and aggregation (NumPy reference)', () => {
  for (const g of tiled) {
    it(`${g.width}×${g.height}, tile ${g.tile}, stride ${g.stride}: positions incl. the last partial row/column, mean/max, class map`, async () => {
      const boxes = tileGrid(g.width, g.height, g.tile, g.stride);
      expect(boxes.map((b) => [b.left, b.top, b.width, b.height])).toEqual(g.boxes);
      // the model is a table: tile i's logits are NumPy's row i (the tiles run in grid order)
      let served = 0;
      const run = async (_x: Float32Array, n: number) => {
        const out = Float32Array.from(g.logits.slice(served * g.classes, (served + n) * g.classes));
        served += n;
        return out;
      };
      const t = { inputSize: [1, 4, 4] as const, cropPct: 1, interpolation: 'bilinear' as const, mean: [0], std: [1] };
      const d = { kind: 'bands' as const, img: { data: new Float32Array(g.width * g.height), width: g.width, height: g.height, channels: 1, bitDepth: 32 } };
      for (const aggregate of ['mean', 'max'] as const) {
        served = 0;
        const p = await predictTiles(d, t, run, g.classes, { tile: g.tile, stride: g.stride, aggregate, batchSize: 3 });
        expect(p.tiles.length).toBe(g.boxes.length);
        expect(maxDiff(p.probabilities, g[aggregate])).toBeLessThan(1e-6);
        if (aggregate === 'mean') expect(Array.from(tileClassMap(p, g.classes).map)).toEqual(g.class_map);
      }
    });
  }
});

describe('tiled predict on a model', () => {
  let tmp: string, rgbModel: ImageModel, bandModel: ImageModel, rgbExe: Executable, bandExe: Executable;
  const ckpt = () => join(tmp, 'b4.safetensors');
  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'tessera-tiled-'));
    const tiny = { imgSize: 16, depth: 1, embedDim: 16, numHeads: 2, numClasses: 3, seed: 5 };
    rgbModel = createModel('vit_tiny_patch4_32', tiny);
    bandModel = createModel('vit_tiny_patch4_32', { ...tiny, inChans: 4 });
    rgbExe = await compileInference(rgbModel, { threads: 1 });
    bandExe = await compileInference(bandModel, { threads: 1 });
    saveCheckpoint(ckpt(), bandModel, metaFor('vit_tiny_patch4_32', bandModel, ['field', 'water', 'town'],
      { mean: roundTrip.mean, std: roundTrip.std, cropPct: roundTrip.crop_pct, interpolation: roundTrip.interpolation }));
  }, 60_000);
  afterAll(async () => {
    await rgbExe?.dispose();
    await bandExe?.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('a 4-band 16-bit TIFF through `tessera predict --json` gives the model\'s logits on the NumPy tensor; --tile over the whole image the same probabilities', async () => {
    const expected = (await bandExe.run({ x: Float32Array.from(roundTrip.tensor) })).logits!.data as Float32Array;
    const plain = await runCli(['predict', '--checkpoint', ckpt(), join(DIR, roundTrip.file), '--json']);
    expect(plain.stderr).toBe('');
    const logits = JSON.parse(plain.stdout)[0].logits as number[];
    expect(maxDiff(logits, expected)).toBeLessThan(1e-4);

    const map = join(tmp, 'map.png');
    const whole = await runCli(['predict', '--checkpoint', ckpt(), join(DIR, roundTrip.file), '--json', '--tile', '64', '--tile-map', map]);
    expect(whole.stderr).toBe('');
    const r = JSON.parse(whole.stdout)[0];
    expect(r.tiles).toHaveLength(1);
    const m = Math.max(...expected);
    const e = Array.from(expected, (v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    expect(maxDiff(r.probabilities, e.map((v) => v / s))).toBeLessThan(1e-5);
    const meta = await sharp(map).metadata();
    expect([meta.width, meta.height]).toEqual([23, 19]);
  }, 60_000);

  it('an 8-bit RGB PNG: one tile the size of the image equals plain predict; overlapping tiles each equal predict on that crop', async () => {
    const w = 40, h = 30;
    const px = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 37 + (i >> 5) * 11) & 255);
    const png = await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
    const t = { inputSize: [3, 16, 16] as const, cropPct: 0.875, interpolation: 'bicubic' as const, mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3] };
    const { loadImageForModel } = await import('../../src/data/image/image.js');
    const { decodeForTiles } = await import('../../src/predict/tiled.js');
    const run = async (x: Float32Array) => (await rgbExe.run({ x })).logits!.data as Float32Array;
    const plainProbs = async (bytes: Uint8Array) => {
      const l = await run(await loadImageForModel(bytes, t));
      const m = Math.max(...l);
      const e = Array.from(l, (v) => Math.exp(v - m));
      const s = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / s);
    };
    const d = await decodeForTiles(png, t, 'png');
    const one = await predictTiles(d, t, run, 3, { tile: 64, stride: 32, aggregate: 'mean', batchSize: 4 });
    expect(one.tiles).toHaveLength(1);
    expect(maxDiff(one.probabilities, await plainProbs(png))).toBeLessThan(1e-5);

    const many = await predictTiles(d, t, run, 3, { tile: 20, stride: 12, aggregate: 'max', batchSize: 4 });
    expect(many.tiles.map((b) => [b.left, b.top])).toEqual([[0, 0], [12, 0], [20, 0], [0, 10], [12, 10], [20, 10]]);
    const crops = await Promise.all(many.tiles.map(async (b: TileResult) =>
      plainProbs(await sharp(png).extract({ left: b.left, top: b.top, width: b.width, height: b.height }).png().toBuffer())));
    many.tiles.forEach((b, i) => expect(maxDiff(b.probabilities, crops[i]!)).toBeLessThan(1e-5));
    const max = [0, 1, 2].map((k) => Math.max(...crops.map((c) => c[k]!)));
    expect(maxDiff(many.probabilities, max)).toBeLessThan(1e-5);
  }, 60_000);

  it('tiles of the model\'s input size at crop_pct 1 (cut in one pass, no resize chain) each equal plain predict on that crop', async () => {
    const w = 45, h = 37;
    const px = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 53 + (i >> 4) * 7) & 255);
    const png = await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
    const t = { inputSize: [3, 16, 16] as const, cropPct: 1, interpolation: 'bicubic' as const, mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3] };
    const { loadImageForModel } = await import('../../src/data/image/image.js');
    const { decodeForTiles } = await import('../../src/predict/tiled.js');
    const run = async (x: Float32Array) => (await rgbExe.run({ x })).logits!.data as Float32Array;
    const tiles = await predictTiles(await decodeForTiles(png, t, 'png'), t, run, 3, { tile: 16, stride: 8, aggregate: 'mean', batchSize: 5 });
    expect(tiles.tiles).toHaveLength(5 * 4);
    for (const b of tiles.tiles) {
      const crop = await sharp(png).extract({ left: b.left, top: b.top, width: b.width, height: b.height }).png().toBuffer();
      const l = await run(await loadImageForModel(crop, t));
      const m = Math.max(...l);
      const e = Array.from(l, (v) => Math.exp(v - m));
      const s = e.reduce((a, c) => a + c, 0);
      expect(maxDiff(b.probabilities, e.map((v) => v / s))).toBeLessThan(1e-6);
    }
  }, 60_000);

  it('a cutting thread gives the same tiles, bit for bit, as cutting between runs (one-pass and resize-chain tiles, 4-band floats); a failed run rejects and the thread stays usable', async () => {
    const { decodeForTiles } = await import('../../src/predict/tiled.js');
    const { inlineCutter, startCutThread } = await import('../../src/predict/tile_cutter.js');
    const w = 61, h = 47;
    const px = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 29 + (i >> 6) * 13) & 255);
    const png = await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
    const onePass = { inputSize: [3, 16, 16] as const, cropPct: 1, interpolation: 'bicubic' as const, mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3] };
    const chain = { ...onePass, cropPct: 0.875 };
    // the runner records every batch it is given, so the inputs themselves are compared
    const recorded = (exe: Executable, into: Float32Array[]) => async (x: Float32Array) => {
      into.push(x.slice());
      return (await exe.run({ x })).logits!.data as Float32Array;
    };
    const thread = startCutThread();
    try {
      const cases = [
        { t: onePass, d: await decodeForTiles(png, onePass, 'png'), exe: rgbExe, o: { tile: 16, stride: 9, aggregate: 'mean' as const, batchSize: 7 } },
        { t: chain, d: await decodeForTiles(png, chain, 'png'), exe: rgbExe, o: { tile: 24, stride: 10, aggregate: 'max' as const, batchSize: 4 } },
        { t: { inputSize: [4, 16, 16] as const, cropPct: roundTrip.crop_pct, interpolation: roundTrip.interpolation, mean: roundTrip.mean, std: roundTrip.std },
          d: await decodeForTiles(join(DIR, roundTrip.file), { inputSize: [4, 16, 16], cropPct: 1, interpolation: 'bicubic', mean: roundTrip.mean, std: roundTrip.std }, 'tiff'),
          exe: bandExe, o: { tile: 12, stride: 5, aggregate: 'mean' as const, batchSize: 3 } },
      ];
      for (const c of cases) {
        const a: Float32Array[] = [], b: Float32Array[] = [];
        const here = await predictTiles(c.d, c.t, recorded(c.exe, a), 3, { ...c.o, cutter: inlineCutter });
        const there = await predictTiles(c.d, c.t, recorded(c.exe, b), 3, { ...c.o, cutter: thread });
        expect(a.length).toBeGreaterThan(2); // several batches, so batches were cut ahead while others ran
        expect(b.map((x) => Array.from(x))).toEqual(a.map((x) => Array.from(x)));
        expect(Array.from(there.probabilities)).toEqual(Array.from(here.probabilities));
        expect(there.tiles.map((r) => [r.left, r.top, r.width, r.height])).toEqual(here.tiles.map((r) => [r.left, r.top, r.width, r.height]));
      }
      let runs = 0;
      const failing = async (x: Float32Array) => {
        if (++runs === 2) throw new Error('the model failed');
        return (await rgbExe.run({ x })).logits!.data as Float32Array;
      };
      const { t, d, o } = cases[0]!;
      await expect(predictTiles(d, t, failing, 3, { ...o, cutter: thread })).rejects.toThrow('the model failed');
      const again = await predictTiles(d, t, recorded(rgbExe, []), 3, { ...o, cutter: thread });
      expect(again.tiles.length).toBe(tileGrid(w, h, 16, 9).length);
    } finally {
      await thread.close();
    }
  }, 60_000);
});
