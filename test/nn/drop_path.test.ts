/** Stochastic depth: host-drawn per-sample scales, and what they do inside the model. */
import { describe, expect, it } from 'vitest';
import { dropPathRates, dropPathScales } from '../../src/nn/drop_path.js';
import { VisionTransformer } from '../../src/models/vit.js';
import { compile } from '../../src/runtime/compile.js';
import { Random } from '../../src/random.js';

const small = { imgSize: 28, patchSize: 4, inChans: 1, numClasses: 10, embedDim: 48, depth: 2, numHeads: 3, seed: 5 };

describe('drop path', () => {
  it("uses timm's linearly increasing rates", () => {
    dropPathRates(0.1, 5).forEach((r, i) => expect(r).toBeCloseTo([0, 0.025, 0.05, 0.075, 0.1][i]!, 12));
  });

  it('drops each branch with its rate and rescales kept ones by 1/keep', () => {
    const scales = dropPathScales(new Random(1), 0.3, 2, 20000); // block 1 has rate 0.3
    const column = (k: number) => Array.from({ length: 20000 }, (_, b) => scales[b * 4 + k]!);
    expect(column(0).every((v) => v === 1)).toBe(true); // block 0: rate 0
    const kept = column(2).filter((v) => v !== 0);
    expect(Math.abs(kept.length / 20000 - 0.7)).toBeLessThan(0.015);
    expect(kept.every((v) => Math.abs(v - 1 / 0.7) < 1e-6)).toBe(true);
  });

  it('is reproducible from the seed', () => {
    expect(dropPathScales(new Random(9), 0.2, 3, 8)).toEqual(dropPathScales(new Random(9), 0.2, 3, 8));
  });

  it('scales of 1 change nothing; scales of 0 skip every block', async () => {
    const model = new VisionTransformer(small);
    const noBlocks = new VisionTransformer({ ...small, depth: 0 });
    noBlocks.loadStateDict(model.stateDict(), false);
    const exe = await compile((x, s) => ({
      plain: model.forward(x).logits,
      scaled: model.forward(x, { noise: { drop_path: s } }).logits,
    }), [{ name: 'x', shape: ['batch', 1, 28, 28] }, { name: 's', shape: ['batch', 4] }]);
    const headOnly = await compile((x) => noBlocks.forward(x).logits, [{ name: 'x', shape: ['batch', 1, 28, 28] }]);
    const x = Float32Array.from({ length: 2 * 784 }, (_, i) => Math.sin(i / 9));
    const ones = await exe.run({ x, s: new Float32Array(8).fill(1) });
    expect(Array.from(ones.scaled!.data as Float32Array)).toEqual(Array.from(ones.plain!.data as Float32Array));
    const zeros = await exe.run({ x, s: new Float32Array(8) });
    const a = zeros.scaled!.data as Float32Array;
    const b = (await headOnly.run({ x })).output!.data as Float32Array;
    await headOnly.dispose();
    expect(Math.max(...a.map((v, i) => Math.abs(v - b[i]!)))).toBeLessThan(1e-5);
    expect(Math.max(...a.map((v, i) => Math.abs(v - (ones.plain!.data as Float32Array)[i]!)))).toBeGreaterThan(1e-3);
    await exe.dispose();
  });
});
