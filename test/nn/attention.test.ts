/**
 * The attention mechanisms' contracts beyond the PyTorch goldens: chunked softmax equals
 * unchunked and the efficient paths never build an N × N tensor; sparse attention with every
 * block attended is dense attention; Performer converges to softmax attention as its features
 * grow; the feature redraw schedule; checkpoints moving between mechanisms; --model-kwargs;
 * attention maps from every mechanism; ONNX export passes onnx.checker.
 */
import { describe, expect, it } from 'vitest';
import {
  AxialAttention, PerformerAttention, SoftmaxAttention, SparseAttention, createMechanism, redrawScheduledBuffers, type AttentionConfig,
} from '../../src/nn/attention/index.js';
import { orthogonalGaussianFeatures } from '../../src/nn/attention/performer.js';
import { VisionTransformer, vitKwargsSchema, type VitConfig } from '../../src/models/vit.js';
import { getFamily } from '../../src/models/model.js';
import { compile, trace } from '../../src/runtime/compile.js';
import { grad } from '../../src/autodiff/grad.js';
import { countFlops } from '../../src/ir/flops.js';
import * as ops from '../../src/ops/index.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { emitModel } from '../../src/onnx/emit.js';
import { Random } from '../../src/random.js';
import { relError } from '../helpers/random.js';
import { checkOnnxModels } from '../helpers/onnx_checker.js';
import { deterministicInput } from '../helpers/fixtures.js';
import { denseAttention, maxAbs, randomQkv, runMechanism } from './attention_helpers.js';

const tiny: Partial<VitConfig> = { imgSize: 16, patchSize: 2, inChans: 1, numClasses: 4, embedDim: 16, depth: 2, numHeads: 2, mlpRatio: 2 };
const MECHANISMS: Partial<AttentionConfig>[] = [
  { attnType: 'softmax' }, { attnType: 'softmax', queryChunk: 7 }, { attnType: 'performer' }, { attnType: 'linear' },
  { attnType: 'sparse', blockSize: 8, numRandomBlocks: 1 }, { attnType: 'axial' }, { attnType: 'axial', axialRelPos: true },
];
const label = (c: Partial<AttentionConfig>) => Object.entries(c).map(([k, v]) => `${k}=${String(v)}`).join(' ');

describe('softmax attention in query chunks', () => {
  it('equals the unchunked product in output and gradients (uneven last chunk)', async () => {
    const x = randomQkv([2, 3, 50, 8], 2);
    const ctx = { headDim: 8, numHeads: 3, seed: 0 };
    const whole = await runMechanism(new SoftmaxAttention(ctx), x);
    const chunked = await runMechanism(new SoftmaxAttention(ctx, 7), x);
    expect(maxAbs(chunked.out, whole.out)).toBeLessThanOrEqual(1e-6);
    for (const g of ['dq', 'dk', 'dv'] as const) expect(relError(chunked[g], whole[g])).toBeLessThanOrEqual(1e-6);
    expect(maxAbs(whole.out, denseAttention(x))).toBeLessThanOrEqual(1e-5);
  });

  it('chunks long sequences by itself: 512 query rows from 2,048 tokens', () => {
    const m = new SoftmaxAttention({ headDim: 8, numHeads: 1, seed: 0 });
    expect([m.chunkFor(197), m.chunkFor(2047), m.chunkFor(2048), m.chunkFor(16384)]).toEqual([0, 0, 512, 512]);
    expect(new SoftmaxAttention({ headDim: 8, numHeads: 1, seed: 0 }, 4096).chunkFor(4096)).toBe(0);
  });
});

describe('the efficient paths build no [N, N] tensor', () => {
  const layout = { prefix: 1, grid: [16, 16] as const };
  const n = 257;
  for (const c of [{ attnType: 'softmax', queryChunk: 64 }, { attnType: 'performer' }, { attnType: 'linear' }, { attnType: 'sparse', blockSize: 16 }, { attnType: 'axial', axialRelPos: true }] as Partial<AttentionConfig>[]) {
    it(label(c), () => {
      const mech = createMechanism({ headDim: 8, numHeads: 2, layout, seed: 0 }, c);
      const spec = (name: string) => ({ name, shape: ['batch', 2, n, 8] as const });
      const t = trace((q, k, v) => mech.attendWithMatrix(q!, k!, v!, false).out, [spec('q'), spec('k'), spec('v')]);
      // the largest score block a query sees: a chunk's row, a block's keys, a grid line
      const widest = Math.max(...t.graph.nodes.map((node) => node.shape.slice(-2).filter((d) => typeof d === 'number').reduce((a, b) => a * (b as number), 1)));
      expect(widest).toBeLessThan(n * n / 3);
      const full = t.graph.nodes.filter((node) => node.shape.length >= 2 && node.shape.slice(-2).every((d) => d === n));
      expect(full).toEqual([]);
    });
  }
});

