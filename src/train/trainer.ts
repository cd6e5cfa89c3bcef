/**
 * The training loop, as nanoGPT's train.py reads: build the model, the objective, the optimiser
 * and the schedule; then for each epoch, for each micro-batch: feeds → one compiled step →
 * accumulate gradients → at each optimiser step clip, update, EMA; at the epoch's end evaluate
 * and commit the run directory. Resume, EMA, accumulation, the objective and checkpointing each
 * live in their own file.
 */
import { trainingPreprocessing } from './dataset_stats.js';
import { resolve } from 'node:path';
import type { TensorDataset } from '../data/datasets/dataset.js';
import type { EvalTransform } from '../data/transforms/transform_config.js';
import { getModelEntry } from '../models/registry.js';
import type { ImageModel } from '../models/model.js';
import { compileInference } from '../models/executables.js';
import { AdamW, SGD, paramSpecs, type Optimizer } from '../optim/adamw.js';
import { makeSchedule } from '../optim/schedule.js';
import { Random, mixSeed } from '../random.js';
import type { Feed } from '../runtime/compile.js';
import { metaFor, type CheckpointMeta } from '../checkpoint/checkpoint.js';
import type { TrainConfig } from './config.js';
import { ModelEma } from './ema.js';
import type { ClassificationSummary } from './metrics.js';
import { compileTrainStep, type TrainExecutable } from './step.js';
import { claimNewRunDir, createRunDir, recoverRunDir, refuseExistingRun, runFiles, type CommitRecord, type EpochRecord, type Position, type RunFiles } from './run_dir.js';
import { writeReport } from './report.js';
import { evaluateWithLogits } from './evaluate.js';
import { evaluationMetrics, type EvaluationMetrics } from '../metrics/evaluation.js';
import { fitTemperature, type TemperatureFit } from '../metrics/temperature.js';
import { layerDecayScales, setTrainable } from './finetune.js';
import { isImageDataset, openTrainData, type TrainData } from './data.js';
import { createObjective, type Objective } from './objectives/index.js';
import { buildModel } from './build_model.js';
import { GradientAccumulator, clipGlobalNorm } from './accumulate.js';
import { RunCheckpointer, loadRunModel } from './run_state.js';

export { evaluate } from './evaluate.js';
export { clipGlobalNorm };

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
  /** Run directory to continue (it holds config.json and the last commit; with none yet, the run starts from the beginning). */
  resume?: string;
  /** Replace a run already in cfg.output (otherwise that is refused). */
  overwrite?: boolean;
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
  model: ImageModel;
}

export class TrainingDivergedError extends Error {
  override name = 'TrainingDivergedError';
}

/** runs/<model>-<dataset>-<timestamp>; a second run started in the same second gets `-2` (claimNewRunDir). */
export function defaultRunDir(cfg: TrainConfig): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  return resolve('runs', `${cfg.model}-${cfg.dataset}-${stamp}`);
}

function buildOptimizer(cfg: TrainConfig, model: ImageModel): Optimizer {
  const scales = cfg.layerDecay ? layerDecayScales(model, cfg.layerDecay) : undefined;
  const specs = paramSpecs(model.namedParameters(), cfg.weightDecay).map((s) => ({ ...s, lrScale: scales?.get(s.name) ?? 1 }));
  return cfg.opt === 'adamw' ? new AdamW(specs) : new SGD(specs, { momentum: cfg.momentum, nesterov: cfg.nesterov });
}

export async function train(cfg: TrainConfig, opts: TrainOptions = {}): Promise<TrainResult> {
  const log = opts.events?.log ?? (() => {});
  // before the data is loaded: a refusal should not wait for it
  if (!opts.resume && cfg.output && !opts.overwrite) refuseExistingRun(resolve(cfg.output));
  const entry = getModelEntry(cfg.model);
  const pre = entry.pretrained;
  if (cfg.imgSize !== undefined && !opts.datasets && !isImageDataset(cfg.dataset)) {
    throw new RangeError(`--img-size applies to image folders and manifests; ${cfg.dataset}'s images have a fixed size`);
  }
  const [, height, width] = pre.inputSize;
  const { channels, mean, std } = trainingPreprocessing(pre, cfg);
  const inputSize: [number, number, number] = cfg.imgSize ? [channels, cfg.imgSize, cfg.imgSize] : [channels, height, width];
  const transform: EvalTransform = { inputSize, cropPct: pre.cropPct, interpolation: pre.interpolation, mean, std };
  const data = await openTrainData(cfg, { transform }, log, opts.datasets);
  try {
    return await trainOn(cfg, opts, data, transform, log);
  } finally {
    await data.close();
  }
}

