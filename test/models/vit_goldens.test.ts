/**
 * PyTorch goldens for the ViT family (scripts/make_vit_goldens.py, a plain-PyTorch model in timm's
 * layout): logits of a small 28×28 config with token and avg pooling and with the conv stem, a distilled DeiT and
 * vit_tiny_patch16_224; every parameter gradient of the small configs under cross-entropy;
 * bicubic pos-embed resampling. Logits ≤ 1e-4 absolute, gradients ≤ 1e-4 relative.
 */
import type { ImageModel } from '../../src/models/model.js';
import { describe, expect, it } from 'vitest';
import { VisionTransformer, type VitConfig } from '../../src/models/vit.js';
import { createModel } from '../../src/models/registry.js';
import { resamplePosEmbed } from '../../src/models/pos_embed.js';
import { compile } from '../../src/runtime/compile.js';
import * as ops from '../../src/ops/index.js';
import { deterministicInput, readJsonFixture, readTensorFixture, maxAbsDiff, deterministicModel } from '../helpers/fixtures.js';
import { relError } from '../helpers/random.js';

const meta = readJsonFixture('vit_goldens.json');
const tensors = readTensorFixture('vit_goldens.safetensors');
const golden = (name: string) => tensors.get(name) ?? (() => { throw new Error(`fixture has no tensor ${name}`); })();

function fromPy(c: Record<string, any>): Partial<VitConfig> {
  return {
    imgSize: c.img_size, patchSize: c.patch_size, inChans: c.in_chans, numClasses: c.num_classes, embedDim: c.embed_dim,
    depth: c.depth, numHeads: c.num_heads, mlpRatio: c.mlp_ratio, qkvBias: c.qkv_bias, globalPool: c.global_pool,
    classToken: c.class_token, distilled: c.distilled, embedLayer: c.embed_layer ?? 'patch', ...(c.stem_width ? { stemWidth: c.stem_width } : {}),
    ...(c.stem_strides ? { stemStrides: c.stem_strides } : {}), ...(c.stem_norm ? { stemNorm: c.stem_norm } : {}),
  };
}



describe('ViT against PyTorch', () => {
  for (const name of ['small_token', 'small_avg', 'small_convstem', 'small_convstem_s1', 'small_convstem_gn']) {
    it(`${name}: logits, loss and every parameter gradient`, async () => {
      const c = meta[name];
      const model = deterministicModel(new VisionTransformer(fromPy(c.config)));
      expect(model.namedParameters().map(([k]) => k)).toEqual(c.keys);
      const [b, ch, h, w] = c.input_shape;
      const exe = await compile((x, y) => {
        const { logits } = model.forward(x);
        return { logits, loss: ops.crossEntropy(logits, y) };
      }, [{ name: 'x', shape: ['batch', ch, h, w] }, { name: 'y', shape: ['batch'], dtype: 'int64' }], { grad: { wrt: ['x', ...c.keys] } });
      const out = await exe.run({ x: deterministicInput(b * ch * h * w), y: c.labels });
      await exe.dispose();
      expect(maxAbsDiff(out.logits!.data as Float32Array, golden(`${name}.logits`).data)).toBeLessThanOrEqual(1e-4);
      expect(Math.abs(Number(out.loss!.data[0]) - c.loss)).toBeLessThanOrEqual(1e-4);
      expect(relError(out['grad/x']!.data as Float32Array, golden(`${name}.grad_input`).data)).toBeLessThanOrEqual(1e-4);
      const off = (c.keys as string[]).map((k) => [k, relError(out[`grad/${k}`]!.data as Float32Array, golden(`${name}.grad.${k}`).data)] as const)
        .filter(([, e]) => !(e <= 1e-4));
      expect(off).toEqual([]);
    });
  }

  async function logitsOf(model: ImageModel, inputShape: number[]): Promise<Float32Array> {
    const [b, ch, h, w] = inputShape as [number, number, number, number];
    const exe = await compile((x) => model.forward(x).logits, [{ name: 'x', shape: ['batch', ch, h, w] }], { params: 'initializers' });
    const out = await exe.run({ x: deterministicInput(b * ch * h * w) });
    await exe.dispose();
    return out.output!.data as Float32Array;
  }

  it('small_distilled: DeiT averages its two heads at eval', async () => {
    const c = meta.small_distilled;
    const model = deterministicModel(new VisionTransformer(fromPy(c.config)));
    expect(model.namedParameters().map(([k]) => k)).toEqual(c.keys);
    expect(maxAbsDiff(await logitsOf(model, c.input_shape), golden('small_distilled.logits').data)).toBeLessThanOrEqual(1e-4);
  });

  it('vit_tiny_patch16_224: 152 tensors with timm keys and matching logits', async () => {
    const c = meta.tiny224;
    const model = deterministicModel(createModel('vit_tiny_patch16_224'));
    expect(model.namedParameters().map(([k]) => k)).toEqual(c.keys);
    expect(model.numParams()).toBe(meta.tiny224_num_params);
    expect(maxAbsDiff(await logitsOf(model, c.input_shape), golden('tiny224.logits').data)).toBeLessThanOrEqual(1e-4);
  });
});

describe('pos-embed resampling against torch bicubic (antialias, as timm)', () => {
  const r = meta.resample;
  const src = golden('resample.src');
  for (const [name, size] of Object.entries(r.outputs as Record<string, [number, number]>)) {
    it(name, () => {
      const out = resamplePosEmbed(src.data, src.shape[2]!, r.old_size, size, r.num_prefix_tokens);
      const want = golden(`resample.${name}`);
      expect(out.length).toBe(want.data.length);
      expect(maxAbsDiff(out, want.data)).toBeLessThanOrEqual(1e-5);
    });
  }
});