describe('chunked softmax attention in training', () => {
  it('keeps no probabilities for the backward pass: the forward has no softmax, the backward recomputes one per chunk', () => {
    const n = 64;
    const mech = new SoftmaxAttention({ headDim: 8, numHeads: 2, seed: 0 }, 16);
    const spec = (name: string) => ({ name, shape: ['batch', 2, n, 8] as const });
    let out: Tensor | undefined;
    const t = trace((q, k, v, w) => {
      out = mech.attend(q!, k!, v!);
      const [dq, dk, dv] = grad(ops.sum(ops.mul(out, w!)), [q!, k!, v!]);
      return { out, dq: dq!, dk: dk!, dv: dv! };
    }, [spec('q'), spec('k'), spec('v'), spec('w')]);
    const nodes = t.graph.nodes;
    const isSoftmax = (id: number) => { const node = nodes[id]!; return node.kind === 'op' && node.prim === 'softmax'; };
    const ancestors = (id: number): Set<number> => {
      const seen = new Set<number>();
      const stack = [id];
      while (stack.length) {
        const i = stack.pop()!;
        if (seen.has(i)) continue;
        seen.add(i);
        const node = nodes[i]!;
        if (node.kind === 'op') stack.push(...node.inputs);
      }
      return seen;
    };
    // a softmax the forward output depends on would be kept alive for softmax's VJP
    expect([...ancestors(out!.id)].filter(isSoftmax)).toEqual([]);
    const recomputed = nodes.map((_, id) => id).filter(isSoftmax);
    expect(recomputed.length).toBe(n / 16);
    // and one after another: each chunk's recomputation waits for the previous chunk's products
    // (else ORT may run all of them first and hold every chunk's [c, N] at once)
    for (let i = 1; i < recomputed.length; i++) expect(ancestors(recomputed[i]!).has(recomputed[i - 1]!)).toBe(true);
  });

  it('counts the FLOPs of q kᵀ and P v, as the unchunked graph\'s matmuls', () => {
    const spec = (name: string) => ({ name, shape: [1, 2, 64, 8] as const });
    const flops = (chunk: number) => {
      const mech = new SoftmaxAttention({ headDim: 8, numHeads: 2, seed: 0 }, chunk);
      const t = trace((q, k, v) => mech.attend(q!, k!, v!), [spec('q'), spec('k'), spec('v')]);
      return countFlops(t.graph, Object.values(t.outputs));
    };
    expect(flops(16)).toBe(2 * 2 * 64 * 64 * (8 + 8)); // 2 heads × 64 queries × 64 keys × (D + Dv) MACs × 2
    expect(flops(64)).toBe(flops(16));
  });
});

describe('sparse attention', () => {
  it('with every block attended is dense softmax attention (prefix token, padded last block)', async () => {
    const x = randomQkv([2, 2, 1 + 5 * 5, 8], 4);
    const mech = new SparseAttention({ headDim: 8, numHeads: 2, layout: { prefix: 1, grid: [5, 5] }, seed: 0 }, { blockSize: 3, numRandomBlocks: 20, numGlobalBlocks: 1 });
    expect(mech.pattern(26).every((rows) => rows.every((r) => r.length === 9))).toBe(true);
    const r = await runMechanism(mech, x);
    expect(maxAbs(r.out, denseAttention(x))).toBeLessThanOrEqual(1e-5);
    const dense = await runMechanism(new SoftmaxAttention({ headDim: 8, numHeads: 2, seed: 0 }), x);
    for (const g of ['dq', 'dk', 'dv'] as const) expect(relError(r[g], dense[g])).toBeLessThanOrEqual(1e-5);
  });

  it('draws K distinct blocks per query block: global, window, then random (per head, fixed by the module path)', () => {
    const mech = new SparseAttention({ headDim: 8, numHeads: 3, seed: 0 }, { blockSize: 4, numRandomBlocks: 2, numGlobalBlocks: 1 });
    const p = mech.pattern(64); // 16 blocks, K = 1 + 3 + 2
    p.forEach((rows) => rows.forEach((slots, j) => {
      const i = j + 1;
      expect(new Set(slots).size).toBe(6);
      for (const must of [0, i - 1, i, Math.min(15, i + 1)]) expect(slots).toContain(must);
    }));
    expect(JSON.stringify(p[0])).not.toBe(JSON.stringify(p[1]));
    const again = new SparseAttention({ headDim: 8, numHeads: 3, seed: 99 }, { blockSize: 4, numRandomBlocks: 2, numGlobalBlocks: 1 });
    expect(again.pattern(64)).toEqual(p); // not the run seed: fine-tuning keeps the pattern
  });
});

