/**
 * Smoke tests over the registry, sized so the suite stays fast as families arrive:
 * - every family, at its tiny config: it builds, emits ONNX that passes the checker, gives the
 *   right output shape without NaN, and every parameter receives a non-zero, finite gradient
 *   (weights moved slightly off their init, the loss reading the whole feature tensor);
 * - every registered entry: the reference's parameter count (timm's at 1,000 classes) where the
 *   entry states one, the traced output shape, and where it is cheap (small presets and models
 *   up to 10 M parameters) a forward and backward pass at batch 1–2 with the same checks.
 */
import { describe, expect, it } from 'vitest';
import { createModel, listModels } from '../../src/models/registry.js';
import { getFamily, listFamilies, type ImageModel } from '../../src/models/model.js';
import { trace, withGradients, compileTraced } from '../../src/runtime/compile.js';
import { emitModel } from '../../src/onnx/emit.js';
import * as ops from '../../src/ops/index.js';
import { checkOnnxModels } from '../helpers/onnx_checker.js';
import { rng } from '../helpers/random.js';
import { MaskedAutoencoderViT } from '../../src/models/mae.js';
import { MaeObjective, drawMaskNoise, maskFeeds } from '../../src/train/objectives/mae.js';
import { compileTrainStep } from '../../src/train/step.js';
import { Random } from '../../src/random.js';
import { DinoViT } from '../../src/models/dino.js';
import { DinoObjective, localCropSize } from '../../src/train/objectives/dino.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { ClipModel } from '../../src/models/clip.js';
import { ClipObjective } from '../../src/train/objectives/clip.js';
import { ClipTokenizer } from '../../src/text/clip_tokenizer.js';
import { fixturePath } from '../helpers/fixtures.js';

const emitted: [string, Uint8Array][] = [];

/**
 * Cross-entropy plus a random projection of the feature tensor, so parameters that reach the
 * features but not the pooled head input (CvT's last patch queries) count as connected too.
 */
function trainingGraph(model: ImageModel) {
  const [c, h, w] = model.inputShape;
  return withGradients(trace((x, y) => {
    const features = model.forwardFeatures(x);
    const { logits } = model.forwardHead(features);
    const rand = rng(11);
    const perSample = features.shape.slice(1) as number[];
    const direction = x.graph.constant(Float32Array.from({ length: perSample.reduce((a, b) => a * b, 1) }, () => rand() - 0.5), [1, ...perSample], 'float32');
    return { logits, loss: ops.add(ops.crossEntropy(logits, y), ops.mean(ops.mul(features, direction))) };
  }, [{ name: 'x', shape: ['batch', c, h, w] }, { name: 'y', shape: ['batch'], dtype: 'int64' }]), { wrt: 'params' });
}

/** Moves every parameter a little off its init: timm zero-initialises some norms (MobileViT's zero_init_last), which leaves the branch before them without a gradient at step 0. */
function perturbed<M extends ImageModel>(model: M): M {
  const rand = rng(5);
  for (const [, p] of model.namedParameters()) {
    const d = p.data;
    for (let i = 0; i < d.length; i++) d[i]! += 0.01 * (rand() - 0.5);
  }
  return model;
}

/** A pretraining model (headless MAE): one MAE step at mask ratio 0.75 gives every parameter, decoder included, a finite non-zero gradient. */
async function checkPretrainStep(model: MaskedAutoencoderViT, batch: number): Promise<void> {
  const [c, h, w] = model.inputShape;
  const step = await compileTrainStep(model, new MaeObjective(model, 0.75, 0), {});
  emitted.push([model.family, step.exe.onnx]);
  const rand = rng(7);
  const out = await step.exe.run({ x: { data: Float32Array.from({ length: batch * c * h * w }, () => rand() * 2 - 1), shape: [batch, c, h, w] }, ...maskFeeds(model, drawMaskNoise(new Random(1), batch, model.numPatches), batch, 0.75) });
  await step.exe.dispose();
  expect(Number.isFinite(Number(out.loss!.data[0]))).toBe(true);
  const noGradient = step.trainable.filter((k) => { const g = out[`grad/${k}`]!.data as Float32Array; return !g.every(Number.isFinite) || g.every((v) => v === 0); });
  expect(noGradient).toEqual([]);
  expect(step.trainable.length).toBe(model.namedParameters().length);
}

/** A DINO student: one step with 2 global and 1 local view gives every parameter (head included) a finite non-zero gradient. */
async function checkDinoStep(model: DinoViT, batch: number): Promise<void> {
  const [c, h, w] = model.inputShape;
  const cfg = resolveTrainConfig({ model: 'dino_vit_tiny_patch4_28', method: 'dino', localCrops: 1 });
  const objective = new DinoObjective(model, cfg, {}, { mean: [0], std: [1] });
  const step = await compileTrainStep(model, objective, {});
  emitted.push([model.family, step.exe.onnx]);
  const rand = rng(7);
  const l = localCropSize(model, cfg);
  const k = model.config.outDim;
  const images = (n: number) => Float32Array.from({ length: n }, () => rand() * 2 - 1);
  const probs = Float32Array.from({ length: batch * 2 * k }, () => rand() / (k / 2));
  const out = await step.exe.run({
    x: { data: images(batch * c * h * w), shape: [batch, c, h, w] }, global2: { data: images(batch * c * h * w), shape: [batch, c, h, w] },
    teacher_probs: { data: probs, shape: [batch, 2, k] }, locals: { data: images(batch * c * l * l), shape: [batch, 1, c, l, l] },
  });
  await step.exe.dispose();
  expect(Number.isFinite(Number(out.loss!.data[0]))).toBe(true);
  const noGradient = step.trainable.filter((key) => { const g = out[`grad/${key}`]!.data as Float32Array; return !g.every(Number.isFinite) || g.every((v) => v === 0); });
  expect(noGradient).toEqual([]);
  expect(step.trainable.length).toBe(model.namedParameters().length);
}

