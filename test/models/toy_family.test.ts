/**
 * The model and objective seams (issue #16): a model family and a training objective defined in
 * this test file alone — nothing in src/ names them — go through every command a ViT goes
 * through. The toy family is a two-layer MLP with a running-mean buffer (BatchNorm's contract:
 * batch statistics in training, the buffer updated by the step and used in eval and export) and
 * its own dropout noise input; the toy objective regresses the class index with a squared error
 * and keeps the checkpoint with the lowest evaluation error.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import * as ort from 'onnxruntime-node';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../src/ir/tensor.js';
import { add, gelu, mean, mul, reshape, slice, softmax, sub, sum } from '../../src/ops/index.js';
import { Linear } from '../../src/nn/layers.js';
import { ones, zeros } from '../../src/nn/init.js';
import { Random } from '../../src/random.js';
import { ImageModel, registerFamily, type CommonModelArgs, type ForwardOptions, type LayerGrouping, type NoiseInput } from '../../src/models/model.js';
import { registerModel } from '../../src/models/registry.js';
import { SupervisedObjective, registerObjective, type EvaluationContext, type Objective } from '../../src/train/objectives/index.js';
import { compileTrainStep } from '../../src/train/step.js';
import type { Batch } from '../../src/data/loader/batch_source.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { loadCheckpoint, readStateDict } from '../../src/checkpoint/checkpoint.js';
import { compileInference } from '../../src/models/executables.js';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { sliceDataset, type TensorDataset } from '../../src/data/datasets/dataset.js';
import { main } from '../../src/cli/main.js';
import { checkOnnxModels } from '../helpers/onnx_checker.js';

// ---- the toy family -------------------------------------------------------------------------

interface ToyConfig extends CommonModelArgs { hidden: number; momentum: number }
const toyDefaults: ToyConfig = { imgSize: 28, inChans: 1, numClasses: 10, dropPathRate: 0, dropRate: 0, seed: 0, hidden: 32, momentum: 0.1 };

class ToyMlp extends ImageModel {
  readonly family = 'toy';
  readonly config: ToyConfig;
  readonly fc1: Linear;
  readonly head: Linear;

  constructor(config: Partial<ToyConfig>) {
    super();
    const c = (this.config = { ...toyDefaults, ...config });
    const rng = new Random(c.seed);
    this.fc1 = this.addChild('fc1', new Linear(c.inChans * c.imgSize * c.imgSize, c.hidden, rng));
    this.addBuffer('running_mean', [c.hidden], zeros());
    this.addBuffer('scale', [c.hidden], ones(), { persistent: false });
    this.head = this.addChild('head', new Linear(c.hidden, c.numClasses, rng));
  }

  get numFeatures(): number {
    return this.config.hidden;
  }

  override noiseInputs(): NoiseInput[] {
    const { dropRate, hidden } = this.config;
    if (dropRate === 0) return [];
    const keep = 1 - dropRate;
    return [{ name: 'toy_drop', perSample: hidden, salt: 0x70e, draw: (rng, batch) => Float32Array.from({ length: batch * hidden }, () => (rng.uniform() < keep ? 1 / keep : 0)) }];
  }

  /** Images → hidden features centred by the batch mean (training) or the running mean (eval). */
  forwardFeatures(x: Tensor, { train, noise }: ForwardOptions = {}): Tensor {
    const g = x.graph;
    const c = this.config;
    const h = gelu(this.fc1.forward(reshape(x, [-1, c.inChans * c.imgSize * c.imgSize]))); // [B, hidden]
    return this.scoped(g, () => {
      let centre = this.b(g, 'running_mean');
      if (train) {
        const batchMean = mean(h, 0); // [hidden]
        this.updateBuffer(g, 'running_mean', add(mul(centre, 1 - c.momentum), mul(batchMean, c.momentum)));
        centre = batchMean;
      }
      const out = mul(sub(h, centre), this.b(g, 'scale'));
      return noise?.toy_drop ? mul(out, noise.toy_drop) : out;
    });
  }

  forwardHead(features: Tensor): { logits: Tensor; features: Tensor } {
    return { logits: this.head.forward(features), features };
  }

  layerGrouping(): LayerGrouping {
    return { blocks: 1, layerOf: (key) => (key.startsWith('fc1.') ? 1 : 2) };
  }

  headKeys(): string[] {
    return ['head.weight', 'head.bias'];
  }
}

