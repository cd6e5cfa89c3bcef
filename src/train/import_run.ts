/**
 * A timm training output (train.py's output/<experiment>/: args.yaml, summary.csv,
 * model_best.pth.tar or checkpoint-<epoch>.pth.tar) as a tessera run directory, so eval, explain,
 * attack, export and serve work on a model trained elsewhere (`tessera import-run`).
 *
 * The torch file is read by the restricted unpickler (src/checkpoint/torch_file.ts): nothing in it
 * is executed. The architecture comes from the weights' shapes plus the heads args.yaml names;
 * preprocessing (mean, std, crop_pct, interpolation) from args.yaml. The run directory holds
 * config.json, best.safetensors and last.safetensors, metrics.jsonl and report.html, committed
 * as one commit (run_dir.ts); it has no state.safetensors, so it cannot be resumed by tessera.
 *
 * Weights: timm's EMA (`state_dict_ema`) when the checkpoint has one, since train.py then
 * evaluates the EMA, so summary.csv's metrics and the choice of model_best are the EMA's; `ema:
 * false` takes the raw weights. Class names: see timm_class_names.ts. What is not carried is
 * said in `notCarried`.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { saveCheckpoint, type CheckpointMeta } from '../checkpoint/checkpoint.js';
import { foreignMeta, loadForeignCheckpoint } from '../checkpoint/layouts.js';
import { createFromConfig, listModels } from '../models/registry.js';
import type { Interpolation } from '../data/transforms/transform_config.js';
import { trainDefaults, type TrainConfig } from './config.js';
import { writeReport } from './report.js';
import { timmClassNames } from './timm_class_names.js';
import { claimNewRunDir, commitRun, createRunDir, runFiles, writeMetrics, type EpochRecord } from './run_dir.js';

export interface ImportRunOptions {
  output?: string;
  overwrite?: boolean;
  /** true: the EMA weights (an error without them); false: the raw ones; unset: the EMA's when present. */
  ema?: boolean;
  /** A names file (one per line, class 0 first) instead of the run's class map or dataset folders. */
  classNames?: string;
}

export interface ImportedRun {
  runDir: string;
  /** The torch file the weights came from. */
  checkpoint: string;
  /** Which of its state dicts. */
  weights: 'state_dict_ema' | 'state_dict';
  /** Where the class names came from; absent: they are the class numbers. */
  classNamesFrom?: string;
  /** What the run directory does not have of the timm run, in a phrase each. */
  notCarried: string[];
  model: string;
  epochs: number;
  best?: EpochRecord;
}

/** model_best.pth.tar, else the checkpoint of the highest epoch, else last.pth.tar. */
export function timmCheckpointIn(dir: string): string {
  if (existsSync(join(dir, 'model_best.pth.tar'))) return join(dir, 'model_best.pth.tar');
  const numbered = readdirSync(dir).map((n) => /^checkpoint-(\d+)\.pth\.tar$/.exec(n)).filter((m) => m !== null)
    .sort((a, b) => Number(b![1]) - Number(a![1]));
  if (numbered.length) return join(dir, numbered[0]![0]);
  if (existsSync(join(dir, 'last.pth.tar'))) return join(dir, 'last.pth.tar');
  throw new Error(`${dir}: no model_best.pth.tar, checkpoint-<epoch>.pth.tar or last.pth.tar; expected a timm train.py output directory`);
}

/** summary.csv rows as tessera epoch records (timm counts epochs from 0 and reports accuracy in percent). */
export function summaryRecords(csv: string, source: string): EpochRecord[] {
  const lines = csv.split(/\r?\n/).filter(Boolean);
  const header = lines.shift()?.split(',') ?? [];
  if (!header.includes('epoch')) throw new Error(`${source}: expected timm's summary.csv header (epoch,train_loss,…), got "${header.join(',')}"`);
  return lines.map((line, i) => {
    const cells = line.split(',');
    const row = Object.fromEntries(header.map((h, j) => [h, Number(cells[j])]));
    if (cells.length !== header.length || Object.values(row).some((v) => !Number.isFinite(v))) throw new Error(`${source}: line ${i + 2} is not ${header.length} numbers: "${line}"`);
    const pct = (v: number | undefined) => (v === undefined ? undefined : v / 100);
    const r: EpochRecord = { epoch: row.epoch! + 1, step: 0, lr: row.lr ?? NaN, train_loss: row.train_loss ?? NaN };
    if (row.eval_loss !== undefined) r.eval_loss = row.eval_loss;
    if (row.eval_top1 !== undefined) r.eval_top1 = pct(row.eval_top1);
    if (row.eval_top5 !== undefined) r.eval_top5 = pct(row.eval_top5);
    return r;
  });
}

