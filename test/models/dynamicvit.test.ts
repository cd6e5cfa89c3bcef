/**
 * DynamicViT token pruning (src/nn/dynamic_vit.ts through the ViT family's dynamic_keep) against
 * the plain-PyTorch reference scripts/dynamicvit_ref.py (raoyongming/DynamicViT 1322e626,
 * fixtures test/fixtures/dynamicvit_goldens.*): a ViT with three stages at ρ = 0.7 and a DeiT
 * (distillation token) with one stage at ρ = 0.5. Training path with fixed Gumbel noise: logits
 * ≤ 1e-4, each stage's hard decisions exactly, CE + ratio loss ≤ 1e-4, every gradient and the
 * input's ≤ 1e-4 relative. Inference path (top-k): logits ≤ 1e-4 and the token count really falls.
 * ρ = 1 is the plain ViT bit for bit, and the pruning model runs at batch 1 and 3 alike.
 */
import { describe, expect, it } from 'vitest';
import { VisionTransformer, DYNAMIC_GUMBEL, type PruningTrace, type VitConfig } from '../../src/models/vit.js';
import { compile } from '../../src/runtime/compile.js';
import * as ops from '../../src/ops/index.js';
import { readJsonFixture, readTensorFixture } from '../helpers/fixtures.js';
import { relError } from '../helpers/random.js';
import { dynamicVitLoss } from '../../src/train/objectives/dynamicvit.js';

const meta = readJsonFixture('dynamicvit_goldens.json');
const tensors = readTensorFixture('dynamicvit_goldens.safetensors');
const golden = (name: string) => tensors.get(name)?.data ?? (() => { throw new Error(`fixture has no tensor ${name}`); })();
const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

const cfg = meta.config;
function modelOf(name: string, keep: number): VisionTransformer {
  const c = meta[name];
  const config: Partial<VitConfig> = {
    imgSize: cfg.img_size, patchSize: cfg.patch_size, inChans: cfg.in_chans, numClasses: cfg.num_classes, embedDim: cfg.embed_dim,
    depth: cfg.depth, numHeads: cfg.num_heads, mlpRatio: cfg.mlp_ratio, qkvBias: cfg.qkv_bias,
    globalPool: c.global_pool, classToken: c.class_token, distilled: c.distilled, dynamicKeep: keep, dynamicLocs: c.locs,
  };
  const model = new VisionTransformer(config);
  for (const [k, p] of model.namedParameters()) {
    const t = tensors.get(`${name}.param.${k}`);
    if (t) p.data = Float32Array.from(t.data);
  }
  return model;
}

const cases = Object.keys(meta).filter((k) => typeof meta[k] === 'object' && meta[k].keep !== undefined);
const input = golden('input');
const batch = meta.labels.length;

