/**
 * The training loop: epochs of compiled training steps on host batches, an optimiser on the
 * host, evaluation every epoch, and a run directory that lets a killed run resume exactly.
 */
import { resolve } from 'node:path';
import type { TensorDataset } from '../data/datasets/dataset.js';
import type { BatchSource } from '../data/loader/batch_source.js';
import type { EvalTransform } from '../data/transforms/transform_config.js';
import { createModel, getModelEntry } from '../models/registry.js';
import { VisionTransformer, vitDefaults } from '../models/vit.js';
import { dropPathScales, dropoutScales } from '../nn/drop_path.js';
import { AdamW, SGD, paramSpecs, type Optimizer } from '../optim/adamw.js';
import { makeSchedule } from '../optim/schedule.js';
import { Random, mixSeed } from '../random.js';
import type { Executable } from '../runtime/compile.js';
import { loadCheckpoint, metaFor, saveCheckpoint, type CheckpointMeta } from '../checkpoint/checkpoint.js';
import { snake, type TrainConfig } from './config.js';
import { ModelEma } from './ema.js';
import { emptyTally, summarize, tallyBatch, type ClassificationSummary } from './metrics.js';
import { compileEval, compileTrainStep, type TrainExecutable } from './step.js';
import {
  createRunDir, loadState, readMetrics, runFiles, saveState, writeMetrics, type EpochRecord, type Position, type RunFiles,
} from './run_dir.js';
import { writeReport } from './report.js';
import { applyPretrained, layerDecayScales, loadPretrainedWeights, setTrainable } from './finetune.js';
import { isImageDataset, openTrainData, type TrainData } from './data.js';
import { AdversarialTrainer } from './adversarial.js';

export interface StepInfo {
  epoch: number;
  epochs: number;
  /** Micro-batches done in this epoch, of `batches`. */
  batch: number;
  batches: number;
  loss: number;
  lr: number;
  imagesPerSecond: number;
  /** Seconds left in the whole run at the current rate. */
  etaSeconds: number;
}

export interface TrainEvents {
  onStep?(s: StepInfo): void;
  onEpoch?(r: EpochRecord, evalSummary?: ClassificationSummary): void;
  log?(msg: string): void;
}

export interface TrainOptions {
  /** Run directory to continue (it holds config.json, last.safetensors, state.safetensors). */
  resume?: string;
  /** Aborting saves a resumable state after the current step and returns 'interrupted'. */
  signal?: AbortSignal;
  events?: TrainEvents;
  /** Datasets to use instead of loading cfg.dataset (library use, tests). */
  datasets?: { train: TensorDataset; test: TensorDataset };
}

export interface TrainResult {
  runDir: string;
  status: 'completed' | 'interrupted';
  metrics: EpochRecord[];
  final?: ClassificationSummary;
  model: VisionTransformer;
}

export class TrainingDivergedError extends Error {
  override name = 'TrainingDivergedError';
}

export function defaultRunDir(cfg: TrainConfig): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  return resolve('runs', `${cfg.model}-${cfg.dataset}-${stamp}`);
}

function buildOptimizer(cfg: TrainConfig, model: VisionTransformer): Optimizer {
  const scales = cfg.layerDecay ? layerDecayScales(model, cfg.layerDecay) : undefined;
  const specs = paramSpecs(model.namedParameters(), cfg.weightDecay).map((s) => ({ ...s, lrScale: scales?.get(s.name) ?? 1 }));
  return cfg.opt === 'adamw' ? new AdamW(specs) : new SGD(specs, { momentum: cfg.momentum, nesterov: cfg.nesterov });
}

