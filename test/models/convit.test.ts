/**
 * ConViT against PyTorch (scripts/make_convit_goldens.py, a plain-PyTorch ConViT in timm's layout):
 * two small configs with perturbed weights (gates off 1, random pos_proj), logits ≤ 1e-4 absolute
 * and every parameter gradient ≤ 1e-4 relative under cross-entropy, every block's attention,
 * drop-path scales; convit_tiny's 180 timm keys and full-size logits; the locality init and the
 * relative positions; and the family's seams (entries, layer groups, token grid, kwargs).
 */
import { describe, expect, it } from 'vitest';
import { ConVit, inferConvitConfig, localityInit, relativePositions, type ConvitConfig } from '../../src/models/convit.js';
import { createModel, getModelEntry } from '../../src/models/registry.js';
import { getFamily, type ImageModel } from '../../src/models/model.js';
import { compile } from '../../src/runtime/compile.js';
import { Random } from '../../src/random.js';
import * as ops from '../../src/ops/index.js';
import { deterministicInput, deterministicValues, readJsonFixture, readTensorFixture } from '../helpers/fixtures.js';
import { relError } from '../helpers/random.js';

const meta = readJsonFixture('convit_goldens.json');
const tensors = readTensorFixture('convit_goldens.safetensors');
const golden = (name: string) => tensors.get(name) ?? (() => { throw new Error(`fixture has no tensor ${name}`); })();

function fromPy(c: Record<string, any>): Partial<ConvitConfig> {
  return {
    imgSize: c.img_size, patchSize: c.patch_size, inChans: c.in_chans, numClasses: c.num_classes, embedDim: c.embed_dim, depth: c.depth,
    numHeads: c.num_heads, mlpRatio: c.mlp_ratio, qkvBias: c.qkv_bias, localUpToLayer: c.local_up_to_layer, localityStrength: c.locality_strength,
    globalPool: c.global_pool,
  };
}