registerFamily<ToyConfig>({
  name: 'toy',
  defaults: toyDefaults,
  kwargsSchema: z.object({ hidden: z.number().int().positive(), momentum: z.number().gt(0).lt(1) }).partial().strict(),
  create: (config) => new ToyMlp(config),
  tinyArgs: { hidden: 8 },
});
registerModel({
  name: 'toy_mlp_28', family: 'toy', config: { hidden: 32 },
  pretrained: { inputSize: [1, 28, 28], mean: [0.286], std: [0.353], interpolation: 'bilinear', cropPct: 1, numClasses: 10 },
  description: 'a test-only family',
});

// ---- the toy objective ----------------------------------------------------------------------

/** Regression of the class index: the expected class under softmax(logits), scaled to [0, 1], against label / (K − 1). */
class ClassIndexRegression implements Objective {
  readonly name = 'toy-regression';
  readonly best = { metric: 'eval_mse', mode: 'min' } as const;
  steps = 0;

  inputs() {
    return [{ name: 'y', shape: ['batch', 1] as const }];
  }

  private predict(logits: Tensor): Tensor {
    const k = logits.shape[1] as number;
    const g = logits.graph;
    const index = g.constant(Float32Array.from({ length: k }, (_, i) => i / (k - 1)), [1, k], 'float32');
    return sum(mul(softmax(logits, -1), index), 1, true); // [B, 1]
  }

  loss(model: ImageModel, x: Tensor, inputs: Record<string, Tensor>, opts: ForwardOptions): Tensor {
    const d = sub(this.predict(model.forward(x, opts).logits), inputs.y!);
    return mean(mul(d, d));
  }

  feeds(batch: Batch): Record<string, Float32Array> {
    this.steps++;
    const k = batch.targets.length / batch.size;
    return { x: batch.x, y: Float32Array.from(batch.labels.subarray(0, batch.size), (l) => l / (k - 1)) };
  }

  async evaluate({ inference, loader }: EvaluationContext) {
    let se = 0, n = 0;
    for (let i = 0; i < loader.numBatches; i++) {
      const b = await loader.batch(0, i);
      const logits = (await inference.run({ x: b.x })).logits!.data as Float32Array;
      const k = logits.length / b.size;
      for (let r = 0; r < b.size; r++) {
        const row = logits.subarray(r * k, (r + 1) * k);
        const m = Math.max(...row);
        const e = Array.from(row, (v) => Math.exp(v - m));
        const z = e.reduce((a, v) => a + v, 0);
        const pred = e.reduce((a, v, j) => a + (v / z) * (j / (k - 1)), 0);
        se += (pred - b.labels[r]! / (k - 1)) ** 2;
        n++;
      }
    }
    return { record: { eval_mse: se / n } };
  }

  stateTensors() {
    return { steps: Float32Array.of(this.steps) };
  }

  loadStateTensors(t: Record<string, Float32Array>) {
    this.steps = t.steps![0]!;
  }
}
registerObjective('toy-regression', () => new ClassIndexRegression());

// ---- the tests ------------------------------------------------------------------------------

