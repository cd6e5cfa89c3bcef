/**
 * The Explainer's behaviour beyond the goldens: default class = prediction, class-specific maps,
 * the map shapes and grids of each method, seeded SmoothGrad, and clear errors.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { VisionTransformer } from '../../src/models/vit.js';
import { Explainer } from '../../src/explain/index.js';
import { deterministicInput, deterministicValues } from '../helpers/fixtures.js';
import { relError } from '../helpers/random.js';

function smallModel(over: Partial<ConstructorParameters<typeof VisionTransformer>[0]> = {}) {
  const model = new VisionTransformer({ imgSize: 28, patchSize: 4, inChans: 1, numClasses: 10, embedDim: 48, depth: 2, numHeads: 3, mlpRatio: 2, ...over });
  for (const [k, p] of model.namedParameters()) p.data = deterministicValues(k, p.size);
  return model;
}

const x = deterministicInput(3 * 784).map((v, i) => v * Math.cos(0.001 * i * i));

describe('Explainer', () => {
  const explainer = new Explainer(smallModel(), { threads: 1 });
  afterAll(() => explainer.dispose());

  it('explains the predicted class by default, or the class asked for', async () => {
    const byDefault = await explainer.explain(x, { method: 'grad-rollout' });
    for (const e of byDefault) {
      expect(e.classIndex).toBe(e.predicted);
      expect(e.predicted).toBe(e.logits.indexOf(Math.max(...e.logits)));
    }
    const other = (byDefault[0]!.predicted + 1) % 10;
    const chosen = await explainer.explain(x, { method: 'grad-rollout', classes: [other, undefined, undefined] });
    expect(chosen.map((e) => e.classIndex)).toEqual([other, byDefault[1]!.predicted, byDefault[2]!.predicted]);
    // another class, other evidence; the same class, the same map
    expect(relError(chosen[0]!.map, byDefault[0]!.map)).toBeGreaterThan(1e-3);
    expect(relError(chosen[1]!.map, byDefault[1]!.map)).toBeLessThan(1e-6);
  });

  it('gives [7, 7] patch maps (saliency [28, 28]) upsampled to the input, with per-layer/per-head tiles', async () => {
    const cases = [['attention', 2 * 4, 4], ['rollout', 2, 2], ['grad-rollout', 2, 2], ['saliency', 1, 1]] as const;
    for (const [method, tiles, columns] of cases) {
      const [e] = await explainer.explain(x.subarray(0, 784), { method });
      expect(e!.mapShape).toEqual(method === 'saliency' ? [28, 28] : [7, 7]);
      expect(e!.map.length).toBe(e!.mapShape[0] * e!.mapShape[1]);
      expect(e!.upsampled.length).toBe(784);
      expect(e!.tiles.length).toBe(tiles);
      expect(e!.tileColumns).toBe(columns);
      expect(e!.tiles.every((t) => t.map.length === e!.map.length && t.map.every(Number.isFinite))).toBe(true);
    }
    const [a] = await explainer.explain(x.subarray(0, 784), { method: 'attention' });
    expect(a!.tiles.map((t) => t.label)).toEqual(['block 0 head 0', 'block 0 head 1', 'block 0 head 2', 'block 0 mean',
      'block 1 head 0', 'block 1 head 1', 'block 1 head 2', 'block 1 mean']);
    // the main map is the last block's fused row, which also sums the attention over patches to ≤ 1
    expect(a!.map).toEqual(a!.tiles.at(-1)!.map);
    expect(a!.map.reduce((s, v) => s + v, 0)).toBeLessThanOrEqual(1 + 1e-6);
  });

  it('SmoothGrad: seeded, and without noise it is plain saliency', async () => {
    const img = x.subarray(0, 784);
    const [plain] = await explainer.explain(img, { method: 'saliency' });
    const [quiet] = await explainer.explain(img, { method: 'saliency', smoothGrad: { samples: 3, noiseLevel: 0 } });
    expect(relError(quiet!.map, plain!.map)).toBeLessThan(1e-5);
    const run = (seed: number) => explainer.explain(img, { method: 'saliency', smoothGrad: { samples: 20, noiseLevel: 0.2, seed } });
    const [[a], [b], [c]] = [await run(1), await run(1), await run(2)];
    expect(a!.map).toEqual(b!.map);
    expect(relError(a!.map, c!.map)).toBeGreaterThan(1e-4);
    expect(relError(a!.map, plain!.map)).toBeGreaterThan(1e-2);
  });

  it('rejects a class out of range, SmoothGrad for other methods, and a partial batch', async () => {
    await expect(explainer.explain(x, { method: 'rollout', classes: [10] })).rejects.toThrow('class 10 is not in 0…9');
    await expect(explainer.explain(x, { method: 'rollout', smoothGrad: { samples: 4 } })).rejects.toThrow('SmoothGrad applies to saliency');
    await expect(explainer.explain(x.subarray(0, 700), { method: 'rollout' })).rejects.toThrow('no whole batch of 1×28×28');
  });
});

describe('avg pooling without a class token', () => {
  it('reads the mean of the patch rows, so every block\'s attention map sums to one', async () => {
    const explainer = new Explainer(smallModel({ globalPool: 'avg', classToken: false }), { threads: 1 });
    const [a] = await explainer.explain(x.subarray(0, 784), { method: 'attention' });
    for (const t of a!.tiles) expect(t.map.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 5);
    const [r] = await explainer.explain(x.subarray(0, 784), { method: 'rollout' });
    expect(r!.map.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 5);
    await explainer.dispose();
  });
});
