/**
 * Token merging (src/nn/tome.ts through the ViT family's tome_r) against the plain-PyTorch
 * reference scripts/tome_ref.py (ToMe af95e4b1, fixtures test/fixtures/tome_goldens.*): small
 * ViTs with a class token, a DeiT distillation token and avg pooling without class token, r
 * tokens merged per block (one case where the cap of half the tokens binds). Logits ≤ 1e-4
 * absolute, loss ≤ 1e-4, every parameter gradient and the input gradient ≤ 1e-4 relative
 * (max |Δ| / max |golden|), and the source map (which patch each final token holds) exactly.
 * r = 0 gives the plain ViT's logits bit for bit, and the merge runs in exported ONNX at several
 * batch sizes.
 */
import { describe, expect, it } from 'vitest';
import { VisionTransformer, type VitConfig } from '../../src/models/vit.js';
import { compile } from '../../src/runtime/compile.js';
import * as ops from '../../src/ops/index.js';
import { readJsonFixture, readTensorFixture } from '../helpers/fixtures.js';
import { relError } from '../helpers/random.js';
import type { MergeState } from '../../src/nn/tome.js';

const meta = readJsonFixture('tome_goldens.json');
const tensors = readTensorFixture('tome_goldens.safetensors');
const golden = (name: string) => tensors.get(name)?.data ?? (() => { throw new Error(`fixture has no tensor ${name}`); })();
const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

const cfg = meta.config;
function modelOf(name: string, tomeR: number): VisionTransformer {
  const c = meta[name];
  const config: Partial<VitConfig> = {
    imgSize: cfg.img_size, patchSize: cfg.patch_size, inChans: cfg.in_chans, numClasses: cfg.num_classes, embedDim: cfg.embed_dim,
    depth: cfg.depth, numHeads: cfg.num_heads, mlpRatio: cfg.mlp_ratio, qkvBias: cfg.qkv_bias,
    globalPool: c.global_pool, classToken: c.class_token, distilled: c.distilled, tomeR,
  };
  const model = new VisionTransformer(config);
  for (const [k, p] of model.namedParameters()) p.data = Float32Array.from(golden(`${name}.param.${k}`));
  return model;
}

const cases = Object.keys(meta).filter((k) => typeof meta[k] === 'object' && meta[k].r !== undefined);
const input = golden('input');
const batch = meta.labels.length;

describe('token merging against PyTorch (scripts/tome_ref.py)', () => {
  for (const name of cases) {
    it(`${name}: logits, loss, source map, every gradient`, async () => {
      const c = meta[name];
      const model = modelOf(name, c.r);
      const keys = model.namedParameters().map(([k]) => k);
      expect(keys).toEqual(c.keys);
      const exe = await compile((x, y) => {
        const merged: MergeState & { traceSource: boolean } = { traceSource: true };
        const tokens = model.forwardFeatures(x, { merged });
        const { logits } = model.forwardHead(tokens);
        return { logits, loss: ops.crossEntropy(logits, y), source: merged.source!, tokens };
      }, [{ name: 'x', shape: ['batch', 1, 28, 28] }, { name: 'y', shape: ['batch'], dtype: 'int64' }], { grad: { wrt: ['x', ...keys] } });
      const out = await exe.run({ x: input, y: BigInt64Array.from(meta.labels, BigInt) });
      await exe.dispose();
      expect(out.tokens!.shape[1]).toBe(c.token_counts.at(-1));
      expect(maxAbs(out.logits!.data as Float32Array, golden(`${name}.logits`))).toBeLessThanOrEqual(1e-4);
      expect(Math.abs(Number(out.loss!.data[0]) - c.loss)).toBeLessThanOrEqual(1e-4);
      expect(Array.from(out.source!.data as Float32Array)).toEqual(Array.from(golden(`${name}.source`)));
      expect(relError(out['grad/x']!.data as Float32Array, golden(`${name}.grad_input`))).toBeLessThanOrEqual(1e-4);
      const off = keys.map((k) => [k, relError(out[`grad/${k}`]!.data as Float32Array, golden(`${name}.grad.${k}`))] as const).filter(([, e]) => !(e <= 1e-4));
      expect(off).toEqual([]);
    }, 60_000);
  }

  it('r = 0 is the plain ViT exactly, and a merging model runs at batch 1 and 3 alike', async () => {
    const plain = modelOf('cls_r8', 0);
    const merging = modelOf('cls_r8', 8);
    const spec = [{ name: 'x', shape: ['batch', 1, 28, 28] }] as const;
    const unset = modelOf('cls_r8', 0);
    const { tomeR: _, ...withoutTome } = unset.config;
    const built = new VisionTransformer(withoutTome);
    for (const [k, p] of built.namedParameters()) p.data = Float32Array.from(golden(`cls_r8.param.${k}`));
    const a = await compile((x) => ({ logits: plain.forward(x).logits }), [...spec]);
    const b = await compile((x) => ({ logits: built.forward(x).logits }), [...spec]);
    const m = await compile((x) => ({ logits: merging.forward(x).logits }), [...spec]);
    const ref = await a.run({ x: input });
    // r = 0 against the reference's r = 0 (the plain timm ViT), and bit for bit against a model built without tome_r
    expect(maxAbs(ref.logits!.data as Float32Array, golden('cls_r8.logits_r0'))).toBeLessThanOrEqual(1e-4);
    expect(Array.from((await b.run({ x: input })).logits!.data as Float32Array)).toEqual(Array.from(ref.logits!.data as Float32Array));
    await b.dispose();
    const logits3 = (await m.run({ x: input })).logits!.data as Float32Array;
    const one = (await m.run({ x: input.subarray(28 * 28, 2 * 28 * 28) })).logits!.data as Float32Array;
    expect(maxAbs(one, logits3.subarray(10, 20))).toBeLessThanOrEqual(1e-5);
    expect(maxAbs(logits3, golden('cls_r8.logits'))).toBeLessThanOrEqual(1e-4);
    expect(maxAbs(ref.logits!.data as Float32Array, logits3)).toBeGreaterThan(1e-3); // merging changes the answer
    await a.dispose();
    await m.dispose();
  }, 60_000);
});