/** Evaluates `exe` (params as inputs; `weights` overrides them, e.g. with the EMA) on a loader. */
export async function evaluate(exe: Executable, loader: BatchSource, classNames: readonly string[], weights?: Map<string, Float32Array>): Promise<ClassificationSummary> {
  const tally = emptyTally(classNames.length);
  const overrides = weights ? Object.fromEntries(weights) : {};
  for (let i = 0; i < loader.numBatches; i++) {
    const b = await loader.batch(0, i);
    // an image batch whose files were all unreadable
    if (b.size === 0) continue;
    const logits = (await exe.run({ ...overrides, x: b.x })).logits!.data as Float32Array;
    tallyBatch(tally, logits, b.labels, crossEntropySum(logits, b.labels, classNames.length));
    loader.release?.(b);
  }
  return summarize(tally, classNames);
}

function crossEntropySum(logits: Float32Array, labels: Int32Array, classes: number): number {
  let sum = 0;
  for (let b = 0; b < labels.length; b++) {
    const row = logits.subarray(b * classes, (b + 1) * classes);
    const m = Math.max(...row);
    let z = 0;
    for (const v of row) z += Math.exp(v - m);
    sum += m + Math.log(z) - row[labels[b]!]!;
  }
  return sum;
}

export async function train(cfg: TrainConfig, opts: TrainOptions = {}): Promise<TrainResult> {
  const log = opts.events?.log ?? (() => {});
  const entry = getModelEntry(cfg.model);
  const pre = entry.pretrained;
  if (cfg.imgSize !== undefined && !opts.datasets && !isImageDataset(cfg.dataset)) {
    throw new RangeError(`--img-size applies to image folders and manifests; ${cfg.dataset}'s images have a fixed size`);
  }
  const [channels, height, width] = pre.inputSize;
  const inputSize: [number, number, number] = cfg.imgSize ? [channels, cfg.imgSize, cfg.imgSize] : [channels, height, width];
  const transform: EvalTransform = { inputSize, cropPct: pre.cropPct, interpolation: pre.interpolation, mean: pre.mean, std: pre.std };
  const data = await openTrainData(cfg, { transform }, log, opts.datasets);
  try {
    return await trainOn(cfg, opts, data, transform, log);
  } finally {
    await data.close();
  }
}