describe('DynamicViT against PyTorch (scripts/dynamicvit_ref.py)', () => {
  for (const name of cases) {
    it(`${name}: training path (Gumbel policy): logits, decisions, CE + ratio loss, every gradient`, async () => {
      const c = meta[name];
      const model = modelOf(name, c.keep);
      const keys = model.namedParameters().map(([k]) => k);
      expect(keys).toEqual(c.keys);
      const noise = model.noiseInputs().find((n) => n.name === DYNAMIC_GUMBEL)!;
      expect(noise.perSample).toBe(c.locs.length * 49 * 2);
      const exe = await compile((x, y, gumbel) => {
        const pruning: PruningTrace = { decisions: [] };
        const tokens = model.forwardFeatures(x, { train: true, noise: { [DYNAMIC_GUMBEL]: gumbel }, pruning });
        const { logits } = model.forwardHead(tokens);
        let loss = ops.crossEntropy(logits, y);
        pruning.decisions.forEach((d, s) => {
          const err = ops.sub(ops.mean(d, 1), c.keep ** (s + 1));
          loss = ops.add(loss, ops.mean(ops.mul(err, err), 0));
        });
        return { logits, loss, tokens, ...Object.fromEntries(pruning.decisions.map((d, s) => [`decision${s}`, d])) };
      }, [{ name: 'x', shape: ['batch', 1, 28, 28] }, { name: 'y', shape: ['batch'], dtype: 'int64' }, { name: 'gumbel', shape: ['batch', noise.perSample] }],
      { grad: { wrt: ['x', ...keys] } });
      const out = await exe.run({ x: input, y: BigInt64Array.from(meta.labels, BigInt), gumbel: golden(`${name}.gumbel`) });
      await exe.dispose();
      expect(out.tokens!.shape[1]).toBe(49 + model.numPrefixTokens); // the batch keeps its shape
      c.locs.forEach((_: number, s: number) => expect(Array.from(out[`decision${s}`]!.data as Float32Array)).toEqual(Array.from(golden(`${name}.decision.${s}`))));
      expect(maxAbs(out.logits!.data as Float32Array, golden(`${name}.logits_train`))).toBeLessThanOrEqual(1e-4);
      expect(Math.abs(Number(out.loss!.data[0]) - c.loss)).toBeLessThanOrEqual(1e-4);
      expect(relError(out['grad/x']!.data as Float32Array, golden(`${name}.grad_input`))).toBeLessThanOrEqual(1e-4);
      const off = keys.map((k) => [k, relError(out[`grad/${k}`]!.data as Float32Array, golden(`${name}.grad.${k}`))] as const).filter(([, e]) => !(e <= 1e-4));
      expect(off).toEqual([]);
    }, 90_000);

    it(`${name}: inference path (top-k) keeps ⌊N·ρ^s⌋ tokens, logits as the reference, batch 1 as batch 3`, async () => {
      const c = meta[name];
      const model = modelOf(name, c.keep);
      const exe = await compile((x) => {
        const tokens = model.forwardFeatures(x);
        return { logits: model.forwardHead(tokens).logits, tokens };
      }, [{ name: 'x', shape: ['batch', 1, 28, 28] }]);
      const out = await exe.run({ x: input });
      expect(out.tokens!.shape[1]).toBe(c.token_counts.at(-1));
      expect(maxAbs(out.logits!.data as Float32Array, golden(`${name}.logits_infer`))).toBeLessThanOrEqual(1e-4);
      const one = (await exe.run({ x: input.subarray(28 * 28, 2 * 28 * 28) })).logits!.data as Float32Array;
      expect(maxAbs(one, (out.logits!.data as Float32Array).subarray(10, 20))).toBeLessThanOrEqual(1e-5);
      await exe.dispose();
    }, 60_000);
  }

  for (const name of cases) {
    it(`${name}: the DynamicViT objective (CE, ratio, KL and token distillation from the unpruned teacher) and its gradients`, async () => {
      const c = meta[name];
      const model = modelOf(name, c.keep);
      const keys = model.namedParameters().map(([k]) => k);
      const n = 49;
      const exe = await compile((x, targets, gumbel, tl, tt) => {
        const trace: PruningTrace = { decisions: [] };
        const tokens = model.forwardFeatures(x, { train: true, noise: { [DYNAMIC_GUMBEL]: gumbel }, pruning: trace });
        const { logits } = model.forwardHead(tokens);
        const { loss, parts } = dynamicVitLoss({ logits, tokens, trace, prefix: model.numPrefixTokens, keep: c.keep }, targets, tl, tt);
        return { loss, ...parts };
      }, [{ name: 'x', shape: ['batch', 1, 28, 28] }, { name: 'targets', shape: ['batch', 10] }, { name: 'gumbel', shape: ['batch', c.locs.length * n * 2] },
        { name: 'tl', shape: ['batch', 10] }, { name: 'tt', shape: ['batch', n, cfg.embed_dim] }], { grad: { wrt: ['x', ...keys] } });
      const out = await exe.run({ x: input, targets: golden(`${name}.targets`), gumbel: golden(`${name}.gumbel`), tl: golden(`${name}.teacher_logits`), tt: golden(`${name}.teacher_tokens`) });
      await exe.dispose();
      expect(Math.abs(Number(out.loss!.data[0]) - c.objective_loss)).toBeLessThanOrEqual(1e-4);
      for (const part of ['ce', 'ratio', 'kl', 'token']) {
        const want = c.objective_parts[part] as number;
        expect(Math.abs(Number(out[part]!.data[0]) - want), part).toBeLessThanOrEqual(1e-4 * Math.max(Math.abs(want), 1e-3));
      }
      expect(relError(out['grad/x']!.data as Float32Array, golden(`${name}.objective_grad_input`))).toBeLessThanOrEqual(1e-4);
      const off = keys.map((k) => [k, relError(out[`grad/${k}`]!.data as Float32Array, golden(`${name}.objective_grad.${k}`))] as const).filter(([, e]) => !(e <= 1e-4));
      expect(off).toEqual([]);
    }, 90_000);
  }

  it('ρ = 1 is the plain ViT bit for bit; a plain ViT checkpoint loads into a pruning model with fresh score predictors', async () => {
    const full = modelOf('cls_keep07', 1);
    expect(full.namedParameters().some(([k]) => k.startsWith('score_predictor.'))).toBe(false);
    const { dynamicKeep: _, dynamicLocs: __, ...plainConfig } = full.config;
    const plain = new VisionTransformer(plainConfig);
    const sd = Object.fromEntries(full.namedParameters().map(([k, p]) => [k, { data: p.data, shape: p.shape }]));
    plain.loadStateDict(sd);
    const spec = [{ name: 'x', shape: ['batch', 1, 28, 28] }] as const;
    const a = await compile((x) => ({ logits: full.forward(x).logits }), [...spec]);
    const b = await compile((x) => ({ logits: plain.forward(x).logits }), [...spec]);
    const ra = (await a.run({ x: input })).logits!.data as Float32Array;
    expect(Array.from(ra)).toEqual(Array.from((await b.run({ x: input })).logits!.data as Float32Array));
    expect(maxAbs(ra, golden('cls_keep07.logits_plain'))).toBeLessThanOrEqual(1e-4);
    await a.dispose();
    await b.dispose();
    const pruning = modelOf('cls_keep07', 0.7);
    const { missing } = pruning.loadStateDict(sd, false);
    expect(missing.length).toBeGreaterThan(0);
    expect(missing.every((k) => k.startsWith('score_predictor.'))).toBe(true);
  }, 60_000);
});
