/**
 * The attention mechanisms against their plain-PyTorch references (scripts/attention_ref.py,
 * fixtures from scripts/make_attention_goldens.py): each mechanism on fixed q, k, v — the output
 * and the gradients of Σ out ⊙ w with respect to q, k, v (and the axial relative terms); and a
 * small ViT per mechanism with the same deterministic weights — logits, loss and every parameter
 * gradient. Performer gets the reference's random features, sparse its block pattern. Outputs
 * and logits ≤ 1e-4 absolute, gradients ≤ 1e-4 relative (max |Δ| / max |golden|).
 */
import { describe, expect, it } from 'vitest';
import { createMechanism, type AttentionConfig, type SparseAttention } from '../../src/nn/attention/index.js';
import { VisionTransformer, type VitConfig } from '../../src/models/vit.js';
import { compile } from '../../src/runtime/compile.js';
import * as ops from '../../src/ops/index.js';
import { deterministicInput, deterministicValues, readJsonFixture, readTensorFixture } from '../helpers/fixtures.js';
import { relError } from '../helpers/random.js';
import { maxAbs, runMechanism, type Qkv } from './attention_helpers.js';

const meta = readJsonFixture('attention_goldens.json');
const tensors = readTensorFixture('attention_goldens.safetensors');
const golden = (name: string) => tensors.get(name)?.data ?? (() => { throw new Error(`fixture has no tensor ${name}`); })();

const camel = (k: string) => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
/** The attention options of a case, camelCased as model configs carry them. */
function optionsOf(c: Record<string, unknown>): Partial<AttentionConfig> {
  const keys = ['attn_type', 'query_chunk', 'nb_features', 'feature_redraw_interval', 'block_size', 'num_random_blocks', 'num_global_blocks', 'axial_rel_pos'];
  return Object.fromEntries(Object.entries(c).filter(([k]) => keys.includes(k)).map(([k, v]) => [camel(k), v]));
}

/** Tokens [from, N) of a [B, H, N, D] host tensor. */
function dropTokens(x: Float32Array, [b, h, n, d]: number[], from: number): Float32Array {
  const out = new Float32Array(b * h * (n - from) * d);
  for (let bh = 0; bh < b * h; bh++) out.set(x.subarray((bh * n + from) * d, (bh + 1) * n * d), bh * (n - from) * d);
  return out;
}

describe('attention mechanisms against PyTorch (q, k, v → out and its gradients)', () => {
  const shape = tensors.get('mech.inputs.q')!.shape as [number, number, number, number];
  const cases = Object.keys(meta).filter((k) => k.startsWith('mech.')).map((k) => k.slice('mech.'.length));
  for (const name of cases) {
    it(name, async () => {
      const c = meta[`mech.${name}`];
      const prefix = c.prefix ?? 1;
      const drop = 1 - prefix;
      const [b, h, n, d] = shape;
      const x: Qkv = {
        q: dropTokens(golden('mech.inputs.q'), shape, drop), k: dropTokens(golden('mech.inputs.k'), shape, drop),
        v: dropTokens(golden('mech.inputs.v'), shape, drop), w: dropTokens(golden('mech.inputs.w'), shape, drop),
        shape: [b, h, n - drop, d],
      };
      const mech = createMechanism({ headDim: d, numHeads: h, layout: { prefix, grid: [4, 5] }, seed: 0 }, optionsOf(c));
      if (c.attn_type === 'performer') (mech as unknown as { features: { data: Float32Array } }).features.data = Float32Array.from(golden('mech.performer.features'));
      if (c.pattern) (mech as SparseAttention).setPattern(c.pattern);
      const params = mech.namedParameters();
      for (const [k, p] of params) p.data = Float32Array.from(golden(`mech.${name}.param.${k}`));
      for (const mode of ['attend', 'matrix'] as const) {
        const r = await runMechanism(mech, x, mode, params.map(([k]) => k));
        expect(maxAbs(r.out, golden(`mech.${name}.out`)), mode).toBeLessThanOrEqual(1e-4);
        for (const g of ['dq', 'dk', 'dv'] as const) expect(relError(r[g], golden(`mech.${name}.${g}`)), `${mode} ${g}`).toBeLessThanOrEqual(1e-4);
        for (const [k] of params) expect(relError(r.grads[k]!, golden(`mech.${name}.d.${k}`)), `${mode} d${k}`).toBeLessThanOrEqual(1e-4);
      }
    });
  }
});

describe('a small ViT per mechanism against PyTorch (the same weights)', () => {
  const vc = meta.vit_config;
  const base: Partial<VitConfig> = {
    imgSize: vc.img_size, patchSize: vc.patch_size, inChans: vc.in_chans, numClasses: vc.num_classes, embedDim: vc.embed_dim,
    depth: vc.depth, numHeads: vc.num_heads, mlpRatio: vc.mlp_ratio, qkvBias: vc.qkv_bias, globalPool: vc.global_pool, classToken: vc.class_token,
  };
  const cases = Object.keys(meta).filter((k) => k.startsWith('vit.')).map((k) => k.slice('vit.'.length));
  for (const name of cases) {
    it(`${name}: logits, loss and every parameter gradient`, async () => {
      const c = meta[`vit.${name}`];
      const model = new VisionTransformer({ ...base, ...optionsOf(c) });
      const keys = model.namedParameters().map(([k]) => k);
      expect(keys).toEqual(c.keys);
      // the standard block's keys whatever the mechanism (axial relative terms add their own)
      if (!c.axial_rel_pos) expect(keys).toEqual(meta['vit.softmax'].keys);
      for (const [k, p] of model.namedParameters()) p.data = deterministicValues(k, p.size);
      expect(model.namedBuffers().map(([k]) => k)).toEqual(c.buffers);
      for (const [k, buf] of model.namedBuffers()) buf.data = Float32Array.from(golden(`vit.${name}.buffer.${k}`));
      c.patterns.forEach((p: number[][][], i: number) => (model.blocks[i]!.attn.mechanism as SparseAttention).setPattern(p));
      const exe = await compile((x, y) => {
        const { logits } = model.forward(x);
        return { logits, loss: ops.crossEntropy(logits, y) };
      }, [{ name: 'x', shape: ['batch', 1, 28, 28] }, { name: 'y', shape: ['batch'], dtype: 'int64' }], { grad: { wrt: ['x', ...keys] } });
      const out = await exe.run({ x: deterministicInput(2 * 28 * 28), y: c.labels });
      await exe.dispose();
      expect(maxAbs(out.logits!.data as Float32Array, golden(`vit.${name}.logits`))).toBeLessThanOrEqual(1e-4);
      expect(Math.abs(Number(out.loss!.data[0]) - c.loss)).toBeLessThanOrEqual(1e-4);
      expect(relError(out['grad/x']!.data as Float32Array, golden(`vit.${name}.grad_input`))).toBeLessThanOrEqual(1e-4);
      const off = keys.map((k) => [k, relError(out[`grad/${k}`]!.data as Float32Array, golden(`vit.${name}.grad.${k}`))] as const).filter(([, e]) => !(e <= 1e-4));
      expect(off).toEqual([]);
    });
  }
});