describe('Performer', () => {
  it('converges to softmax attention as nb_features grows: mean |error| falls at each 16× step, ≤ 1e-2 at 4,096 features', async () => {
    // q, k, v ~ N(0, 0.36), D = 16, 32 tokens; the exact output's max |value| is about 0.4
    const x = randomQkv([1, 2, 32, 16], 5, 0.6);
    const exact = denseAttention(x);
    const meanError = async (m: number) => {
      let total = 0;
      for (let s = 0; s < 4; s++) {
        const mech = new PerformerAttention({ headDim: 16, numHeads: 2, seed: 0 }, m);
        mech.features.data = orthogonalGaussianFeatures(m, 16, new Random(100 + s));
        const { out } = await runMechanism(mech, x);
        total += out.reduce((acc, o, i) => acc + Math.abs(o - exact[i]!), 0) / out.length;
      }
      return total / 4;
    };
    const errors = [await meanError(16), await meanError(256), await meanError(4096)];
    expect(errors[1]).toBeLessThan(errors[0]!);
    expect(errors[2]).toBeLessThan(errors[1]!);
    expect(errors[2]).toBeLessThanOrEqual(1e-2);
    expect(errors[2]).toBeLessThanOrEqual(errors[0]! / 4);
  });

  it('draws orthogonal blocks of rows with χ-distributed lengths', () => {
    const d = 8;
    const w = orthogonalGaussianFeatures(20, d, new Random(3));
    const row = (i: number) => w.subarray(i * d, (i + 1) * d);
    const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, v, e) => s + v * b[e]!, 0);
    for (let i = 0; i < 8; i++) for (let j = 0; j < i; j++) expect(Math.abs(dot(row(i), row(j)))).toBeLessThan(1e-4);
    expect(Math.abs(dot(row(8), row(0)))).toBeGreaterThan(1e-3); // the next block is independent
  });

  it('nb_features defaults to round(D ln D) and the features are a buffer under attn.fast_attention', () => {
    const model = new VisionTransformer({ ...tiny, attnType: 'performer' });
    expect(model.namedBuffers().map(([k, b]) => [k, b.shape])).toEqual([
      ['blocks.0.attn.fast_attention.projection_matrix', [17, 8]], ['blocks.1.attn.fast_attention.projection_matrix', [17, 8]], // round(8 ln 8)
    ]);
    expect(model.namedParameters().map(([k]) => k)).toEqual(new VisionTransformer(tiny).namedParameters().map(([k]) => k));
  });

  it('redraws its features every feature_redraw_interval optimiser steps, as a function of seed, path and round', () => {
    const make = (seed: number) => new VisionTransformer({ ...tiny, attnType: 'performer', featureRedrawInterval: 10, seed });
    const a = make(1);
    const features = () => a.namedBuffers().map(([, b]) => Float32Array.from(b.data));
    const start = features();
    expect(redrawScheduledBuffers(a, 0)).toEqual([]);
    expect(redrawScheduledBuffers(a, 9)).toEqual([]);
    expect(redrawScheduledBuffers(a, 10)).toEqual(['blocks.0.attn.fast_attention.projection_matrix', 'blocks.1.attn.fast_attention.projection_matrix']);
    expect(redrawScheduledBuffers(a, 11)).toEqual([]);
    const round1 = features();
    expect(maxAbs(round1[0]!, start[0]!)).toBeGreaterThan(0.1);
    expect(maxAbs(round1[0]!, round1[1]!)).toBeGreaterThan(0.1); // blocks draw their own
    // a resumed run reaches the same draw; another seed draws others
    const b = make(1);
    redrawScheduledBuffers(b, 15);
    expect(b.namedBuffers().map(([, x]) => Float32Array.from(x.data))).toEqual(round1);
    expect(maxAbs(make(2).namedBuffers()[0]![1].data, start[0]!)).toBeGreaterThan(0.1);
    // interval 0: fixed
    const fixed = new VisionTransformer({ ...tiny, attnType: 'performer', featureRedrawInterval: 0 });
    expect(redrawScheduledBuffers(fixed, 5000)).toEqual([]);
  });
});