type TimmArgs = Record<string, any>;

/** The heads the weights cannot say: --model-kwargs num_heads, or the named timm architecture's. */
function numHeadsOf(args: TimmArgs): number | undefined {
  const kw = args.model_kwargs as Record<string, unknown> | undefined;
  if (typeof kw?.num_heads === 'number') return kw.num_heads;
  const entry = listModels().find((e) => e.name === args.model);
  return entry ? (entry.config.numHeads as number | undefined) : undefined;
}

const list = (v: unknown): number[] | undefined => (Array.isArray(v) && v.every((x) => typeof x === 'number') ? v : typeof v === 'number' ? [v] : undefined);

/** The image size train.py's model was built at: the --model-kwargs img_size (how tessera's torchrun passes it), else --img-size / --input-size. */
function imgSizeOf(args: TimmArgs): number | undefined {
  const kw = args.model_kwargs as Record<string, unknown> | undefined;
  const v = kw?.img_size ?? args.img_size ?? (Array.isArray(args.input_size) ? args.input_size[1] : undefined);
  return typeof v === 'number' ? v : undefined;
}

/** The chosen state dict of a timm checkpoint: EMA as `ema` says (see the file comment). */
function readWeights(checkpoint: string, args: TimmArgs, ema: boolean | undefined): { fc: ReturnType<typeof loadForeignCheckpoint>; weights: ImportedRun['weights'] } {
  const hints = { numHeads: numHeadsOf(args) };
  if (ema !== false) {
    try {
      return { fc: loadForeignCheckpoint(checkpoint, { ...hints, stateDictKey: 'state_dict_ema' }), weights: 'state_dict_ema' };
    } catch (e) {
      if (ema === true || !/has no state_dict_ema state dict/.test((e as Error).message)) throw e;
    }
  }
  return { fc: loadForeignCheckpoint(checkpoint, hints), weights: 'state_dict' };
}