/** --adv selects adversarial training; otherwise --method names the objective. */
const methodOf = (cfg: TrainConfig) => (cfg.adv !== 'none' && cfg.method === 'supervised' ? 'adversarial' : cfg.method);

async function trainOn(cfg: TrainConfig, opts: TrainOptions, data: TrainData, transform: EvalTransform, log: (m: string) => void): Promise<TrainResult> {
  const numClasses = cfg.numClasses ?? data.classNames.length;
  if (numClasses < data.classNames.length) throw new RangeError(`--num-classes ${numClasses} is smaller than the ${data.classNames.length} classes of the data`);
  const classNames = [...data.classNames, ...Array.from({ length: numClasses - data.classNames.length }, (_, i) => String(data.classNames.length + i))];

  // the model is built and checked against the data before a new run directory is written, so a
  // bad --model-kwargs combination leaves nothing behind
  const resumed = opts.resume ? runFiles(resolve(opts.resume)) : undefined;
  // a run killed before its first commit has none: it starts from the beginning
  const committed = resumed && recoverRunDir(resumed);
  const { model, modelName } = resumed && committed
    ? { model: loadRunModel(resumed), modelName: cfg.model }
    : await buildModel(cfg, numClasses, data.imageShape, log, classNames);
  const [c, h, w] = model.inputShape;
  const [dc, dh, dw] = data.imageShape;
  if (c !== dc || h !== dh || w !== dw) {
    throw new RangeError(`model ${cfg.model} expects ${c}×${h}×${w} images but ${cfg.dataset} has ${dc}×${dh}×${dw}; pick a model for this input (tessera models), e.g. ${dc === 1 ? 'vit_tiny_patch4_28' : 'vit_tiny_patch4_32'}`);
  }
  if (model.numClasses !== classNames.length && model.numClasses !== 0) {
    throw new RangeError(`the checkpoint has ${model.numClasses} classes but ${cfg.dataset} has ${classNames.length}`);
  }
  const session = { threads: cfg.threads };
  const objective = await createObjective(methodOf(cfg), { model, cfg, transform, classes: classNames.length, classNames, classCounts: data.classCounts, session });
  const files: RunFiles = resumed ?? createRunDir(cfg.output ? resolve(cfg.output) : claimNewRunDir(defaultRunDir(cfg)), cfg, opts.overwrite);
  const meta: CheckpointMeta = { ...metaFor(modelName, model, classNames, { mean: [...transform.mean], std: [...transform.std], cropPct: transform.cropPct, interpolation: transform.interpolation }), ...data.checkpointMeta };

  const inference = await compileInference(model, session);
  const optimizer = buildOptimizer(cfg, model);
  const ema = cfg.modelEma ? new ModelEma(model, cfg.modelEmaDecay) : undefined;
  const checkpointer = new RunCheckpointer(files, model, meta, optimizer, objective, ema);
  const microPerEpoch = data.train.numBatches;
  const stepsPerEpoch = Math.ceil(microPerEpoch / cfg.gradAccumSteps);
  const schedule = makeSchedule({
    kind: cfg.sched, baseLr: cfg.lr, totalSteps: cfg.epochs * stepsPerEpoch, warmupSteps: Math.round(cfg.warmupEpochs * stepsPerEpoch),
    warmupLr: cfg.warmupLr, minLr: cfg.minLr, decaySteps: Math.max(1, Math.round(cfg.decayEpochs * stepsPerEpoch)), decayRate: cfg.decayRate,
  });
  if (cfg.warmupEpochs > 0 && cfg.warmupEpochs >= cfg.epochs) {
    log(`warning: --warmup-epochs ${cfg.warmupEpochs} covers all ${cfg.epochs} epoch${cfg.epochs > 1 ? 's' : ''}: the whole run is linear warm-up (from --warmup-lr ${cfg.warmupLr} to --lr ${cfg.lr}) and the ${cfg.sched} schedule never starts; give fewer (e.g. --warmup-epochs ${+(cfg.epochs / 5).toPrecision(2)})`);
  }

  let pos: Position = { epoch: 0, batch: 0, optimizerStep: 0, best: -Infinity };
  let metrics: EpochRecord[] = [];
  let saved: CommitRecord | undefined = committed;
  if (committed) {
    ({ pos, metrics } = checkpointer.resume());
    log(`resuming ${files.dir} at epoch ${pos.epoch + 1}, batch ${pos.batch} of ${microPerEpoch}`);
  } else if (resumed) {
    log(`${files.dir} has no saved epoch or interrupt yet: starting the run from the beginning`);
  }

  // compiled at the first epoch, and again whenever the trainable set changes
  let step: TrainExecutable | undefined;
  let accumulator: GradientAccumulator | undefined;
  const sizes = new Map(model.namedParameters().map(([k, p]) => [k, p.size]));
  const buffers = new Map(model.namedBuffers());
  const progress = new Progress(cfg, microPerEpoch, opts.events);
  let final: ClassificationSummary | undefined;

  try {
    for (let epoch = pos.epoch; epoch < cfg.epochs; epoch++) {
      const trainable = setTrainable(model, cfg.freeze, epoch, cfg.unfreezeSchedule);
      if (!step || trainable.join() !== step.trainable.join()) {
        // the gradient outputs depend on the trainable set
        if (step) log(`epoch ${epoch + 1}: now training ${trainable.length} of ${sizes.size} parameter tensors`);
        await step?.exe.dispose();
        step = await compileTrainStep(model, objective, session);
        accumulator = new GradientAccumulator(step.trainable, sizes);
      }
      objective.startEpoch?.(epoch, { epochs: cfg.epochs, stepsPerEpoch, microPerEpoch });
      const epochStart = performance.now();
      const resumingHere = epoch === pos.epoch;
      let lossSum = resumingHere ? pos.lossSum ?? 0 : 0;
      let lossCount = resumingHere ? pos.lossCount ?? 0 : 0;
      let imagesThisEpoch = 0;
      accumulator!.reset();
      for (let b = resumingHere ? pos.batch : 0; b < microPerEpoch; b++) {
        const batch = await data.train.batch(epoch, b);
        const micro = epoch * microPerEpoch + b;
        const feeds: Record<string, Feed> = { ...(await objective.feeds(batch, micro)) };
        feeds.x = { data: feeds.x as Float32Array, shape: [batch.size, c, h, w] };
        for (const n of step.noise) feeds[n.name] = n.draw(new Random(mixSeed(cfg.seed, micro, n.salt)), batch.size);
        model.beforeTrainStep(pos.optimizerStep);
        const out = await step.exe.run(feeds);
        data.train.release?.(batch);
        const loss = Number(out.loss!.data[0]);
        if (!Number.isFinite(loss)) {
          const kept = saved ? `${files.last} keeps the weights ${describeCommit(saved, microPerEpoch)}` : 'nothing was saved (the first epoch had not ended)';
          throw new TrainingDivergedError(`training diverged: the loss is ${loss} at epoch ${epoch + 1}, batch ${b + 1}; ${kept} (try a lower --lr or --clip-grad)`);
        }
        for (const k of step.bufferUpdates) buffers.get(k)!.data.set(out[`buffer/${k}`]!.data as Float32Array);
        // mean over the whole optimiser batch: weight each micro-batch by its share
        accumulator!.add(out, batch.size / cfg.batchSize / cfg.gradAccumSteps);
        lossSum += loss * batch.size;
        lossCount += batch.size;
        imagesThisEpoch += batch.size;
        const lr = schedule(pos.optimizerStep);
        if (accumulator!.count === cfg.gradAccumSteps || b === microPerEpoch - 1) {
          // a copy of the map: an objective may drop a tensor for this step (DINO's frozen last layer) without the accumulator losing it
          const grads = new Map(accumulator!.grads);
          if (cfg.clipGrad && !objective.clipsGradients) clipGlobalNorm(grads, cfg.clipGrad);
          objective.beforeOptimizerStep?.({ grads, step: pos.optimizerStep, epoch, optimizer });
          optimizer.step((k) => grads.get(k), lr);
          objective.afterOptimizerStep?.(pos.optimizerStep);
          ema?.update(model);
          pos = { ...pos, optimizerStep: pos.optimizerStep + 1 };
          accumulator!.reset();
          if (opts.signal?.aborted) {
            pos = { ...pos, epoch, batch: b + 1, lossSum, lossCount };
            checkpointer.saveResumable(pos);
            log(`interrupted at epoch ${epoch + 1}, batch ${b + 1} of ${microPerEpoch}: saved to ${files.dir}`);
            return { runDir: files.dir, status: 'interrupted', metrics, model };
          }
        }
        progress.step(epoch, b, batch.size, lossSum / lossCount, lr);
      }
      const seconds = (performance.now() - epochStart) / 1000;

      const evaluation = await objective.evaluate({ inference, loader: data.eval, classNames, ema, runDir: files.dir });
      const record: EpochRecord = {
        epoch: epoch + 1, step: pos.optimizerStep, lr: schedule(Math.max(0, pos.optimizerStep - 1)), train_loss: lossSum / Math.max(1, lossCount),
        ...evaluation.record,
        ...(isImageDataset(cfg.dataset) && !opts.datasets ? { skipped_files: data.skipped() } : {}),
        images_per_second: imagesThisEpoch / seconds, seconds,
      };
      metrics.push(record);
      final = evaluation.summary;
      const score = (record as unknown as Record<string, number>)[objective.best.metric];
      if (score === undefined) throw new Error(`objective ${objective.name} picks the best checkpoint by ${objective.best.metric}, which its evaluation did not report`);
      const improved = !Number.isFinite(pos.best) || (objective.best.mode === 'max' ? score > pos.best : score < pos.best);
      pos = { epoch: epoch + 1, batch: 0, optimizerStep: pos.optimizerStep, best: improved ? score : pos.best, lossSum: 0, lossCount: 0 };
      const summaryMetrics = final ? { top1: final.top1, top5: final.top5, loss: final.loss } : evaluation.record;
      // classification runs: temperature scaling of these weights (validation parts only), and at
      // the last epoch the detailed metrics of the report, both from the evaluation's own logits
      const calibrating = cfg.calibrate && final !== undefined && isImageDataset(cfg.dataset) && !opts.datasets;
      const outputs = evaluation.outputs ?? (final ? await evaluateWithLogits(inference, data.eval, classNames) : undefined);
      const detailed = outputs && (calibrating || epoch === cfg.epochs - 1) ? detailedMetrics(outputs, classNames, calibrating) : undefined;
      if (detailed?.fit) log(`epoch ${epoch + 1}: temperature ${detailed.fit.temperature.toFixed(4)} (validation NLL ${detailed.fit.nllBefore.toFixed(4)} → ${detailed.fit.nllAfter.toFixed(4)}, ECE ${detailed.metrics.calibration.eceBefore?.toFixed(4) ?? detailed.metrics.calibration.ece.toFixed(4)} → ${detailed.metrics.calibration.ece.toFixed(4)})`);
      const temperature = detailed?.fit ? { temperature: detailed.fit.temperature } : {};
      saved = checkpointer.commitEpoch(pos, metrics, { ...meta, epoch: epoch + 1, metrics: summaryMetrics, ...temperature }, improved);
      try {
        // an objective without a classification summary (MAE) has no confusion matrix to draw
        await writeReport(files.dir, {
          runName: files.dir, model: cfg.model, classNames: final ? classNames : [], metrics, confusion: final?.confusion ?? [], config: cfg,
          ...(detailed && epoch === cfg.epochs - 1 ? { evaluation: detailed.metrics } : {}),
          ...(evaluation.figures ? { figures: evaluation.figures } : {}),
        });
      } catch (e) {
        log(`warning: could not write the training report: ${(e as Error).message}`);
      }
      opts.events?.onEpoch?.(record, evaluation.summary);
    }
  } finally {
    // sessions are released whether the run completed, was interrupted or diverged
    await step?.exe.dispose();
    await inference.dispose();
    await objective.dispose?.();
  }
  return { runDir: files.dir, status: 'completed', metrics, final, model };
}

