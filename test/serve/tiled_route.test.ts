/** POST /v1/predict/tiled over real HTTP on 127.0.0.1: the tiles and their aggregate equal the library's tiled prediction. */
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metaFor } from '../../src/checkpoint/checkpoint.js';
import { exportModel } from '../../src/export/export.js';
import { evalTransformOf } from '../../src/export/metadata.js';
import { compileInference } from '../../src/models/executables.js';
import { createModel } from '../../src/models/registry.js';
import { decodeForTiles, predictTiles } from '../../src/predict/tiled.js';
import { createServer, type TesseraServer } from '../../src/serve/server.js';
import { startInferenceWorker } from '../../src/serve/worker_model.js';

let server: TesseraServer;
let url: string;
let png: Uint8Array<ArrayBuffer>;
let expected: Awaited<ReturnType<typeof predictTiles>>;
let transform: ReturnType<typeof evalTransformOf>;

beforeAll(async () => {
  const model = createModel('vit_tiny_patch4_32', { imgSize: 16, depth: 1, embedDim: 16, numHeads: 2, numClasses: 3, seed: 9 });
  const meta = metaFor('vit_tiny_patch4_32', model, ['a', 'b', 'c'], { cropPct: 1 });
  const { bytes, meta: onnxMeta } = exportModel(model, meta);
  const w = 50, h = 34;
  png = new Uint8Array(await sharp(Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 53 + (i >> 4) * 7) & 255), { raw: { width: w, height: h, channels: 3 } }).png().toBuffer());
  const t = (transform = evalTransformOf(onnxMeta));
  const exe = await compileInference(model, { threads: 1 });
  expected = await predictTiles(await decodeForTiles(png, t, 'png'), t, async (x) => (await exe.run({ x })).logits!.data as Float32Array, 3,
    { tile: 16, stride: 8, aggregate: 'max', batchSize: 64 });
  await exe.dispose();
  server = await createServer({ model: await startInferenceWorker(bytes), maxBatch: 8, maxWaitMs: 2 });
  url = await server.listen(0);
}, 60_000);

afterAll(async () => {
  await server?.close();
});

describe('POST /v1/predict/tiled', () => {
  it('answers every tile (batched through the server) and the max aggregate as the library does', async () => {
    const res = await fetch(`${url}/v1/predict/tiled?tile=16&stride=8&aggregate=max&topk=3`, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } });
    expect(res.status).toBe(200);
    const body = await res.json() as { tiles: { left: number; top: number; probabilities: number[] }[]; top: { index: number; probability: number }[] };
    expect(body.tiles.map((t) => [t.left, t.top])).toEqual(expected.tiles.map((t) => [t.left, t.top]));
    expect(body.tiles).toHaveLength(6 * 4); // x: 0, 8, …, 32, 34; y: 0, 8, 16, 18
    body.tiles.forEach((t, i) => t.probabilities.forEach((p, k) => expect(Math.abs(p - expected.tiles[i]!.probabilities[k]!)).toBeLessThan(1e-5)));
    for (const t of body.top) expect(Math.abs(t.probability - expected.probabilities[t.index]!)).toBeLessThan(1e-5);
  }, 30_000);

  it('a request without tile is a 400', async () => {
    const res = await fetch(`${url}/v1/predict/tiled`, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } });
    expect(res.status).toBe(400);
  });

  it('two large images at once, each many batches of tiles cut off the event loop, answer as the library does for each', async () => {
    const t = transform;
    const images = await Promise.all([[3, 11], [7, 5]].map(async ([a, b]) => new Uint8Array(await sharp(
      Uint8Array.from({ length: 120 * 90 * 3 }, (_, i) => (i * a! + (i >> 5) * b!) & 255), { raw: { width: 120, height: 90, channels: 3 } }).png().toBuffer())));
    const model = createModel('vit_tiny_patch4_32', { imgSize: 16, depth: 1, embedDim: 16, numHeads: 2, numClasses: 3, seed: 9 });
    const exe = await compileInference(model, { threads: 1 });
    const want: Awaited<ReturnType<typeof predictTiles>>[] = [];
    for (const img of images) {
      want.push(await predictTiles(await decodeForTiles(img, t, 'png'), t, async (x) => (await exe.run({ x })).logits!.data as Float32Array, 3,
        { tile: 16, stride: 4, aggregate: 'mean', batchSize: 64 }));
    }
    await exe.dispose();
    expect(want[0]!.tiles.length).toBeGreaterThan(4 * 64);
    const answers = await Promise.all(images.map(async (img) => {
      const res = await fetch(`${url}/v1/predict/tiled?tile=16&stride=4`, { method: 'POST', body: img, headers: { 'content-type': 'image/png' } });
      expect(res.status).toBe(200);
      return await res.json() as { tiles: { probabilities: number[] }[] };
    }));
    answers.forEach((a, j) => {
      expect(a.tiles).toHaveLength(want[j]!.tiles.length);
      a.tiles.forEach((tile, i) => tile.probabilities.forEach((p, k) => expect(Math.abs(p - want[j]!.tiles[i]!.probabilities[k]!)).toBeLessThan(1e-5)));
    });
  }, 60_000);
});