export async function importTimmRun(src: string, opts: ImportRunOptions = {}): Promise<ImportedRun> {
  const argsPath = join(src, 'args.yaml');
  if (!existsSync(argsPath)) throw new Error(`${src}: no args.yaml; expected a timm train.py output directory`);
  const args = parseYaml(readFileSync(argsPath, 'utf8')) as TimmArgs;
  if (typeof args !== 'object' || args === null || typeof args.model !== 'string') throw new Error(`${argsPath}: expected train.py's arguments with a model name`);
  const checkpoint = timmCheckpointIn(src);
  const { fc, weights } = readWeights(checkpoint, args, opts.ema);
  // the weights do not say a Swin's or MobileViT's image size (a Swin's windows depend on it)
  const imgSize = imgSizeOf(args);
  if (imgSize !== undefined) fc.config = { ...fc.config, imgSize };
  // nor a ConViT's pooling (a ViT's shows as fc_norm; a contradiction fails the strict load below)
  const pool = args.gp ?? (args.model_kwargs as Record<string, unknown> | undefined)?.global_pool;
  if ((pool === 'avg' || pool === 'token') && 'globalPool' in fc.config) fc.config = { ...fc.config, globalPool: pool };
  const base = foreignMeta(fc);
  const classes = timmClassNames(args, src, fc.config.numClasses, opts.classNames);
  const c = fc.config.inChans;
  const fit = (v: number[] | undefined) => (v && (v.length === c || v.length === 1) ? Array.from({ length: c }, (_, i) => v[v.length === 1 ? 0 : i]!) : undefined);
  const meta: CheckpointMeta = {
    ...base,
    mean: fit(list(args.mean)) ?? base.mean,
    std: fit(list(args.std)) ?? base.std,
    cropPct: typeof args.crop_pct === 'number' ? args.crop_pct : base.cropPct,
    interpolation: (['bilinear', 'bicubic', 'nearest'].includes(args.interpolation) ? args.interpolation : base.interpolation) as Interpolation,
    ...(classes.found ? { classNames: classes.found.names } : {}),
  };
  const model = createFromConfig(meta.family ?? 'vit', meta.config);
  model.loadStateDict(fc.stateDict, true);

  const summaryPath = join(src, 'summary.csv');
  const records = existsSync(summaryPath) ? summaryRecords(readFileSync(summaryPath, 'utf8'), summaryPath) : [];
  const best = records.reduce<EpochRecord | undefined>((b, r) => (r.eval_top1 !== undefined && (b?.eval_top1 === undefined || r.eval_top1 > b.eval_top1) ? r : b), undefined);
  const last = records[records.length - 1];
  const fromBest = checkpoint.endsWith('model_best.pth.tar');
  const epochOf = fromBest ? best ?? last : last;
  const metaWithEpoch: CheckpointMeta = { ...meta, ...(epochOf ? { epoch: epochOf.epoch, metrics: metricsOf(epochOf) } : {}) };

  const cfg = configOf(args, meta);
  const runDir = opts.output ?? claimNewRunDir(join('runs', `${meta.model}-imported-${new Date().toISOString().replace(/[:.]/g, '-')}`));
  const files = createRunDir(runDir, cfg, opts.overwrite);
  commitRun(files, { epoch: last?.epoch ?? 0, batch: 0 }, (stage) => {
    saveCheckpoint(stage.best, model, metaWithEpoch);
    // timm keeps one model in a best-only output; last is then the same weights
    saveCheckpoint(stage.last, model, metaWithEpoch);
    writeMetrics(stage, records);
  }, []);
  await writeReport(runDir, { runName: `${meta.model} (imported from timm ${src})`, model: meta.model, classNames: meta.classNames, metrics: records, config: cfg as unknown as Record<string, unknown> });
  const notCarried = [
    'the optimizer and LR scheduler state (tessera cannot resume the run; `tessera train --pretrained` continues from its weights)',
    ...(weights === 'state_dict_ema' ? ['the raw (non-EMA) weights (import with --no-ema for them)'] : []),
    ...(classes.found ? [] : [`class names (${[...classes.skipped, 'no --class-map or class folders found'].join('; ')}: pass --class-names FILE)`]),
    'args.yaml keys tessera has no option for (they stay in the timm directory)',
  ];
  return {
    runDir, checkpoint, weights, ...(classes.found ? { classNamesFrom: classes.found.from } : {}), notCarried,
    model: meta.model, epochs: records.length, ...(best ? { best } : {}),
  };
}

function metricsOf(r: EpochRecord): Record<string, number> {
  return Object.fromEntries(Object.entries(r).filter(([k, v]) => k !== 'epoch' && k !== 'step' && typeof v === 'number' && Number.isFinite(v))) as Record<string, number>;
}

/** config.json: the recipe timm ran, in tessera's keys where they have one (the rest of args.yaml stays in the timm directory). */
function configOf(args: TimmArgs, meta: CheckpointMeta): TrainConfig {
  const num = (k: string, d: number) => (typeof args[k] === 'number' ? args[k] : d);
  return {
    ...trainDefaults,
    model: meta.model,
    dataset: typeof args.data_dir === 'string' && args.data_dir ? args.data_dir : typeof args.dataset === 'string' && args.dataset ? args.dataset : trainDefaults.dataset,
    epochs: Math.max(1, num('epochs', trainDefaults.epochs)),
    batchSize: Math.max(1, num('batch_size', trainDefaults.batchSize)),
    lr: typeof args.lr === 'number' && args.lr > 0 ? args.lr : trainDefaults.lr,
    weightDecay: num('weight_decay', trainDefaults.weightDecay),
    smoothing: num('smoothing', trainDefaults.smoothing),
    dropPath: num('drop_path', trainDefaults.dropPath),
    mixup: num('mixup', trainDefaults.mixup),
    cutmix: num('cutmix', trainDefaults.cutmix),
    seed: num('seed', trainDefaults.seed),
    numClasses: meta.config.numClasses as number,
  };
}