const dir = mkdtempSync(join(tmpdir(), 'tessera-toy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let data: { train: TensorDataset; test: TensorDataset };
const images: string[] = [];
beforeAll(async () => {
  data = { train: sliceDataset(await loadBuiltinDataset('fashion-mnist', 'train'), 0, 1024), test: sliceDataset(await loadBuiltinDataset('fashion-mnist', 'test'), 0, 256) };
  for (let i = 0; i < 3; i++) {
    const path = join(dir, `image${i}.png`);
    writeFileSync(path, await sharp(Buffer.from(data.test.images.subarray(i * 784, (i + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer());
    images.push(path);
  }
});

/** Runs the CLI in this process (so it sees the toy registrations); returns the exit code and what it printed. */
async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const [log, error, write, writeOut] = [console.log, console.error, process.stderr.write.bind(process.stderr), process.stdout.write.bind(process.stdout)];
  console.log = (...a: unknown[]) => { out.push(`${a.join(' ')}\n`); };
  console.error = (...a: unknown[]) => { err.push(a.join(' ')); };
  process.stderr.write = ((chunk: string | Uint8Array) => { err.push(String(chunk)); return true; }) as typeof process.stderr.write;
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    out.push(String(chunk));
    const done = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
    done?.();
    return true;
  }) as typeof process.stdout.write;
  try {
    process.exitCode = undefined;
    const code = await main(args);
    return { code, out: out.join(''), err: err.join('') };
  } finally {
    [console.log, console.error, process.stderr.write, process.stdout.write] = [log, error, write, writeOut];
    process.exitCode = undefined;
  }
}

describe('a model family defined outside src/', () => {
  let checkpoint = '';

  it('trains: buffers are updated by the step, saved, and its noise input is drawn', async () => {
    const cfg = resolveTrainConfig({ model: 'toy_mlp_28', modelKwargs: { hidden: 24 }, epochs: 1, batchSize: 64, drop: 0.1, lr: 3e-3, warmupEpochs: 0, output: join(dir, 'run'), threads: 1 });
    const r = await train(cfg, { datasets: data });
    expect(r.status).toBe('completed');
    expect(r.model.family).toBe('toy');
    expect(r.metrics[0]!.eval_top1!).toBeGreaterThan(0.5);
    checkpoint = join(r.runDir, 'best.safetensors');
    const saved = readStateDict(checkpoint).state;
    // the persistent buffer is saved and moved away from its zero init; the non-persistent one is not saved
    expect(Object.keys(saved).sort()).toEqual(['fc1.bias', 'fc1.weight', 'head.bias', 'head.weight', 'running_mean']);
    expect(saved.running_mean!.data.some((v) => v !== 0)).toBe(true);
    const { model, meta } = loadCheckpoint(checkpoint);
    expect(meta.family).toBe('toy');
    expect((model.config as ToyConfig).hidden).toBe(24);
    // the step takes the model's declared noise input and returns the buffer's new value
    const step = await compileTrainStep(r.model, new SupervisedObjective(), { threads: 1 });
    expect(step.noise.map((n) => n.name)).toEqual(['toy_drop']);
    expect(step.bufferUpdates).toEqual(['running_mean']);
    expect(step.exe.inputs.map((i) => i.name)).toContain('toy_drop');
    await step.exe.dispose();
  }, 120_000);

  it('--model-kwargs is checked by the family\'s own schema', () => {
    expect(() => resolveTrainConfig({ model: 'toy_mlp_28', modelKwargs: { depth: 3 } }, 'invalid option', (k) => `--${k}`))
      .toThrow(/--modelKwargs unknown key depth; known keys: hidden, momentum/);
  });

  it('eval, predict, export (checker + ORT parity), explain (saliency) and attack run on it', async () => {
    const ev = await cli(['eval', '--checkpoint', checkpoint, '--limit', '200', '--json', '--threads', '1']);
    expect(ev.code, ev.err).toBe(0);
    const summary = JSON.parse(ev.out);
    expect(summary.count).toBe(200);
    expect(summary.top1).toBeGreaterThan(0.5);

    const pr = await cli(['predict', '--checkpoint', checkpoint, ...images, '--json', '--threads', '1']);
    expect(pr.code, pr.err).toBe(0);
    const predictions = JSON.parse(pr.out) as { logits: number[] }[];
    expect(predictions).toHaveLength(3);

    const onnxPath = join(dir, 'toy.onnx');
    const ex = await cli(['export', '--checkpoint', checkpoint, '--out', onnxPath, '--threads', '1']);
    expect(ex.code, ex.err).toBe(0);
    const bytes = readFileSync(onnxPath);
    expect(checkOnnxModels([['toy', bytes]])).toBe('ok');
    // ORT on the exported file gives tessera's logits for the same normalised input
    const { model, meta } = loadCheckpoint(checkpoint);
    const x = Float32Array.from(data.test.images.subarray(0, 4 * 784), (v) => (v / 255 - meta.mean[0]!) / meta.std[0]!);
    const exe = await compileInference(model, { threads: 1 });
    const ours = (await exe.run({ x })).logits!.data as Float32Array;
    await exe.dispose();
    const session = await ort.InferenceSession.create(bytes);
    const input = session.inputNames[0]!;
    const theirs = (await session.run({ [input]: new ort.Tensor('float32', x, [4, 1, 28, 28]) }))[session.outputNames[0]!]!.data as Float32Array;
    await session.release();
    let diff = 0;
    for (let i = 0; i < ours.length; i++) diff = Math.max(diff, Math.abs(ours[i]! - theirs[i]!));
    expect(diff).toBeLessThan(1e-4);
    // predict's logits are the eval graph's (running mean, not batch statistics)
    expect(predictions[0]!.logits.length).toBe(10);

    const out = join(dir, 'maps');
    const xp = await cli(['explain', '--checkpoint', checkpoint, images[0]!, '--method', 'saliency', '--out', out, '--threads', '1']);
    expect(xp.code, xp.err).toBe(0);
    expect(readdirSync(out).some((f) => f.endsWith('.png'))).toBe(true);
    const rollout = await cli(['explain', '--checkpoint', checkpoint, images[0]!, '--method', 'rollout', '--out', out]);
    expect(rollout.code).not.toBe(0);
    expect(rollout.err).toMatch(/toy.*(token grid|attention).*rollout/);

    const at = await cli(['attack', '--checkpoint', checkpoint, '--dataset', 'fashion-mnist', '--method', 'fgsm', '--eps', '0.1', '--limit', '100', '--json', '--threads', '1']);
    expect(at.code, at.err).toBe(0);
    const attacked = JSON.parse(at.out);
    expect(attacked.count).toBe(100);
    expect(attacked.cleanAccuracy).toBeGreaterThan(0.5);
    expect(attacked.robustAccuracy).toBeLessThan(attacked.cleanAccuracy);
  }, 240_000);
});

describe('a training objective defined outside src/', () => {
  it('trains with its own inputs, picks the best checkpoint by its own metric, and resumes its state', async () => {
    const base = { model: 'toy_mlp_28', method: 'toy-regression', epochs: 2, batchSize: 64, lr: 3e-3, warmupEpochs: 0, threads: 1, seed: 3 };
    const r = await train(resolveTrainConfig({ ...base, output: join(dir, 'regress') }), { datasets: data });
    expect(r.status).toBe('completed');
    const mse = r.metrics.map((m) => (m as unknown as Record<string, number>).eval_mse!);
    expect(mse).toHaveLength(2);
    // a constant prediction of 0.5 has a squared error of about 0.1 on uniform labels in [0, 1]
    expect(mse[1]!).toBeLessThan(0.08);
    expect(r.metrics.every((m) => m.eval_top1 === undefined)).toBe(true);
    const bestEpoch = mse.indexOf(Math.min(...mse)) + 1;
    const best = JSON.parse(readStateDictMeta(join(r.runDir, 'best.safetensors')));
    expect(best.epoch).toBe(bestEpoch);

    const controller = new AbortController();
    const killed = await train(resolveTrainConfig({ ...base, output: join(dir, 'regress-killed') }), {
      datasets: data, signal: controller.signal,
      events: { onStep: (s) => { if (s.epoch === 2 && s.batch === 3) controller.abort(); } },
    });
    expect(killed.status).toBe('interrupted');
    const resumed = await train(resolveTrainConfig({ ...base, output: join(dir, 'regress-killed') }), { datasets: data, resume: killed.runDir });
    expect(resumed.metrics.map((m) => (m as unknown as Record<string, number>).eval_mse)).toEqual(mse);
    expect(existsSync(join(resumed.runDir, 'best.safetensors'))).toBe(true);
  }, 240_000);

  it('an unknown method is one clear line', () => {
    return expect(train(resolveTrainConfig({ method: 'nope', epochs: 1, trainLimit: 64, evalLimit: 64, output: join(dir, 'nope') }), { datasets: data }))
      .rejects.toThrow(/unknown training method "nope"; known methods: supervised, adversarial, mae, dino, dynamicvit, clip, toy-regression/);
  });
});

function readStateDictMeta(path: string): string {
  const header = readFileSync(path);
  const n = Number(header.readBigUInt64LE(0));
  return JSON.parse(header.subarray(8, 8 + n).toString('utf8')).__metadata__.tessera;
}
