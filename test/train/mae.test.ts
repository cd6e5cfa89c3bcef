/**
 * MAE against scripts/mae_ref.py (a plain-PyTorch port of facebookresearch/mae's loss at commit
 * efb2a806): the official-layout state dict loads with no mapping; host masking from the same
 * noise gives exactly torch's argsort indices and mask; the loss (≤ 1e-5 relative), predictions
 * and every trainable parameter's gradient (≤ 1e-4 relative) match, with the token shuffle as
 * row-gather primitives (the default) and as the official gather/scatter formulation.
 */
import { describe, expect, it } from 'vitest';
import { MaskedAutoencoderViT, maskFromNoise, sincosPosEmbed2d, type MaeShuffle } from '../../src/models/mae.js';
import { MaeObjective, maskFeeds } from '../../src/train/objectives/mae.js';
import { compileTrainStep } from '../../src/train/step.js';
import { compile } from '../../src/runtime/compile.js';
import { readTensorFixture } from '../helpers/fixtures.js';
import { relError } from '../helpers/random.js';

const fx = readTensorFixture('mae_goldens.safetensors');
const golden = (k: string) => fx.get(k) ?? (() => { throw new Error(`fixture has no ${k}`); })();
const config = { imgSize: 8, patchSize: 2, inChans: 2, embedDim: 8, depth: 2, numHeads: 2, decoderEmbedDim: 8, decoderDepth: 1, decoderNumHeads: 2, mlpRatio: 2 };
const B = 3;
const N = 16;

function referenceModel(): MaskedAutoencoderViT {
  const model = new MaskedAutoencoderViT(config);
  const sd = Object.fromEntries([...fx].filter(([k]) => !/^(input|ref|grad)\./.test(k)));
  const { missing, unexpected } = model.loadStateDict(sd);
  expect({ missing, unexpected }).toEqual({ missing: [], unexpected: [] });
  return model;
}

describe('MAE against the PyTorch port of the official loss', () => {
  it('the fixed 2-D sin-cos tables equal get_2d_sincos_pos_embed', () => {
    expect(relError(sincosPosEmbed2d(8, 4), golden('pos_embed').data)).toBeLessThanOrEqual(1e-7);
    expect(relError(sincosPosEmbed2d(8, 4), golden('decoder_pos_embed').data)).toBeLessThanOrEqual(1e-7);
  });

  it('masking and unshuffling from the same noise are exactly torch argsort’s', () => {
    const m = maskFromNoise(golden('input.noise').data, B, N, 0.75);
    expect(m.keep).toBe(4);
    expect(Array.from(m.idsKeep, Number)).toEqual(Array.from(golden('ref.ids_keep').data));
    expect(Array.from(m.idsRestore, Number)).toEqual(Array.from(golden('ref.ids_restore').data));
    expect(Array.from(m.mask)).toEqual(Array.from(golden('ref.mask').data));
    // restoring the shuffled order gives back 0..N-1 for each sample
    const shuffle = golden('ref.ids_shuffle').data;
    for (let b = 0; b < B; b++) {
      const back = Array.from({ length: N }, (_, i) => shuffle[b * N + Number(m.idsRestore[b * N + i])]);
      expect(back).toEqual(Array.from({ length: N }, (_, i) => i));
    }
  });

  it.each<MaeShuffle>(['rows', 'gather'])('loss, predictions and every parameter gradient of one step (%s shuffle)', async (shuffle) => {
    const model = referenceModel();
    const objective = new MaeObjective(model, 0.75, 0);
    objective.shuffle = shuffle;
    const step = await compileTrainStep(model, objective, { threads: 1 });
    const x = golden('input.x').data;
    const feeds = { x: { data: x, shape: [B, 2, 8, 8] }, ...maskFeeds(model, golden('input.noise').data, B, 0.75) };
    const out = await step.exe.run(feeds);
    await step.exe.dispose();
    const loss = Number(out.loss!.data[0]);
    const ref = golden('ref.loss').data[0]!;
    expect(Math.abs(loss - ref) / Math.abs(ref)).toBeLessThanOrEqual(1e-5);
    expect(loss).toBeGreaterThan(0.5); // a real reconstruction error, not an empty mask
    // the buffers (fixed tables) get no gradient; every trainable parameter does
    expect(step.trainable).not.toContain('pos_embed');
    const off = step.trainable.map((k) => [k, relError(out[`grad/${k}`]!.data as Float32Array, golden(`grad.${k}`).data)] as const).filter(([, e]) => !(e <= 1e-4));
    expect(off).toEqual([]);
    expect(step.trainable.length).toBe([...fx.keys()].filter((k) => k.startsWith('grad.')).length);

    const pred = await compile((xi, keep, restore, mask) => model.maeForward(xi, { idsKeep: keep, idsRestore: restore, mask }, shuffle).pred,
      [{ name: 'x', shape: ['batch', 2, 8, 8] }, { name: 'ids_keep', shape: ['batch', 4], dtype: 'int64' }, { name: 'ids_restore', shape: ['batch', N], dtype: 'int64' }, { name: 'mask', shape: ['batch', N] }]);
    const p = await pred.run(feeds);
    await pred.dispose();
    expect(relError(p.output!.data as Float32Array, golden('ref.pred').data)).toBeLessThanOrEqual(1e-4);
  }, 60_000);
});