async function trainOn(cfg: TrainConfig, opts: TrainOptions, data: TrainData, transform: EvalTransform, log: (m: string) => void): Promise<TrainResult> {
  const numClasses = cfg.numClasses ?? data.classNames.length;
  if (numClasses < data.classNames.length) throw new RangeError(`--num-classes ${numClasses} is smaller than the ${data.classNames.length} classes of the data`);
  const classNames = [...data.classNames, ...Array.from({ length: numClasses - data.classNames.length }, (_, i) => String(data.classNames.length + i))];

  // the model is built and checked against the data before a new run directory is written, so a
  // bad --model-kwargs combination leaves nothing behind
  const resumed = opts.resume ? runFiles(resolve(opts.resume)) : undefined;
  const { model, modelName } = resumed
    ? { model: loadCheckpoint(resumed.last).model, modelName: cfg.model }
    : await buildModel(cfg, numClasses, data.imageShape, log);
  const [c, h, w] = model.inputShape;
  const [dc, dh, dw] = data.imageShape;
  if (c !== dc || h !== dh || w !== dw) {
    throw new RangeError(`model ${cfg.model} expects ${c}×${h}×${w} images but ${cfg.dataset} has ${dc}×${dh}×${dw}; pick a model for this input (tessera models), e.g. ${dc === 1 ? 'vit_tiny_patch4_28' : 'vit_tiny_patch4_32'}`);
  }
  if (model.config.numClasses !== classNames.length) {
    throw new RangeError(`the checkpoint has ${model.config.numClasses} classes but ${cfg.dataset} has ${classNames.length}`);
  }
  const files: RunFiles = resumed ?? createRunDir(resolve(cfg.output ?? defaultRunDir(cfg)), cfg);
  const meta: CheckpointMeta = metaFor(modelName, model, classNames, { mean: [...transform.mean], std: [...transform.std], cropPct: transform.cropPct, interpolation: transform.interpolation });

  const session = { threads: cfg.threads };
  // compiled at the first epoch, and again whenever the trainable set changes
  let step: TrainExecutable | undefined;
  let trainable: string[] = [];
  const evalExe = await compileEval(model, session);
  const trainLoader = data.train;
  const evalLoader = data.eval;
  const adversary = cfg.adv !== 'none' ? await AdversarialTrainer.create(model, cfg, transform, session) : undefined;

  const optimizer = buildOptimizer(cfg, model);
  const ema = cfg.modelEma ? new ModelEma(model, cfg.modelEmaDecay) : undefined;
  const microPerEpoch = trainLoader.numBatches;
  const stepsPerEpoch = Math.ceil(microPerEpoch / cfg.gradAccumSteps);
  const schedule = makeSchedule({
    kind: cfg.sched, baseLr: cfg.lr, totalSteps: cfg.epochs * stepsPerEpoch, warmupSteps: Math.round(cfg.warmupEpochs * stepsPerEpoch),
    warmupLr: cfg.warmupLr, minLr: cfg.minLr, decaySteps: Math.max(1, Math.round(cfg.decayEpochs * stepsPerEpoch)), decayRate: cfg.decayRate,
  });

  let pos: Position = { epoch: 0, batch: 0, optimizerStep: 0, bestTop1: -1 };
  let metrics: EpochRecord[] = [];
  if (opts.resume) {
    const st = loadState(files);
    pos = st.pos;
    optimizer.loadStateTensors(st.tensors);
    optimizer.stepCount = pos.optimizerStep;
    if (ema) for (const [k, e] of ema.weights) e.set(st.tensors[`ema.${k}`] ?? fail(`state has no EMA weights for ${k}`));
    metrics = readMetrics(files).filter((r) => r.epoch <= pos.epoch);
    log(`resuming ${files.dir} at epoch ${pos.epoch + 1}, batch ${pos.batch} of ${microPerEpoch}`);
  }

  const saveResumable = (p: Position) => {
    saveCheckpoint(files.last, model, { ...meta, epoch: p.epoch });
    const tensors: Record<string, Float32Array> = { ...optimizer.stateTensors() };
    if (ema) for (const [k, e] of ema.weights) tensors[`ema.${k}`] = e;
    saveState(files, p, tensors);
  };

  const sizes = new Map(model.namedParameters().map(([k, p]) => [k, p.size]));
  let grads = new Map<string, Float32Array>();
  const [cc, hh, ww] = model.inputShape;
  const runStart = performance.now();
  let imagesSeen = 0;
  const totalMicro = cfg.epochs * microPerEpoch;
  let final: ClassificationSummary | undefined;

  try {
    for (let epoch = pos.epoch; epoch < cfg.epochs; epoch++) {
      const nowTrainable = setTrainable(model, cfg.freeze, epoch, cfg.unfreezeSchedule);
      if (!step || nowTrainable.join() !== trainable.join()) {
        // the gradient outputs depend on the trainable set
        if (step) log(`epoch ${epoch + 1}: now training ${nowTrainable.length} of ${sizes.size} parameter tensors`);
        trainable = nowTrainable;
        await step?.exe.dispose();
        step = await compileTrainStep(model, session);
        grads = new Map(step.trainable.map((k) => [k, new Float32Array(sizes.get(k)!)]));
      }
      const trainStep = step;
      const epochStart = performance.now();
      const resumingHere = epoch === pos.epoch;
      let lossSum = resumingHere ? pos.lossSum ?? 0 : 0;
      let lossCount = resumingHere ? pos.lossCount ?? 0 : 0;
      let imagesThisEpoch = 0;
      let accumulated = 0;
      for (let b = resumingHere ? pos.batch : 0; b < microPerEpoch; b++) {
        const batch = await trainLoader.batch(epoch, b);
        const micro = epoch * microPerEpoch + b;
        // adversarial training: the step sees the attacked images, made with the current weights
        const images = adversary ? await adversary.perturb(batch, micro) : batch.x;
        const feeds: Record<string, Float32Array | { data: Float32Array; shape: number[] }> = {
          x: { data: images, shape: [batch.size, cc, hh, ww] },
          targets: { data: batch.targets, shape: [batch.size, classNames.length] },
        };
        if (trainStep.usesDropPath) feeds.drop_path = dropPathScales(new Random(mixSeed(cfg.seed, micro, 0xd209)), cfg.dropPath, model.config.depth, batch.size);
        if (trainStep.usesHeadDrop) feeds.head_drop = dropoutScales(new Random(mixSeed(cfg.seed, micro, 0xd20b)), cfg.drop, batch.size * model.numFeatures);
        const out = await trainStep.exe.run(feeds);
        trainLoader.release?.(batch);
        const loss = Number(out.loss!.data[0]);
        if (!Number.isFinite(loss)) {
          throw new TrainingDivergedError(`training diverged: the loss is ${loss} at epoch ${epoch + 1}, batch ${b + 1}; ${files.last} keeps the last good weights (try a lower --lr or --clip-grad)`);
        }
        // mean over the whole optimiser batch: weight each micro-batch by its share
        const share = batch.size / cfg.batchSize / cfg.gradAccumSteps;
        for (const k of trainStep.trainable) {
          const acc = grads.get(k)!;
          const g = out[`grad/${k}`]!.data as Float32Array;
          if (accumulated === 0) for (let i = 0; i < acc.length; i++) acc[i] = g[i]! * share;
          else for (let i = 0; i < acc.length; i++) acc[i]! += g[i]! * share;
        }
        accumulated++;
        lossSum += loss * batch.size;
        lossCount += batch.size;
        imagesThisEpoch += batch.size;
        imagesSeen += batch.size;
        const lr = schedule(pos.optimizerStep);
        if (accumulated === cfg.gradAccumSteps || b === microPerEpoch - 1) {
          if (cfg.clipGrad) clipGlobalNorm(grads, cfg.clipGrad);
          optimizer.step((k) => grads.get(k), lr);
          ema?.update(model);
          pos = { ...pos, optimizerStep: pos.optimizerStep + 1 };
          accumulated = 0;
          if (opts.signal?.aborted) {
            pos = { ...pos, epoch, batch: b + 1, lossSum, lossCount };
            saveResumable(pos);
            log(`interrupted: state saved to ${files.dir}`);
            return { runDir: files.dir, status: 'interrupted', metrics, model };
          }
        }
        const elapsed = (performance.now() - runStart) / 1000;
        const rate = imagesSeen / elapsed;
        const doneMicro = epoch * microPerEpoch + b + 1;
        opts.events?.onStep?.({
          epoch: epoch + 1, epochs: cfg.epochs, batch: b + 1, batches: microPerEpoch, loss: lossSum / lossCount, lr,
          imagesPerSecond: rate, etaSeconds: ((totalMicro - doneMicro) * cfg.batchSize) / Math.max(rate, 1e-9),
        });
      }
      const trainSeconds = (performance.now() - epochStart) / 1000;

      const evalSummary = await evaluate(evalExe, evalLoader, classNames);
      const emaSummary = ema ? await evaluate(evalExe, evalLoader, classNames, ema.weights) : undefined;
      const robustTop1 = adversary && cfg.advEvalImages > 0 ? await adversary.robustTop1(evalLoader, cfg.advEvalImages) : undefined;
      const record: EpochRecord = {
        epoch: epoch + 1, step: pos.optimizerStep, lr: schedule(Math.max(0, pos.optimizerStep - 1)), train_loss: lossSum / Math.max(1, lossCount),
        eval_loss: evalSummary.loss, eval_top1: evalSummary.top1, eval_top5: evalSummary.top5,
        ...(emaSummary ? { ema_top1: emaSummary.top1 } : {}),
        ...(robustTop1 !== undefined ? { robust_top1: robustTop1 } : {}),
        ...(isImageDataset(cfg.dataset) && !opts.datasets ? { skipped_files: data.skipped() } : {}),
        images_per_second: imagesThisEpoch / trainSeconds, seconds: trainSeconds,
      };
      metrics.push(record);
      final = evalSummary;
      pos = { epoch: epoch + 1, batch: 0, optimizerStep: pos.optimizerStep, bestTop1: pos.bestTop1, lossSum: 0, lossCount: 0 };
      const epochMeta = { ...meta, epoch: epoch + 1, metrics: { top1: evalSummary.top1, top5: evalSummary.top5, loss: evalSummary.loss } };
      if (evalSummary.top1 > pos.bestTop1) {
        pos.bestTop1 = evalSummary.top1;
        saveCheckpoint(files.best, model, epochMeta);
      }
      saveCheckpoint(files.last, model, epochMeta);
      saveResumable(pos);
      writeMetrics(files, metrics);
      try {
        await writeReport(files.dir, { runName: files.dir, model: cfg.model, classNames, metrics, confusion: evalSummary.confusion, config: cfg });
      } catch (e) {
        log(`warning: could not write the training report: ${(e as Error).message}`);
      }
      opts.events?.onEpoch?.(record, evalSummary);
    }
  } finally {
    // sessions are released whether the run completed, was interrupted or diverged
    await step?.exe.dispose();
    await evalExe.dispose();
    await adversary?.dispose();
  }
  return { runDir: files.dir, status: 'completed', metrics, final, model };
}

