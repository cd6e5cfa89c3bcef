/**
 * Explanation maps and one FGSM step against PyTorch (scripts/make_explain_goldens.py): the small
 * 28×28 ViT with deterministic weights, token and avg pooling and DeiT's distillation token.
 * Attention and rollout ≤ 1e-5 absolute; gradient-based maps ≤ 1e-4 relative.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { VisionTransformer, type VitConfig } from '../../src/models/vit.js';
import { Explainer, compileProbe, runProbe, type HeadFusion } from '../../src/explain/index.js';
import { compileAttackModel, fgsm } from '../../src/robust/index.js';
import { deterministicInput, deterministicValues, readJsonFixture } from '../helpers/fixtures.js';
import { relError } from '../helpers/random.js';

const golden = readJsonFixture('explain_goldens.json');

function modelFor(c: Record<string, any>): VisionTransformer {
  const config: Partial<VitConfig> = {
    imgSize: c.img_size, patchSize: c.patch_size, inChans: c.in_chans, numClasses: c.num_classes, embedDim: c.embed_dim,
    depth: c.depth, numHeads: c.num_heads, mlpRatio: c.mlp_ratio, qkvBias: c.qkv_bias, globalPool: c.global_pool,
    classToken: c.class_token, distilled: c.distilled,
  };
  const model = new VisionTransformer(config);
  for (const [k, p] of model.namedParameters()) p.data = deterministicValues(k, p.size);
  return model;
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};
const flat = (rows: number[][]) => rows.flat();
const x = deterministicInput(2 * 28 * 28);

describe.each(['token', 'avg', 'distilled'])('explanations of the %s model match PyTorch', (name) => {
  const g = golden[name];
  const model = modelFor(g.config);
  const explainer = new Explainer(model, { threads: 2 });
  afterAll(() => explainer.dispose());

  it('attention probabilities and the last block\'s maps', async () => {
    const probe = await compileProbe(model, { session: { threads: 2 } });
    const out = await runProbe(probe, x);
    await probe.exe.dispose();
    expect(maxAbsDiff(out.logits, flat(g.logits))).toBeLessThanOrEqual(1e-4);
    const [t, heads] = [probe.tokens, probe.heads];
    expect(t).toBe(49 + g.prefix);
    out.attentions.forEach((a, l) => {
      const rows = Float32Array.from({ length: 2 * heads * t }, (_, i) => a[Math.floor(i / t) * t * t + (i % t)]!);
      expect(maxAbsDiff(rows, g.cls_rows[l].flat(2))).toBeLessThanOrEqual(1e-5);
    });
    if (g.attention_full_l0_b0_h0) expect(maxAbsDiff(out.attentions[0]!.subarray(0, t * t), g.attention_full_l0_b0_h0)).toBeLessThanOrEqual(1e-5);

    const ex = await explainer.explain(x, { method: 'attention' });
    ex.forEach((e, b) => {
      expect(e.mapShape).toEqual([7, 7]);
      expect(maxAbsDiff(e.map, g.attention[b])).toBeLessThanOrEqual(1e-5);
      const lastHeads = e.tiles.slice(-(heads + 1), -1).map((tile) => Array.from(tile.map));
      expect(maxAbsDiff(lastHeads.flat(), g.attention_heads[b].flat())).toBeLessThanOrEqual(1e-5);
    });
  });

  it.each(['mean', 'max', 'min'] as HeadFusion[])('rollout with %s head fusion and discard ratios 0, 0.5, 0.9', async (fusion) => {
    for (const ratio of [0, 0.5, 0.9]) {
      const ex = await explainer.explain(x, { method: 'rollout', headFusion: fusion, discardRatio: ratio });
      const want: number[][] = g.rollout[`${fusion}_${ratio.toFixed(1)}`];
      ex.forEach((e, b) => expect(maxAbsDiff(e.map, want[b]!), `${fusion} ${ratio} image ${b}`).toBeLessThanOrEqual(1e-5));
    }
  });

  it('grad-rollout and saliency for a chosen class', async () => {
    const rollout = await explainer.explain(x, { method: 'grad-rollout', classes: g.classes });
    expect(rollout.map((e) => e.classIndex)).toEqual(g.classes);
    rollout.forEach((e, b) => expect(relError(e.map, g.grad_rollout[b])).toBeLessThanOrEqual(1e-4));
    const saliency = await explainer.explain(x, { method: 'saliency', classes: g.classes });
    saliency.forEach((e, b) => {
      expect(e.mapShape).toEqual([28, 28]);
      expect(relError(e.map, g.saliency[b])).toBeLessThanOrEqual(1e-4);
    });
  });
});

describe('FGSM against PyTorch (torchattacks semantics)', () => {
  const f = golden.token.fgsm;
  const model = modelFor(golden.token.config);

  it('the pixel-space gradient, one step at eps 0.1 and the adversarial logits', async () => {
    const attack = await compileAttackModel(model, { mean: [f.mean], std: [f.std], session: { threads: 2 } });
    const x01 = x.map((v) => (v + 1) / 2);
    const want = flat(f.grad);
    // our loss is the per-image CE summed over the batch; PyTorch's is the mean over 2 images
    const { grad } = await attack.lossAndGrad(x01, f.labels);
    expect(relError(grad.map((v) => v / 2), want)).toBeLessThanOrEqual(1e-4);

    const adv = await fgsm(attack, x01, f.labels, { eps: f.eps });
    const wantAdv = flat(f.x_adv);
    const scale = Math.max(...want.map(Math.abs));
    // only gradients within float32 noise of zero may take the other sign
    const off = wantAdv.map((v, i) => [i, Math.abs(adv[i]! - v)] as const).filter(([i, d]) => d > 1e-6 && Math.abs(want[i]!) > 1e-4 * scale);
    expect(off).toEqual([]);
    expect(maxAbsDiff(await attack.logits(Float32Array.from(wantAdv)), flat(f.logits))).toBeLessThanOrEqual(1e-4);
    await attack.dispose();
  });
});