describe('checkpoints between mechanisms', () => {
  it('a softmax state dict loads into performer and axial models (their own state kept) and back', () => {
    const soft = new VisionTransformer({ ...tiny, seed: 4 });
    const perf = new VisionTransformer({ ...tiny, attnType: 'performer', seed: 9 });
    const drawn = Float32Array.from(perf.namedBuffers()[0]![1].data);
    perf.loadStateDict(soft.stateDict(), true);
    expect(perf.namedParameters()[5]![1].data).toEqual(soft.namedParameters()[5]![1].data);
    expect(perf.namedBuffers()[0]![1].data).toEqual(drawn);
    const back = new VisionTransformer(tiny);
    back.loadStateDict(perf.stateDict(), true); // the features are dropped
    expect(back.stateDict()['blocks.1.attn.qkv.weight']!.data).toEqual(soft.stateDict()['blocks.1.attn.qkv.weight']!.data);
    const axial = new VisionTransformer({ ...tiny, attnType: 'axial', axialRelPos: true });
    const { state, notes } = axial.adaptPretrained(soft.stateDict());
    expect(Object.keys(state)).toContain('blocks.0.attn.axial.relative_width');
    expect(notes.join()).toMatch(/4 attention-mechanism tensors the checkpoint lacks/);
    axial.loadStateDict(state, true);
    expect(() => new VisionTransformer(tiny).loadStateDict({ ...soft.stateDict(), 'blocks.0.attn.qkv.extra': { data: new Float32Array(1), shape: [1] } })).toThrow(/unexpected keys: blocks\.0\.attn\.qkv\.extra/);
  });
});

describe('--model-kwargs', () => {
  it('takes attn_type and the options of that mechanism, and refuses another mechanism\'s options', () => {
    expect(vitKwargsSchema.safeParse({ attnType: 'performer', nbFeatures: 64 }).success).toBe(true);
    expect(vitKwargsSchema.safeParse({ attnType: 'flash' }).success).toBe(false);
    const family = getFamily('vit');
    const model = new VisionTransformer(tiny);
    expect(family.checkKwargs!({ nbFeatures: 64 }, model, 'vit_x')).toBe('nb_features configures performer attention, but attn_type=softmax; add attn_type=performer or drop it');
    expect(family.checkKwargs!({ attnType: 'sparse', blockSize: 4 }, new VisionTransformer({ ...tiny, attnType: 'sparse', blockSize: 4 }), 'vit_x')).toBeUndefined();
  });
});

describe('every mechanism in a ViT', () => {
  for (const c of MECHANISMS) {
    it(`${label(c)}: the attention maps are the matrices the output is computed from, and the ONNX passes onnx.checker`, async () => {
      const model = new VisionTransformer({ ...tiny, ...c });
      const exe = await compile((x) => {
        const plain = model.forward(x);
        const mapped = model.forward(x, { attention: true });
        return { plain: plain.logits, mapped: mapped.logits, ...Object.fromEntries(mapped.attentions!.map((a, i) => [`attn${i}`, a])) };
      }, [{ name: 'x', shape: ['batch', 1, 16, 16] }]);
      const out = await exe.run({ x: deterministicInput(2 * 16 * 16) });
      await exe.dispose();
      expect(maxAbs(out.mapped!.data as Float32Array, out.plain!.data as Float32Array)).toBeLessThanOrEqual(1e-5);
      const a = out.attn1!;
      expect(a.shape).toEqual([2, 2, 65, 65]);
      const rows = a.data as Float32Array;
      for (let r = 0; r < rows.length / 65; r++) {
        const s = rows.subarray(r * 65, (r + 1) * 65).reduce((x, y) => x + y, 0);
        expect(Math.abs(s - 1)).toBeLessThan(1e-4);
      }
      const traced = trace((x) => model.forward(x).logits, [{ name: 'x', shape: ['batch', 1, 16, 16] }]);
      expect(checkOnnxModels([[c.attnType!, emitModel(traced.graph, traced.outputs, { params: 'initializers' }).bytes]])).toBe('ok');
    });
  }

  it('axial attention needs the token grid', () => {
    expect(() => new AxialAttention({ headDim: 8, numHeads: 1, seed: 0 })).toThrow(/token grid/);
  });
});
