/** ViT structure: timm's key layout, pooling variants, attention outputs, state-dict errors. */
import { describe, expect, it } from 'vitest';
import { createModel } from '../../src/models/registry.js';
import { VisionTransformer } from '../../src/models/vit.js';
import { Graph } from '../../src/ir/graph.js';
import { BATCH } from '../../src/ir/shape.js';

const small = { imgSize: 28, patchSize: 4, inChans: 1, numClasses: 10, embedDim: 48, depth: 2, numHeads: 3 };

describe('VisionTransformer', () => {
  it("has timm's 152 keys for vit_tiny_patch16_224, in timm's order", () => {
    const keys = createModel('vit_tiny_patch16_224').namedParameters().map(([k]) => k);
    expect(keys.length).toBe(152);
    expect(keys.slice(0, 5)).toEqual(['cls_token', 'pos_embed', 'patch_embed.proj.weight', 'patch_embed.proj.bias', 'blocks.0.norm1.weight'].sort((a, b) => keys.indexOf(a) - keys.indexOf(b)));
    expect(keys).toContain('blocks.11.attn.qkv.weight');
    expect(keys).toContain('blocks.11.mlp.fc2.bias');
    expect(keys.slice(-4)).toEqual(['norm.weight', 'norm.bias', 'head.weight', 'head.bias']);
  });

  it("uses fc_norm instead of norm for avg pooling, as timm does", () => {
    const keys = new VisionTransformer({ ...small, globalPool: 'avg' }).namedParameters().map(([k]) => k);
    expect(keys).toContain('fc_norm.weight');
    expect(keys).not.toContain('norm.weight');
  });

  it('returns every block attention map on request', () => {
    const m = new VisionTransformer(small);
    const g = new Graph();
    const { attentions, logits } = m.forward(g.input('x', [BATCH, 1, 28, 28]), { attention: true });
    expect(attentions!.length).toBe(2);
    expect(attentions![0]!.shape).toEqual([BATCH, 3, 50, 50]);
    expect(logits.shape).toEqual([BATCH, 10]);
  });

  it('builds a headless feature extractor with numClasses 0', () => {
    const m = new VisionTransformer({ ...small, numClasses: 0 });
    const g = new Graph();
    expect(m.forward(g.input('x', [BATCH, 1, 28, 28])).logits.shape).toEqual([BATCH, 48]);
    expect(m.namedParameters().some(([k]) => k.startsWith('head'))).toBe(false);
  });

  it('builds conv stems from a stride plan and rejects plans that miss the patch size', () => {
    const m = new VisionTransformer({ imgSize: 28, patchSize: 4, inChans: 1, embedDim: 48, depth: 1, numHeads: 3, embedLayer: 'conv', stemWidth: 8, stemStrides: [1, 2, 2] });
    const shapes = Object.fromEntries(m.namedParameters().filter(([k]) => k.startsWith('patch_embed')).map(([k, p]) => [k, p.shape]));
    expect(shapes['patch_embed.backbone.conv0.weight']).toEqual([8, 1, 3, 3]);
    expect(shapes['patch_embed.backbone.conv1.weight']).toEqual([8, 8, 3, 3]);
    expect(shapes['patch_embed.backbone.conv2.weight']).toEqual([16, 8, 3, 3]);
    expect(shapes['patch_embed.proj.weight']).toEqual([48, 16, 1, 1]);
    expect(() => new VisionTransformer({ imgSize: 28, patchSize: 4, embedLayer: 'conv', stemStrides: [2, 2, 2] })).toThrow(/strides \[2, 2, 2\] must each be 1 or 2 and multiply to the patch size 4/);
  });

  it('puts a GroupNorm after each 3×3 conv of a stem with norm: group, and drops those convs\' biases', () => {
    const m = new VisionTransformer({ imgSize: 28, patchSize: 4, inChans: 1, embedDim: 48, depth: 1, numHeads: 3, embedLayer: 'conv', stemWidth: 8, stemNorm: 'group' });
    const keys = m.namedParameters().map(([k]) => k).filter((k) => k.startsWith('patch_embed'));
    expect(keys).toEqual([
      'patch_embed.backbone.conv0.weight', 'patch_embed.backbone.norm0.weight', 'patch_embed.backbone.norm0.bias',
      'patch_embed.backbone.conv1.weight', 'patch_embed.backbone.norm1.weight', 'patch_embed.backbone.norm1.bias',
      'patch_embed.proj.weight', 'patch_embed.proj.bias',
    ]);
    expect(() => new VisionTransformer({ imgSize: 28, patchSize: 4, embedLayer: 'conv', stemWidth: 12, stemNorm: 'group' }))
      .toThrow(/stem width 12 gives 12 channels, which do not split into 8 GroupNorm groups/);
  });

  it('names the module path when the input does not fit the patch embedding', () => {
    const m = new VisionTransformer(small);
    const g = new Graph();
    expect(() => m.forward(g.input('x', [BATCH, 3, 28, 28]))).toThrow('patch_embed: expected images [B, 1, 28, 28], got [B, 3, 28, 28]');
  });

  it('names the layer and the expected width when a Linear gets the wrong input', () => {
    const m = new VisionTransformer(small);
    const g = new Graph();
    const width = m.config.embedDim;
    expect(() => m.blocks[0]!.mlp.fc1.forward(g.input('t', [BATCH, 4, width + 2]))).toThrow(`blocks.0.mlp.fc1: expected input [..., ${width}], got [B, 4, ${width + 2}]`);
  });

  it('initialises reproducibly from the seed, independent of access order', () => {
    const a = new VisionTransformer({ ...small, seed: 3 });
    const b = new VisionTransformer({ ...small, seed: 3 });
    const c = new VisionTransformer({ ...small, seed: 4 });
    const pa = a.namedParameters();
    const pb = b.namedParameters().reverse();
    void pb.map(([, p]) => p.data); // touch b's parameters in reverse order first
    for (const [k, p] of pa) {
      expect(Array.from(p.data)).toEqual(Array.from(b.stateDict()[k]!.data));
    }
    expect(Array.from(c.stateDict()['blocks.0.attn.qkv.weight']!.data)).not.toEqual(Array.from(a.stateDict()['blocks.0.attn.qkv.weight']!.data));
    const w = a.stateDict()['blocks.0.mlp.fc1.weight']!.data;
    const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
    expect(std).toBeGreaterThan(0.018);
    expect(std).toBeLessThan(0.022);
    // timm's trunc_normal_(std=.02) cuts at ±2 absolute, i.e. it is effectively untruncated
    expect(Math.max(...w.map(Math.abs))).toBeLessThan(0.02 * 6);
  });
});

