/**
 * DINO against scripts/dino_ref.py (a plain-PyTorch port of facebookresearch/dino's loss at
 * commit 7c446df5): the MultiCropWrapper state dict loads with no mapping; the position table
 * interpolated for smaller crops, the teacher's raw outputs, the loss over every pair of
 * different views (≤ 1e-5 relative) and every trainable student gradient (≤ 1e-4 relative) match;
 * the centre update, the teacher's EMA step and the per-tensor clipping match to float32 rounding;
 * the pre-step hook clips, freezes the last layer in the first epoch only and sets DINO's
 * weight-decay groups on the cosine.
 */
import { describe, expect, it } from 'vitest';
import { DinoViT, dinoPosInterpolation } from '../../src/models/dino.js';
import { DinoObjective, clipPerTensor, cosineValue, teacherTargets, teacherTemperature, updateCenter, viewMajorToImageMajor } from '../../src/train/objectives/dino.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { compileTrainStep } from '../../src/train/step.js';
import { readTensorFixture } from '../helpers/fixtures.js';
import { relError } from '../helpers/random.js';
import { AdamW, paramSpecs } from '../../src/optim/adamw.js';

const fx = readTensorFixture('dino_goldens.safetensors');
const golden = (k: string) => fx.get(k) ?? (() => { throw new Error(`fixture has no ${k}`); })();
const config = { imgSize: 16, patchSize: 4, inChans: 2, embedDim: 8, depth: 2, numHeads: 2, mlpRatio: 2, outDim: 10, hiddenDim: 12, bottleneckDim: 6 };
const B = 3;
const K = 10;
const cfg = resolveTrainConfig({ model: 'dino_vit_tiny_patch4_28', method: 'dino', localCrops: 2, localCropSize: 8, momentumTeacher: 0.9 });

function referenceModel(): DinoViT {
  const model = new DinoViT(config);
  const sd = Object.fromEntries([...fx].filter(([k]) => /^(backbone|head)\./.test(k)));
  const { missing, unexpected } = model.loadStateDict(sd);
  expect({ missing, unexpected }).toEqual({ missing: [], unexpected: [] });
  return model;
}

function objectiveWithTeacher(model: DinoViT): DinoObjective {
  const objective = new DinoObjective(model, cfg, { threads: 1 }, { mean: [0, 0], std: [1, 1] });
  for (const [k, v] of objective.teacher) v.set(golden(`teacher.${k}`).data);
  return objective;
}