/** The case's model with the fixture's weights loaded by timm key. */
function goldenModel(name: string): ConVit {
  const c = meta[name];
  const model = new ConVit(fromPy(c.config));
  expect(model.namedParameters().map(([k]) => k)).toEqual(c.keys);
  model.loadStateDict(Object.fromEntries((c.keys as string[]).map((k) => [k, golden(`${name}.param.${k}`)])));
  return model;
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = a.length === b.length ? 0 : Infinity;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

const imageSpec = (shape: number[]) => ({ name: 'x', shape: ['batch', ...shape.slice(1)] as ['batch', number, number, number] });
const imageSize = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

describe('ConViT against PyTorch', () => {
  for (const name of ['small', 'small_avg']) {
    it(`${name}: logits, loss and every parameter gradient`, async () => {
      const c = meta[name];
      const model = goldenModel(name);
      const exe = await compile((x, y) => {
        const { logits } = model.forward(x);
        return { logits, loss: ops.crossEntropy(logits, y) };
      }, [imageSpec(c.input_shape), { name: 'y', shape: ['batch'], dtype: 'int64' }], { grad: { wrt: ['x', ...c.keys] } });
      const out = await exe.run({ x: deterministicInput(imageSize(c.input_shape)), y: c.labels });
      await exe.dispose();
      expect(maxAbsDiff(out.logits!.data as Float32Array, golden(`${name}.logits`).data)).toBeLessThanOrEqual(1e-4);
      expect(Math.abs(Number(out.loss!.data[0]) - c.loss)).toBeLessThanOrEqual(1e-4);
      expect(relError(out['grad/x']!.data as Float32Array, golden(`${name}.grad_input`).data)).toBeLessThanOrEqual(1e-4);
      // pos_proj.bias shifts a whole softmax row, so its true gradient is 0 (the float64 reference asserts
      // it): both sides hold float32 rounding noise, compared in absolute terms
      const off = (c.keys as string[]).filter((k) => {
        const got = out[`grad/${k}`]!.data as Float32Array;
        const want = golden(`${name}.grad.${k}`).data;
        return k.endsWith('pos_proj.bias') ? !(maxAbsDiff(got, want) <= 1e-6) : !(relError(got, want) <= 1e-4);
      });
      expect(off).toEqual([]);
    });

    it(`${name}: every block's attention, GPSA blocks laid out over the class token and the patches`, async () => {
      const c = meta[name];
      const model = goldenModel(name);
      const depth = c.config.depth as number;
      const exe = await compile((x) => {
        const { logits, attentions } = model.forward(x, { attention: true });
        return { logits, ...Object.fromEntries(attentions!.map((a, i) => [`attn${i}`, a])) };
      }, [imageSpec(c.input_shape)], { params: 'initializers' });
      const out = await exe.run({ x: deterministicInput(imageSize(c.input_shape)) });
      await exe.dispose();
      // asking for attentions changes nothing in the logits
      expect(maxAbsDiff(out.logits!.data as Float32Array, golden(`${name}.logits`).data)).toBeLessThanOrEqual(1e-4);
      const grid = model.tokenGrid();
      const t = 1 + grid.grid[0] * grid.grid[1];
      for (let i = 0; i < depth; i++) {
        const got = out[`attn${i}`]!;
        expect(got.shape).toEqual([2, c.config.num_heads, t, t]);
        const data = got.data as Float32Array;
        const want = golden(`${name}.attn.${i}`);
        if (i >= c.config.local_up_to_layer) {
          expect(maxAbsDiff(data, want.data)).toBeLessThanOrEqual(1e-5);
          continue;
        }
        // GPSA: the golden [B, H, N, N] inside, e₀ in row and column 0
        const n = t - 1;
        const inner: number[] = [];
        const border: number[] = [];
        for (let bh = 0; bh < 2 * c.config.num_heads; bh++) {
          for (let r = 0; r < t; r++) for (let q = 0; q < t; q++) (r && q ? inner : border).push(data[bh * t * t + r * t + q]!);
        }
        expect(maxAbsDiff(inner, want.data)).toBeLessThanOrEqual(1e-5);
        const e0 = Array.from({ length: 2 * c.config.num_heads }, () => [1, ...new Array(2 * n).fill(0)]).flat();
        expect(border).toEqual(e0);
      }
    });
  }

  it('small: drop path scales each branch as the noise input says', async () => {
    const c = meta.small;
    const model = goldenModel('small');
    const depth = c.config.depth as number;
    const exe = await compile((x, dp) => model.forward(x, { noise: { drop_path: dp } }).logits,
      [imageSpec(c.input_shape), { name: 'drop_path', shape: ['batch', depth * 2] }], { params: 'initializers' });
    const out = await exe.run({ x: deterministicInput(imageSize(c.input_shape)), drop_path: Float32Array.from(c.drop_scales.flat()) });
    await exe.dispose();
    expect(maxAbsDiff(out.output!.data as Float32Array, golden('small.drop_path_logits').data)).toBeLessThanOrEqual(1e-4);
    const noise = new ConVit({ ...fromPy(c.config), dropPathRate: 0.1 }).noiseInputs();
    expect(noise.map((n) => [n.name, n.perSample])).toEqual([['drop_path', depth * 2]]);
  });

  it("convit_tiny: timm's 180 keys, its parameter count and full-size logits", async () => {
    const c = meta.tiny224;
    const model: ImageModel = createModel('convit_tiny');
    expect(model.namedParameters().map(([k]) => k)).toEqual(c.keys);
    expect(model.numParams()).toBe(c.num_params);
    for (const [k, p] of model.namedParameters()) p.data = deterministicValues(k, p.size);
    const exe = await compile((x) => model.forward(x).logits, [imageSpec(c.input_shape)], { params: 'initializers' });
    const out = await exe.run({ x: deterministicInput(imageSize(c.input_shape)) });
    await exe.dispose();
    expect(maxAbsDiff(out.output!.data as Float32Array, golden('tiny224.logits').data)).toBeLessThanOrEqual(1e-4);
  });
});

describe('ConViT initialisation', () => {
  it("pos_proj's locality pattern for 4, 6 and 9 heads, at two strengths", () => {
    for (const [key, rows] of Object.entries(meta.init.pos_proj as Record<string, number[][]>)) {
      const [, heads, strength] = /^heads(\d+)_strength([\d.]+)$/.exec(key)!.map(Number) as [number, number, number];
      const w = localityInit(heads, strength)(heads * 3, new Random(1));
      expect(Array.from(w.subarray(0, rows.length * 3)), key).toEqual(rows.flat());
    }
  });

  it('the relative positions [Δx, Δy, Δx² + Δy²] of a 3×3 grid', () => {
    expect(Array.from(relativePositions(3))).toEqual(meta.init.relative_3x3);
  });

  it('GPSA starts with v = I, gates at 1 and a zero pos_proj bias; heads beyond k² keep a small random init', () => {
    const model = new ConVit({ imgSize: 16, patchSize: 4, embedDim: 4, numHeads: 6, depth: 2, localUpToLayer: 1, localityStrength: 2 });
    const p = Object.fromEntries(model.namedParameters().map(([k, v]) => [k, v.data]));
    const v = p['blocks.0.attn.v.weight']!;
    expect(Array.from(v).every((x, i) => x === (Math.floor(i / 24) === i % 24 ? 1 : 0))).toBe(true);
    expect(Array.from(p['blocks.0.attn.gating_param']!)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(Array.from(p['blocks.0.attn.pos_proj.bias']!)).toEqual([0, 0, 0, 0, 0, 0]);
    const w = Array.from(p['blocks.0.attn.pos_proj.weight']!);
    expect(w.slice(0, 12)).toEqual([-2, -2, -2, -2, 2, -2, 2, -2, -2, 2, 2, -2]); // 2 × the 2×2 kernel
    expect(w.slice(12).every((x) => x !== 0 && Math.abs(x) <= 0.2)).toBe(true);
    expect(model.namedParameters().some(([k]) => k === 'blocks.1.attn.qkv.weight')).toBe(true);
  });
});

describe('ConViT family', () => {
  it("registers timm's entries with their parameter counts and preprocessing", () => {
    for (const [name, params] of Object.entries(meta.params as Record<string, number>)) {
      const e = getModelEntry(name);
      expect(e.params).toBe(params);
      expect(e.pretrained).toEqual({ inputSize: [3, 224, 224], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], interpolation: 'bicubic', cropPct: 0.875, numClasses: 1000 });
    }
    expect(getModelEntry('convit_tiny_patch4_28').pretrained.inputSize).toEqual([1, 28, 28]);
    const small = createModel('convit_tiny_patch4_28');
    expect(small.tokenGrid()).toEqual({ grid: [7, 7], prefix: 1, pool: 'cls', depth: 6, heads: 4 });
  });

  it("groups layers as timm's group_matcher and names its head", () => {
    const model = createModel('convit_tiny');
    const { blocks, layerOf } = model.layerGrouping();
    expect(blocks).toBe(12);
    expect(['cls_token', 'pos_embed', 'patch_embed.proj.weight', 'blocks.0.attn.gating_param', 'blocks.11.attn.qkv.weight', 'norm.bias', 'head.weight'].map(layerOf))
      .toEqual([0, 0, 0, 1, 12, 13, 13]);
    expect(model.headKeys()).toEqual(['head.weight', 'head.bias']);
  });

  it('checks its kwargs and where the class token may join', () => {
    const schema = getFamily('convit').kwargsSchema;
    expect(schema.safeParse({ localUpToLayer: 3, localityStrength: 0.5, embedDim: 32 }).success).toBe(true);
    expect(schema.safeParse({ qkBias: true }).success).toBe(false);
    expect(() => new ConVit({ depth: 4, localUpToLayer: 4 })).toThrow(/local_up_to_layer \(localUpToLayer\) must be an integer in \[0, depth − 1\] = \[0, 3\].*got 4/);
    // no GPSA at all is a DeiT without a class slot in pos_embed
    expect(new ConVit({ imgSize: 16, patchSize: 4, embedDim: 4, numHeads: 2, depth: 1, localUpToLayer: 0 }).namedParameters().some(([k]) => k.includes('gating'))).toBe(false);
  });

  it('reads its architecture from timm-layout weights, and only from a ConViT\'s', () => {
    // inference reads shapes only: state dicts without values
    const shapesOf = (m: ImageModel) => Object.fromEntries(m.namedParameters().map(([k, p]) => [k, { data: new Float32Array(0), shape: p.shape }]));
    expect(inferConvitConfig(shapesOf(createModel('convit_small')))).toEqual({ imgSize: 224, inChans: 3, patchSize: 16, embedDim: 48, depth: 12, numHeads: 9, mlpRatio: 4, qkvBias: false, localUpToLayer: 10, usePosEmbed: true, numClasses: 1000 });
    const small = inferConvitConfig(shapesOf(createModel('convit_tiny_patch4_28')))!;
    expect(new ConVit(small).namedParameters().map(([k, p]) => [k, p.shape])).toEqual(createModel('convit_tiny_patch4_28').namedParameters().map(([k, p]) => [k, p.shape]));
    expect(inferConvitConfig(shapesOf(createModel('vit_tiny_patch4_28')))).toBeUndefined();
  });

  it('loads a 224 state dict at another size by resampling pos_embed (no class slot)', () => {
    const sd = createModel('convit_tiny').stateDict();
    const model = createModel('convit_tiny', { imgSize: 112 });
    expect(() => model.loadStateDict(sd)).toThrow(/pos_embed: checkpoint \[1, 196, 192\] vs model \[1, 49, 192\]/);
    model.loadStateDict(sd, true, { resamplePos: true });
    expect(model.stateDict().pos_embed!.shape).toEqual([1, 49, 192]);
  });
});