/** Logits of the eval images → temperature fit (when `calibrate`) and the metrics of src/metrics with it. */
function detailedMetrics({ logits, labels }: { logits: Float32Array; labels: Int32Array }, classNames: readonly string[], calibrate: boolean): { metrics: EvaluationMetrics; fit?: TemperatureFit } {
  const fit = calibrate && labels.length ? fitTemperature(logits, labels, classNames.length) : undefined;
  return { metrics: evaluationMetrics(logits, labels, classNames, fit ? { temperature: fit.temperature } : {}), ...(fit ? { fit } : {}) };
}

const describeCommit = (c: CommitRecord, batches: number) =>
  (c.batch ? `saved at epoch ${c.epoch + 1}, batch ${c.batch} of ${batches} (an interrupt)` : `of the end of epoch ${c.epoch}`);

/** Images per second and the run's ETA, reported after every micro-batch. */
class Progress {
  private readonly start = performance.now();
  private images = 0;

  constructor(private readonly cfg: TrainConfig, private readonly microPerEpoch: number, private readonly events?: TrainEvents) {}

  step(epoch: number, b: number, size: number, loss: number, lr: number): void {
    this.images += size;
    const rate = this.images / ((performance.now() - this.start) / 1000);
    const left = this.cfg.epochs * this.microPerEpoch - (epoch * this.microPerEpoch + b + 1);
    this.events?.onStep?.({
      epoch: epoch + 1, epochs: this.cfg.epochs, batch: b + 1, batches: this.microPerEpoch, loss, lr,
      imagesPerSecond: rate, etaSeconds: (left * this.cfg.batchSize) / Math.max(rate, 1e-9),
    });
  }
}