describe('DINO against the PyTorch port of the official computation', () => {
  it('interpolate_pos_encoding for 8-px crops of a 16-px model (scale factor (2 + 0.1) / 4)', () => {
    const model = referenceModel();
    const pos = model.namedParameters().find(([k]) => k === 'backbone.pos_embed')![1].data;
    const m = dinoPosInterpolation(4, 2); // [4, 16]
    const ref = golden('ref.pos_local').data; // [1, 1 + 4, 8]
    const ours = new Float32Array(4 * 8);
    for (let r = 0; r < 4; r++) for (let j = 0; j < 16; j++) for (let d = 0; d < 8; d++) ours[r * 8 + d]! += m[r * 16 + j]! * pos[(1 + j) * 8 + d]!;
    expect(relError(ours, ref.subarray(8))).toBeLessThanOrEqual(1e-6);
  });

  it('teacher outputs, loss and every trainable gradient of one step with 2 global and 2 local views', async () => {
    const model = referenceModel();
    const objective = objectiveWithTeacher(model);
    const raw = await objective.teacherOutputs(golden('input.global1').data, golden('input.global2').data, B);
    expect(relError(raw, golden('ref.teacher_out').data)).toBeLessThanOrEqual(1e-5);

    const probs = teacherTargets(golden('ref.teacher_out').data, K, golden('input.center').data, golden('input.temp').data[0]!);
    const step = await compileTrainStep(model, objective, { threads: 1 });
    const out = await step.exe.run({
      x: { data: golden('input.global1').data, shape: [B, 2, 16, 16] }, global2: { data: golden('input.global2').data, shape: [B, 2, 16, 16] },
      teacher_probs: { data: viewMajorToImageMajor(probs, B, 2, K), shape: [B, 2, K] }, locals: { data: golden('input.locals').data, shape: [B, 2, 2, 8, 8] },
    });
    await step.exe.dispose();
    await objective.dispose();
    const loss = Number(out.loss!.data[0]);
    const ref = golden('ref.loss').data[0]!;
    expect(Math.abs(loss - ref) / Math.abs(ref)).toBeLessThanOrEqual(1e-5);
    // weight_g is frozen at 1 (a buffer): no gradient; every other tensor of student has one
    expect(step.trainable).not.toContain('head.last_layer.weight_g');
    const off = step.trainable.map((k) => [k, relError(out[`grad/${k}`]!.data as Float32Array, golden(`grad.${k}`).data)] as const).filter(([, e]) => !(e <= 1e-4));
    expect(off).toEqual([]);
    expect(step.trainable.length).toBe([...fx.keys()].filter((k) => k.startsWith('grad.')).length);
  }, 60_000);

  it('student drop-path: all-ones scales give the reference loss; dropped branches change it', async () => {
    const model = new DinoViT({ ...config, dropPathRate: 0.2 });
    model.loadStateDict(Object.fromEntries([...fx].filter(([k]) => /^(backbone|head)\./.test(k))));
    const objective = objectiveWithTeacher(model);
    const step = await compileTrainStep(model, objective, { threads: 1 });
    expect(step.exe.inputs.map((i) => i.name)).toContain('drop_path');
    const probs = teacherTargets(golden('ref.teacher_out').data, K, golden('input.center').data, golden('input.temp').data[0]!);
    const feeds = (dropPath: Float32Array) => ({
      x: { data: golden('input.global1').data, shape: [B, 2, 16, 16] }, global2: { data: golden('input.global2').data, shape: [B, 2, 16, 16] },
      teacher_probs: { data: viewMajorToImageMajor(probs, B, 2, K), shape: [B, 2, K] }, locals: { data: golden('input.locals').data, shape: [B, 2, 2, 8, 8] },
      drop_path: { data: dropPath, shape: [B, 4, 4] },
    });
    const kept = Number((await step.exe.run(feeds(new Float32Array(B * 4 * 4).fill(1)))).loss!.data[0]);
    const ref = golden('ref.loss').data[0]!;
    expect(Math.abs(kept - ref) / ref).toBeLessThanOrEqual(1e-5);
    // the second local view of image 1 loses its last block's MLP branch: the loss moves
    const some = new Float32Array(B * 4 * 4).fill(1);
    some[(1 * 4 + 3) * 4 + 3] = 0;
    const dropped = Number((await step.exe.run(feeds(some))).loss!.data[0]);
    await step.exe.dispose();
    await objective.dispose();
    expect(Number.isFinite(dropped)).toBe(true);
    expect(Math.abs(dropped - ref)).toBeGreaterThan(1e-6);
  }, 60_000);

  it('centre update, teacher EMA step and per-tensor clipping', async () => {
    const center = Float32Array.from(golden('input.center').data);
    updateCenter(center, golden('ref.teacher_out').data);
    expect(relError(center, golden('ref.center_after').data)).toBeLessThanOrEqual(1e-6);

    const model = referenceModel();
    const objective = objectiveWithTeacher(model);
    objective.startEpoch(0, { epochs: 1, stepsPerEpoch: 10, microPerEpoch: 10 });
    objective.afterOptimizerStep(0); // momentum 0.9 at the first step of the cosine 0.9 → 1
    for (const [k, v] of objective.teacher) expect(relError(v, golden(`teacher_after.${k}`).data), k).toBeLessThanOrEqual(1e-6);

    const keys = [...fx.keys()].filter((k) => k.startsWith('grad.')).map((k) => k.slice(5));
    const grads = new Map(keys.map((k) => [k, Float32Array.from(golden(`grad.${k}`).data)]));
    clipPerTensor(grads, 0.05);
    const clippedSome = keys.some((k) => relError(golden(`clipped.${k}`).data, golden(`grad.${k}`).data) > 1e-3);
    expect(clippedSome).toBe(true);
    for (const k of keys) expect(relError(grads.get(k)!, golden(`clipped.${k}`).data), k).toBeLessThanOrEqual(1e-6);
  });

  it('before each optimiser step: per-tensor clipping, the last layer dropped in the first epoch only, DINO\'s weight-decay groups on the cosine', () => {
    const model = referenceModel();
    const c = resolveTrainConfig({ model: 'dino_vit_tiny_patch4_28', method: 'dino', weightDecay: 0.04, weightDecayEnd: 0.4, clipGrad: 0.05, freezeLastLayer: 1 });
    const objective = new DinoObjective(model, c, {}, { mean: [0, 0], std: [1, 1] });
    const optimizer = new AdamW(paramSpecs(model.namedParameters(), 0.04));
    const keys = [...fx.keys()].filter((k) => k.startsWith('grad.')).map((k) => k.slice(5));
    const fresh = () => new Map(keys.map((k) => [k, Float32Array.from(golden(`grad.${k}`).data)]));
    objective.startEpoch(0, { epochs: 2, stepsPerEpoch: 5, microPerEpoch: 5 });
    let grads = fresh();
    objective.beforeOptimizerStep({ grads, step: 0, epoch: 0, optimizer });
    expect([...grads.keys()].filter((k) => k.includes('last_layer'))).toEqual([]);
    expect(relError(grads.get('head.mlp.0.weight')!, golden('clipped.head.mlp.0.weight').data)).toBeLessThanOrEqual(1e-6);
    const wd = (name: string) => optimizer.specs.find((s) => s.name === name)!.weightDecay;
    expect([wd('backbone.blocks.0.attn.qkv.weight'), wd('backbone.cls_token'), wd('backbone.pos_embed'), wd('head.last_layer.weight_v')]).toEqual([0.04, 0.04, 0.04, 0.04].map((v) => expect.closeTo(v, 12)));
    expect([wd('backbone.blocks.0.attn.qkv.bias'), wd('backbone.norm.weight')]).toEqual([0, 0]);
    objective.startEpoch(1, { epochs: 2, stepsPerEpoch: 5, microPerEpoch: 5 });
    grads = fresh();
    objective.beforeOptimizerStep({ grads, step: 5, epoch: 1, optimizer });
    expect(grads.has('head.last_layer.weight_v')).toBe(true);
    expect(wd('backbone.blocks.0.attn.qkv.weight')).toBeCloseTo(0.22, 12); // halfway along 0.04 → 0.4
  });

  it('the schedules: cosine momentum 0.996 → 1, teacher temperature warm-up as np.linspace', () => {
    expect(cosineValue(0.996, 1, 100, 0)).toBeCloseTo(0.996, 12);
    expect(cosineValue(0.996, 1, 100, 50)).toBeCloseTo(0.998, 12);
    expect(cosineValue(0.04, 0.4, 100, 100)).toBeCloseTo(0.4, 12);
    const c = { warmupTeacherTemp: 0.04, teacherTemp: 0.07, warmupTeacherTempEpochs: 4 };
    // np.linspace(0.04, 0.07, 4) = 0.04, 0.05, 0.06, 0.07; then 0.07
    expect([0, 1, 2, 3, 4, 9].map((e) => teacherTemperature(c, e))).toEqual([0.04, 0.05, 0.06, 0.07, 0.07, 0.07].map((v, i) => (i < 4 ? expect.closeTo(v, 12) : v)));
  });
});
