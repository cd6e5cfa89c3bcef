/**
 * compileInference with frozenWeights: the weights become part of the graph (no parameter
 * inputs; later changes to the module do not reach the executable), the logits are those of the
 * executable that is fed its weights, and a model over the size limit keeps them as inputs.
 */
import { describe, expect, it } from 'vitest';
import { CLIP_CONFIGS, ClipImageClassifier } from '../../src/models/clip.js';
import { compileInference, frozenWeights } from '../../src/models/executables.js';

const model = new ClipImageClassifier({ clip: CLIP_CONFIGS['clip_tiny']!, numClasses: 3, seed: 2 });
// clip_tiny's image tower (CLIP_PARAMS, from the reference port) plus a 32 → 3 head, float32
const bytes = (296_448 + 33 * 3) * 4;
const x = Float32Array.from({ length: 2 * 3 * 32 * 32 }, (_, i) => Math.cos(0.11 * i));

describe('frozenWeights', () => {
  it('keeps the weights in the graph up to the limit, as inputs above it', () => {
    expect(frozenWeights(model, bytes)).toBe('initializers');
    expect(frozenWeights(model, bytes - 1)).toBe('inputs');
    expect(frozenWeights(model)).toBe('initializers');
  });

  it('an executable with frozen weights has only the image input and gives the fed executable\'s logits', async () => {
    const frozen = await compileInference(model, { threads: 1, params: frozenWeights(model) });
    const fed = await compileInference(model, { threads: 1 });
    try {
      expect(frozen.inputs.map((i) => i.name)).toEqual(['x']);
      expect(fed.inputs.length).toBeGreaterThan(1);
      const a = (await frozen.run({ x })).logits!.data as Float32Array;
      const b = (await fed.run({ x })).logits!.data as Float32Array;
      expect(a.length).toBe(6);
      for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(1e-5);
      // a weight changed after compiling: the fed executable sees it, the frozen one does not
      const [, headBias] = model.namedParameters().find(([k]) => k === 'head.bias')!;
      headBias.data = Float32Array.of(1, 2, 3);
      const a2 = (await frozen.run({ x })).logits!.data as Float32Array;
      const b2 = (await fed.run({ x })).logits!.data as Float32Array;
      expect([...a2]).toEqual([...a]);
      expect(b2[0]! - b[0]!).toBeCloseTo(1, 4);
      expect(b2[5]! - b[5]!).toBeCloseTo(3, 4);
    } finally {
      await frozen.dispose();
      await fed.dispose();
    }
  }, 5_000);
});