/** A new model, or one initialised from --pretrained weights, for the data's image shape and classes. */
async function buildModel(cfg: TrainConfig, numClasses: number, [c, h]: readonly [number, number, number], log: (m: string) => void): Promise<{ model: VisionTransformer; modelName: string }> {
  const common = { ...cfg.modelKwargs, numClasses, dropPathRate: cfg.dropPath, dropRate: cfg.drop, seed: cfg.seed };
  if (!cfg.pretrained) return { model: checkStemKwargs(cfg, createModel(cfg.model, cfg.imgSize ? { ...common, imgSize: h } : common)), modelName: cfg.model };
  const weights = await loadPretrainedWeights(cfg.pretrained);
  const base = weights.meta?.config ?? { ...vitDefaults, ...getModelEntry(cfg.model).config };
  const model = checkStemKwargs(cfg, new VisionTransformer({ ...base, ...common, inChans: c, imgSize: h }));
  applyPretrained(model, weights, log);
  log(`initialised from ${cfg.pretrained}`);
  return { model, modelName: weights.meta?.model ?? cfg.model };
}

/** Stem settings on a model without a conv stem would be ignored silently: an error instead. */
function checkStemKwargs(cfg: TrainConfig, model: VisionTransformer): VisionTransformer {
  const given = (['stemWidth', 'stemStrides', 'stemNorm'] as const).filter((k) => cfg.modelKwargs?.[k] !== undefined).map(snake);
  if (given.length && model.config.embedLayer !== 'conv') {
    throw new RangeError(`--model-kwargs ${given.join(', ')} configure a convolutional stem, but ${cfg.model} has embed_layer=${model.config.embedLayer}; add embed_layer=conv or pick a conv-stem model`);
  }
  return model;
}

/** Scales gradients so their global L2 norm is at most `maxNorm` (torch.nn.utils.clip_grad_norm_). */
export function clipGlobalNorm(grads: Map<string, Float32Array>, maxNorm: number): number {
  let sq = 0;
  for (const g of grads.values()) for (let i = 0; i < g.length; i++) sq += g[i]! * g[i]!;
  const norm = Math.sqrt(sq);
  const scale = maxNorm / (norm + 1e-6);
  if (scale < 1) for (const g of grads.values()) for (let i = 0; i < g.length; i++) g[i]! *= scale;
  return norm;
}

const fail = (msg: string): never => { throw new Error(msg); };