/** A whole CLIP (clip_contrastive): one contrastive step gives both towers and logit_scale a finite non-zero gradient. */
async function checkClipStep(model: ClipModel, batch: number): Promise<void> {
  const [c, h, w] = model.inputShape;
  const { contextLength: n, vocabSize } = model.config;
  const step = await compileTrainStep(model, new ClipObjective(model, ClipTokenizer.fromMergesFile(fixturePath('clip_tokenizer/bpe_toy_vocab.txt.gz')), new BigInt64Array(0), []), {});
  emitted.push([model.family, step.exe.onnx]);
  const rand = rng(7);
  // rows end at their largest id (the end-of-text token), at different places
  const ids = BigInt64Array.from({ length: batch * n }, (_, i) => BigInt(i % n === (i < n ? n - 1 : 2) ? vocabSize - 1 : 1 + (i % (vocabSize - 2))));
  const out = await step.exe.run({
    x: { data: Float32Array.from({ length: batch * c * h * w }, () => rand() * 2 - 1), shape: [batch, c, h, w] },
    text: { data: ids, shape: [batch, n] }, pair: { data: Float32Array.from({ length: batch * batch }, (_, i) => (i % (batch + 1) === 0 ? 1 : 0)), shape: [batch, batch] },
  });
  await step.exe.dispose();
  expect(Number.isFinite(Number(out.loss!.data[0]))).toBe(true);
  const noGradient = step.trainable.filter((k) => { const g = out[`grad/${k}`]!.data as Float32Array; return !g.every(Number.isFinite) || g.every((v) => v === 0); });
  expect(noGradient).toEqual([]);
  expect(step.trainable.length).toBe(model.namedParameters().length);
}

/** One forward and backward pass: right shape, finite logits, a finite non-zero gradient for every parameter. */
async function checkStep(name: string, model: ImageModel, batch: number): Promise<void> {
  if (model instanceof MaskedAutoencoderViT) return checkPretrainStep(model, batch);
  if (model instanceof DinoViT) return checkDinoStep(model, batch);
  if (model instanceof ClipModel) return checkClipStep(model, Math.max(batch, 2));
  const [c, h, w] = model.inputShape;
  const classes = model.numClasses;
  const traced = trainingGraph(model);
  emitted.push([name, emitModel(traced.graph, traced.outputs).bytes]);
  const exe = await compileTraced(traced);
  const rand = rng(7);
  const out = await exe.run({ x: Float32Array.from({ length: batch * c * h * w }, () => rand() * 2 - 1), y: Array.from({ length: batch }, (_, i) => i % classes) });
  await exe.dispose();
  expect(out.logits!.shape).toEqual([batch, classes]);
  expect((out.logits!.data as Float32Array).every(Number.isFinite)).toBe(true);
  const params = model.namedParameters();
  expect(params.length).toBe(Object.keys(out).filter((k) => k.startsWith('grad/')).length);
  const noGradient = params.filter(([key]) => {
    const g = out[`grad/${key}`]!.data as Float32Array;
    return !g.every(Number.isFinite) || g.every((v) => v === 0);
  }).map(([key]) => key);
  expect(noGradient).toEqual([]);
}

describe('every model family at its tiny size', () => {
  for (const family of listFamilies()) {
    it(family, async () => {
      const model = getFamily(family).create(getFamily(family).tinyArgs);
      expect(model.family).toBe(family);
      expect(model.numParams()).toBeLessThan(200_000);
      await checkStep(`tiny_${family}`, perturbed(model), 2);
    });
  }
});

describe('every registered model', () => {
  for (const entry of listModels()) {
    it(entry.name, async () => {
      const model = createModel(entry.name);
      expect(model.family).toBe(entry.family);
      if (entry.pretrained.numClasses === 1000) expect(entry.params, `${entry.name} states no reference parameter count`).toBeDefined();
      if (entry.params !== undefined) expect(model.numParams()).toBe(entry.params);
      // tracing touches no weights: the output shape of any size is cheap to check
      const [c, h, w] = model.inputShape;
      const logits = trace((x) => model.forward(x).logits, [{ name: 'x', shape: ['batch', c, h, w] }]).outputs.output!;
      expect(logits.shape.slice(1)).toEqual([model.numClasses || model.numFeatures]); // a headless model gives its pooled features
      if (model.numParams() <= 10e6) await checkStep(entry.name, perturbed(model), model.numParams() > 3e6 ? 1 : 2);
    });
  }

  it('emits training graphs that pass onnx.checker', () => {
    expect(emitted.length).toBeGreaterThan(listFamilies().length);
    expect(checkOnnxModels(emitted)).toBe('ok');
  });
});
