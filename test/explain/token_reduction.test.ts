/**
 * `explain --method tokens` (src/explain/token_reduction.ts): the host maps from hand-made stage
 * choices and source maps; on tiny DynamicViT and ToMe models, the kept / merged counts the
 * configuration implies (counted by hand below) and the logits of the plain inference graph; the
 * one-line refusal for a model that reduces nothing; and the CLI's overlay PNG and raw map.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { metaFor, saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { Explainer } from '../../src/explain/index.js';
import { keptPatchMap, mergedPatchMap } from '../../src/explain/token_reduction.js';
import { compileInference } from '../../src/models/executables.js';
import { VisionTransformer, type VitConfig } from '../../src/models/vit.js';
import { deterministicModel } from '../helpers/fixtures.js';
import { runCommand } from './program.js';

// 8×8 grayscale at patch 2: a 4×4 grid of 16 patches and a class token
const tiny = (extra: Partial<VitConfig>) =>
  deterministicModel(new VisionTransformer({ imgSize: 8, patchSize: 2, inChans: 1, numClasses: 3, embedDim: 16, depth: 4, numHeads: 2, mlpRatio: 2, ...extra }));
const images = (n: number) => Float32Array.from({ length: n * 64 }, (_, i) => Math.sin(0.37 * i) + 0.25 * Math.cos(1.3 * i));

const dir = mkdtempSync(join(tmpdir(), 'tessera-tokens-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('token reduction maps on the host', () => {
  it('DynamicViT: each patch scores the share of stages it survived, through nested choices', () => {
    // 6 patches, 2 stages: stage 0 keeps patches 4, 1, 3 (in that order); stage 1 keeps its tokens 2 and 0 → patches 3 and 4
    const m = keptPatchMap(6, 2, [[4, 1, 3], [2, 0]], [2, 4]);
    expect(Array.from(m.map)).toEqual([0, 0.5, 0, 1, 1, 0]);
    expect(m.tiles.map((t) => Array.from(t.map))).toEqual([[0, 1, 0, 1, 1, 0], [0, 0, 0, 1, 1, 0]]);
    expect(m.tiles[1]!.label).toBe('block 4: 2 kept');
    // a first stage that kept everything records no choice
    expect(Array.from(keptPatchMap(4, 2, [[3, 0]], [1, 2]).map)).toEqual([1, 0.5, 0.5, 1]);
    expect(() => keptPatchMap(4, 1, [[7]], [1])).toThrow(/index 7 is outside the 4 tokens/);
  });

  it('ToMe: each patch scores the size of its final token; tokens get distinct colours', () => {
    // a class token and 4 patches in 3 final tokens: [cls], [p0, p2], [p1], [p3] → 4 rows
    const source = Float32Array.from([
      1, 0, 0, 0, 0,
      0, 1, 0, 1, 0,
      0, 0, 1, 0, 0,
      0, 0, 0, 0, 1,
    ]);
    const m = mergedPatchMap(4, 1, source, 4, 5);
    expect(Array.from(m.map)).toEqual([2, 1, 2, 1]);
    const colours = Array.from(m.tiles[1]!.map);
    expect(colours[0]).toBe(colours[2]);
    expect(new Set(colours).size).toBe(3);
    expect(m.tiles[1]!.label).toBe('3 tokens');
    const twice = source.slice();
    twice[2 * 5 + 1] = 1; // p0 in two tokens
    expect(() => mergedPatchMap(4, 1, twice, 4, 5)).toThrow(/patch 0 is in two tokens/);
  });
});

describe('Explainer, method tokens', () => {
  it('DynamicViT ρ = 0.5, stages before blocks 1, 2, 3 of 4: 8, 4, 2 of 16 patches kept; logits of the inference graph', async () => {
    const model = tiny({ dynamicKeep: 0.5 });
    expect(model.pruneLocs).toEqual([1, 2, 3]);
    const x = images(3);
    const explainer = new Explainer(model, { threads: 1 });
    const inference = await compileInference(model, { threads: 1 });
    try {
      const out = await explainer.explain(x, { method: 'tokens' });
      const plain = (await inference.run({ x })).logits!.data as Float32Array;
      expect(out).toHaveLength(3);
      for (const [b, e] of out.entries()) {
        expect(e.mapShape).toEqual([4, 4]);
        const values = Array.from(e.map);
        // ⌊16·0.5⌋ = 8 survive stage 0, 4 stage 1, 2 stage 2
        expect(values.filter((v) => v >= 1 / 3 - 1e-6).length).toBe(8);
        expect(values.filter((v) => v >= 2 / 3 - 1e-6).length).toBe(4);
        expect(values.filter((v) => v === 1).length).toBe(2);
        expect(e.tiles.map((t) => Array.from(t.map).reduce((a, v) => a + v, 0))).toEqual([8, 4, 2]);
        for (let k = 0; k < 3; k++) expect(e.logits[k]).toBeCloseTo(plain[b * 3 + k]!, 5);
      }
      // different images keep different patches (the choice is per image)
      expect(Array.from(out[0]!.map)).not.toEqual(Array.from(out[1]!.map));
    } finally {
      await explainer.dispose();
      await inference.dispose();
    }
  }, 10_000);

  it('ToMe r = 2 over 4 blocks: the 16 patches end in 16 − 4·2 = 8 tokens; logits of the inference graph', async () => {
    const model = tiny({ tomeR: 2 });
    const x = images(2);
    const explainer = new Explainer(model, { threads: 1 });
    const inference = await compileInference(model, { threads: 1 });
    try {
      const out = await explainer.explain(x, { method: 'tokens' });
      const plain = (await inference.run({ x })).logits!.data as Float32Array;
      for (const [b, e] of out.entries()) {
        const sizes = Array.from(e.map);
        // a token of size s holds s patches, so Σ 1/size over the patches counts the tokens
        expect(sizes.reduce((a, s) => a + 1 / s, 0)).toBeCloseTo(8, 5);
        expect(new Set(Array.from(e.tiles[1]!.map)).size).toBe(8);
        expect(Math.min(...sizes)).toBeGreaterThanOrEqual(1);
        for (let k = 0; k < 3; k++) expect(e.logits[k]).toBeCloseTo(plain[b * 3 + k]!, 5);
      }
    } finally {
      await explainer.dispose();
      await inference.dispose();
    }
  }, 10_000);

  it('refuses a model that reduces no tokens, in one line naming the fix', async () => {
    const explainer = new Explainer(tiny({}), { threads: 1 }, 'vit_tiny');
    await expect(explainer.explain(images(1), { method: 'tokens' })).rejects.toThrow(/vit_tiny reduces no tokens.*tome_r=8/);
    await explainer.dispose();
  });
});

describe('tessera explain --method tokens', () => {
  it('overlays the merges of a checkpoint trained without ToMe (--model-kwargs tome_r) as a PNG, with the raw map', async () => {
    const model = tiny({});
    const ckpt = join(dir, 'plain.safetensors');
    saveCheckpoint(ckpt, model, metaFor('vit_tiny_patch4_28', model, ['a', 'b', 'c'], { mean: [0.5], std: [0.25] }));
    const img = join(dir, 'img.png');
    await sharp(Buffer.from(Uint8Array.from({ length: 64 }, (_, i) => (i * 37) % 256)), { raw: { width: 8, height: 8, channels: 1 } }).png().toFile(img);
    const out = join(dir, 'out');
    const r = await runCommand(['explain', img, '--checkpoint', ckpt, '--model-kwargs', 'tome_r=2', '--method', 'tokens', '--out', out, '--grid', '--json', '--threads', '1']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const [summary] = JSON.parse(r.stdout) as { files: string[]; mapShape: number[] }[];
    expect(summary!.mapShape).toEqual([4, 4]);
    expect(summary!.files).toEqual([join(out, 'img.tokens.png'), join(out, 'img.tokens.grid.png'), join(out, 'img.tokens.json')]);
    const png = await sharp(readFileSync(join(out, 'img.tokens.png'))).metadata();
    expect(png.format).toBe('png');
    expect(png.width).toBeGreaterThanOrEqual(8);
    const raw = JSON.parse(readFileSync(join(out, 'img.tokens.json'), 'utf8')) as { map: number[][] };
    expect(raw.map.flat().reduce((a, s) => a + 1 / s, 0)).toBeCloseTo(8, 5);
    // without a reducing kwarg the method is refused, nothing written
    const refused = await runCommand(['explain', '--checkpoint', ckpt, img, '--method', 'tokens', '--out', join(dir, 'none')]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/reduces no tokens/);
  }, 10_000);
});