describe('state dicts', () => {
  it('round-trip through stateDict/loadStateDict', () => {
    const a = new VisionTransformer({ ...small, seed: 1 });
    const b = new VisionTransformer({ ...small, seed: 2 });
    b.loadStateDict(a.stateDict());
    expect(Array.from(b.stateDict()['head.weight']!.data)).toEqual(Array.from(a.stateDict()['head.weight']!.data));
  });

  it('lists missing, unexpected and mis-shaped keys in one message', () => {
    const m = new VisionTransformer(small);
    const sd = { ...m.stateDict() };
    delete sd['norm.bias'];
    sd['extra.weight'] = { data: new Float32Array(1), shape: [1] };
    sd['head.weight'] = { data: new Float32Array(48 * 5), shape: [5, 48] };
    expect(() => m.loadStateDict(sd)).toThrow(
      'cannot load state dict: shape mismatch for head.weight: checkpoint [5, 48] vs model [10, 48]; missing keys: norm.bias; unexpected keys: extra.weight');
  });

  it('tolerates missing and unexpected keys when not strict, but never wrong shapes', () => {
    const m = new VisionTransformer(small);
    const sd = { ...m.stateDict() };
    delete sd['norm.bias'];
    expect(m.loadStateDict(sd, false).missing).toEqual(['norm.bias']);
    sd['pos_embed'] = { data: new Float32Array(48), shape: [1, 1, 48] };
    expect(() => m.loadStateDict(sd, false)).toThrow('shape mismatch for pos_embed');
  });

  it('resamples pos_embed from another grid when asked', () => {
    const src = new VisionTransformer({ ...small, imgSize: 28 }); // 7×7 grid
    const dst = new VisionTransformer({ ...small, imgSize: 56 }); // 14×14 grid
    dst.loadStateDict(src.stateDict(), true, { resamplePos: true });
    const pe = dst.stateDict().pos_embed!;
    expect(pe.shape).toEqual([1, 197, 48]);
    // the class-token position passes through unchanged
    expect(Array.from(pe.data.subarray(0, 48))).toEqual(Array.from(src.stateDict().pos_embed!.data.subarray(0, 48)));
  });
});
