/**
 * A `tessera train` recipe as a job for timm's train.py under torchrun (`tessera torchrun`).
 * Every key of the training schema has one rule in TIMM_RULES (a mapped type: a key without a
 * rule is a compile error). A rule gives timm's flags for the value, or says why timm has no
 * equivalent; those are reported, never dropped silently.
 *
 * Flag names and semantics were checked against timm's train.py at commit
 * aa4b5850c1543fa488abf260f18390eda46cf85d; scripts/make_timm_job_fixture.py runs that parser on
 * a generated command.
 */
import { basename } from 'node:path';
import { getModelEntry } from '../models/registry.js';
import { getFamily } from '../models/model.js';
import { timmArchitecture, type ModelConfig } from '../checkpoint/timm_architecture.js';
import { sizeAwareAugment } from '../data/transforms/transform_config.js';
import type { CheckpointMeta } from '../checkpoint/checkpoint.js';
import type { TrainConfig } from './config.js';

export interface TimmJobOptions {
  /** GPUs (processes) per node: torchrun --nproc-per-node. */
  nprocPerNode: number;
  /** Nodes: torchrun --nnodes. */
  nnodes: number;
  /** Where the converted --pretrained weights will be (the job directory's file). */
  pretrainedFile?: string;
  /** Class count of an image folder dataset (counted by the caller). */
  datasetClasses?: number;
  /** The --pretrained checkpoint's metadata: its architecture and preprocessing, as train starts from them. */
  pretrainedMeta?: Pick<CheckpointMeta, 'family' | 'config' | 'mean' | 'std' | 'cropPct' | 'interpolation'>;
}

export interface TimmJob {
  /** train.py's arguments, one flag with its values per entry. */
  args: string[][];
  /** The model's timm architecture and kwargs. */
  model: { name: string; kwargs: Record<string, unknown> };
  /** Schema keys with no timm equivalent for the value given, and why. */
  unsupported: { flag: string; reason: string }[];
  /** Values timm takes in another form (e.g. whole warmup epochs), said once. */
  notes: string[];
  globalBatch: number;
  /** The learning rate timm will compute from --lr-base (per optimiser step at the global batch). */
  lr: number;
}

interface Ctx {
  cfg: TrainConfig;
  o: TimmJobOptions;
  /** The full config of the model the job trains. */
  model: ModelConfig;
  notes: string[];
}

/** timm's flags for a value, or why it has none. */
type Translation = string[][] | { unsupported: string };
type Rule<K extends keyof TrainConfig> = (v: TrainConfig[K], c: Ctx) => Translation;

const none = (unsupported: string): Translation => ({ unsupported });
const num = (v: number) => String(v);
/** Keys whose value only matters when set: no value, nothing to carry. */
const ifSet = <T>(v: T | undefined, reason: string): Translation => (v === undefined ? [] : none(reason));
const onlyDefault = <T>(v: T, dflt: T, reason: string): Translation => (v === dflt ? [] : none(reason));

/** The built-in datasets as timm's torchvision wrappers (`torch/<name>`), with their class counts and channels. */
const TORCH_DATASETS: Record<string, { name: string; classes: number; mode: 'L' | 'RGB' }> = {
  'fashion-mnist': { name: 'torch/fashion_mnist', classes: 10, mode: 'L' },
  mnist: { name: 'torch/mnist', classes: 10, mode: 'L' },
  cifar10: { name: 'torch/cifar10', classes: 10, mode: 'RGB' },
  cifar100: { name: 'torch/cifar100', classes: 100, mode: 'RGB' },
};

export const TIMM_RULES: { [K in keyof TrainConfig]-?: Rule<K> } = {
  model: () => [], // with modelKwargs, imgSize, numClasses: timmModel()
  modelKwargs: () => [],
  maskRatio: () => [], // read by --method mae only, which the method rule reports
  // read by --method dino only, which the method rule reports
  localCrops: () => [], localCropSize: () => [], globalCropsScale: () => [], localCropsScale: () => [], teacherTemp: () => [],
  warmupTeacherTemp: () => [], warmupTeacherTempEpochs: () => [], momentumTeacher: () => [], weightDecayEnd: () => [], freezeLastLayer: () => [],
  stats: (v) => ifSet(v, 'the stats file is not read for timm: pass its mean/std as --mean/--std'),
  method: (v) => onlyDefault(v, 'supervised', `timm's train.py trains supervised classification only, not ${v}`),
  dataset: (v, c) => {
    const t = TORCH_DATASETS[v];
    const root = c.cfg.dataDir ?? 'data';
    if (t) return [['--data-dir', root], ['--dataset', t.name], ['--dataset-download'], ['--input-img-mode', t.mode], ['--train-split', 'train'], ['--val-split', 'test']];
    if (/\.(csv|jsonl)$/i.test(v)) return none('timm reads image folders (or its own dataset readers), not a CSV/JSONL manifest');
    return [['--data-dir', v], ['--train-split', 'train'], ['--val-split', 'val']];
  },
  dataDir: () => [], // with dataset
  output: (v, c) => [['--output', v ?? 'output'], ['--experiment', `${c.cfg.model}-${basename(c.cfg.dataset).replace(/[^\w.-]+/g, '_')}`]],
  epochs: (v) => [['--epochs', num(v)]],
  batchSize: (v) => [['--batch-size', num(v)]],
  evalBatchSize: (v) => [['--validation-batch-size', num(v)]],
  opt: (v, c) => [['--opt', v === 'adamw' ? 'adamw' : c.cfg.nesterov ? 'sgd' : 'momentum']], // timm's "sgd" is Nesterov SGD, "momentum" plain
  lr: () => [], // as --lr-base with the global batch: see lrFlags
  weightDecay: (v) => [['--weight-decay', num(v)]],
  momentum: (v) => [['--momentum', num(v)]],
  nesterov: () => [], // with opt
  sched: (v, c) => (v === 'constant' ? [['--sched', 'step'], ['--decay-rate', '1']] : v === 'step' ? [['--sched', 'step'], ['--decay-rate', num(c.cfg.decayRate)]] : [['--sched', 'cosine']]),
  warmupEpochs: (v, c) => {
    const whole = Math.ceil(v);
    if (whole !== v) c.notes.push(`--warmup-epochs ${v} becomes ${whole} (timm takes whole epochs)`);
    return [['--warmup-epochs', num(whole)]];
  },
  warmupLr: (v) => [['--warmup-lr', num(v)]],
  minLr: (v) => [['--min-lr', num(v)]],
  decayEpochs: (v) => [['--decay-epochs', num(v)]],
  decayRate: () => [], // with sched
  smoothing: (v) => [['--smoothing', num(v)]],
  loss: (v) => (v === 'ce' ? [] : none('timm\'s train.py has no focal loss')),
  focalGamma: () => [], // only read with --loss focal, which is reported
  classWeights: (v) => ifSet(v, 'timm\'s train.py has no class weights'),
  sampler: (v) => (v === 'random' ? [] : none('timm\'s train.py has no class-balanced sampler')),
  hflip: (v) => [['--hflip', num(v)]],
  cropPadding: (v) => (v === 0 ? [] : none('timm has no zero-padded random crop; its RandomResizedCrop is set by --scale/--ratio')),
  reprob: (v) => [['--reprob', num(v)]],
  remode: (v) => [['--remode', v]],
  dropPath: (v) => [['--drop-path', num(v)]],
  drop: (v) => [['--drop', num(v)]],
  clipGrad: (v) => (v === undefined ? [] : [['--clip-grad', num(v)], ['--clip-mode', 'norm']]),
  gradAccumSteps: (v) => [['--grad-accum-steps', num(v)]],
  modelEma: (v) => (v ? [['--model-ema']] : []),
  modelEmaDecay: (v, c) => (c.cfg.modelEma ? [['--model-ema-decay', num(v)]] : []),
  seed: (v) => [['--seed', num(v)]],
  trainLimit: (v) => ifSet(v, 'timm trains on the whole split'),
  evalLimit: (v) => ifSet(v, 'timm evaluates the whole split'),
  threads: (v) => ifSet(v, 'torchrun runs one process per GPU; CPU threads are OMP_NUM_THREADS'),
  classes: (v) => ifSet(v, 'timm has no class subset (a --class-map file renames classes, it does not drop them)'),
  pretrained: (v, c) => (v === undefined ? [] : [['--pretrained'], ['--pretrained-path', c.o.pretrainedFile ?? 'pretrained.safetensors']]),
  numClasses: () => [], // with model
  freeze: (v) => onlyDefault(v, 'none', "timm's train.py does not freeze the backbone"),
  unfreezeSchedule: (v) => ifSet(v, "timm's train.py has no gradual unfreezing"),
  layerDecay: (v) => (v === undefined ? [] : [['--layer-decay', num(v)]]),
  valSplit: (v) => ifSet(v, 'timm needs a validation folder; it does not hold out part of the training set'),
  imgSize: () => [], // with model
  workers: (v) => (v === undefined ? [] : [['--workers', num(v)]]),
  strict: (v) => onlyDefault(v, false, 'timm stops at an unreadable image in any case'),
  calibrate: () => [], // tessera's temperature fit on its own checkpoints; a timm run's checkpoints have none
  vflip: (v) => [['--vflip', num(v)]],
  aa: (v) => (v === undefined ? [] : [['--aa', v]]),
  trainInterpolation: (v) => [['--train-interpolation', v]],
  scale: (v, c) => [['--scale', ...(v ?? sizeAwareAugment(inputShape(c.model)).scale).map(num)]],
  ratio: (v, c) => [['--ratio', ...(v ?? sizeAwareAugment(inputShape(c.model)).ratio).map(num)]],
  colorJitter: (v, c) => {
    const j = v ?? sizeAwareAugment(inputShape(c.model)).colorJitter;
    return typeof j === 'number' ? [['--color-jitter', num(j)]] : none('timm takes one --color-jitter strength, not per-channel values');
  },
  mixup: (v) => [['--mixup', num(v)]],
  cutmix: (v) => [['--cutmix', num(v)]],
  cutmixMinmax: (v) => (v === undefined ? [] : [['--cutmix-minmax', ...v.map(num)]]),
  mixupProb: (v) => [['--mixup-prob', num(v)]],
  mixupSwitchProb: (v) => [['--mixup-switch-prob', num(v)]],
  mixupMode: (v) => [['--mixup-mode', v]],
  adv: (v) => onlyDefault(v, 'none', "timm's train.py has no adversarial training"),
  advEps: (v) => ifSet(v, "timm's train.py has no adversarial training"),
  advAlpha: (v) => ifSet(v, "timm's train.py has no adversarial training"),
  advSteps: (v) => onlyDefault(v, 7, "timm's train.py has no adversarial training"),
  advNorm: (v) => onlyDefault(v, 'linf', "timm's train.py has no adversarial training"),
  advEvalImages: (v, c) => (c.cfg.adv === 'none' ? [] : onlyDefault(v, 1000, "timm's train.py has no robust evaluation")),
};

const inputShape = (m: ModelConfig): [number, number, number] => [m.inChans, m.imgSize, m.imgSize];

/**
 * The model the recipe trains, as tessera's buildModel makes it: the registry entry + --model-kwargs
 * (or, for --pretrained, the checkpoint's family and architecture), fitted to the dataset.
 */
function modelConfigOf(cfg: TrainConfig, classes: number | undefined, pretrained: TimmJobOptions['pretrainedMeta']): { family: string; config: ModelConfig } {
  const entry = getModelEntry(cfg.model);
  const family = pretrained ? pretrained.family ?? 'vit' : entry.family;
  const ds = TORCH_DATASETS[cfg.dataset];
  return {
    family,
    config: {
      ...getFamily(family).defaults, ...(pretrained ? pretrained.config : entry.config), ...cfg.modelKwargs,
      ...(cfg.imgSize ? { imgSize: cfg.imgSize } : {}),
      ...(ds ? { inChans: ds.mode === 'L' ? 1 : 3 } : {}),
      numClasses: cfg.numClasses ?? classes ?? entry.config.numClasses ?? getFamily(family).defaults.numClasses,
    } as ModelConfig,
  };
}

/** A kwarg as timm's --model-kwargs reads it: ast.literal_eval (a list as a tuple), or the bare word as a string when that fails. */
const pyLiteral = (x: unknown): string => (typeof x === 'boolean' ? (x ? 'True' : 'False')
  : Array.isArray(x) ? `(${x.map(pyLiteral).join(',')}${x.length === 1 ? ',' : ''})` : String(x));

export function timmJob(cfg: TrainConfig, o: TimmJobOptions): TimmJob {
  const classes = TORCH_DATASETS[cfg.dataset]?.classes ?? o.datasetClasses;
  const { family, config: m } = modelConfigOf(cfg, classes, o.pretrainedMeta);
  const model = timmArchitecture(family, m, o.pretrainedMeta ? `--pretrained ${cfg.pretrained}` : `--model ${cfg.model}`);
  const pre = o.pretrainedMeta ?? getModelEntry(cfg.model).pretrained;
  const c: Ctx = { cfg, o, model: m, notes: [] };
  const kwargs = Object.entries(model.kwargs);
  const args: string[][] = [
    ['--model', model.name],
    ['--model-kwargs', ...kwargs.map(([k, x]) => `${k}=${pyLiteral(x)}`)],
    ...(model.globalPool ? [['--gp', model.globalPool]] : []),
    ['--num-classes', num(m.numClasses)],
    ['--in-chans', num(m.inChans)],
    ['--input-size', num(m.inChans), num(m.imgSize), num(m.imgSize)],
    ['--mean', ...pre.mean.map(num)],
    ['--std', ...pre.std.map(num)],
    ['--crop-pct', num(pre.cropPct)],
    ['--interpolation', pre.interpolation],
  ];
  // tessera's --lr is the peak LR at its batch (batch-size · grad-accum-steps, one process); timm
  // scales --lr-base linearly by the global batch over --lr-base-size
  const tesseraBatch = cfg.batchSize * cfg.gradAccumSteps;
  const globalBatch = tesseraBatch * o.nprocPerNode * o.nnodes;
  args.push(['--lr-base', num(cfg.lr)], ['--lr-base-size', num(tesseraBatch)], ['--lr-base-scale', 'linear'], ['--sched-on-updates']); // tessera steps its schedule per update
  // BatchNorm statistics are each GPU's own in timm's DDP unless asked; tessera trains in one process
  if (family === 'mobilevit' && o.nprocPerNode * o.nnodes > 1) c.notes.push("MobileViT's BatchNorm statistics are per GPU (timm's default); add --sync-bn to synchronise them");
  const unsupported: TimmJob['unsupported'] = [];
  for (const key of Object.keys(TIMM_RULES) as (keyof TrainConfig)[]) {
    const t = (TIMM_RULES[key] as Rule<typeof key>)(cfg[key], c);
    if (Array.isArray(t)) args.push(...t);
    else unsupported.push({ flag: `--${key.replace(/[A-Z]/g, (ch) => `-${ch.toLowerCase()}`)}`, reason: t.unsupported });
  }
  return { args, model, unsupported, notes: c.notes, globalBatch, lr: cfg.lr * globalBatch / tesseraBatch };
}

/** The one line naming what does not carry over (empty when everything does). */
export function unsupportedLine(job: TimmJob): string {
  return job.unsupported.length ? `not translated (no timm equivalent): ${job.unsupported.map((u) => `${u.flag} (${u.reason})`).join('; ')}` : '';
}

const shellWord = (w: string) => (/^[\w./=:,+-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`);

/** The launcher: torchrun over train.py with the job's arguments; node rank and master from the environment. */
export function launcherScript(job: TimmJob, o: TimmJobOptions): string {
  const lines = job.args.map((a) => `  ${a.map(shellWord).join(' ')}`);
  return [
    '#!/bin/sh',
    `# timm train.py job written by tessera: ${o.nnodes} node(s) × ${o.nprocPerNode} GPU(s), global batch ${job.globalBatch}, peak LR ${job.lr}`,
    '# run on every node with NODE_RANK=0..NNODES-1 and MASTER_ADDR set; TIMM_TRAIN points at timm\'s train.py',
    'set -eu',
    // torchrun's underscore spellings: the only ones before PyTorch 2.0, still accepted since
    'exec torchrun \\',
    `  --nnodes ${o.nnodes} --nproc_per_node ${o.nprocPerNode} \\`,
    '  --node_rank "${NODE_RANK:-0}" --master_addr "${MASTER_ADDR:-127.0.0.1}" --master_port "${MASTER_PORT:-29500}" \\',
    '  "${TIMM_TRAIN:-train.py}" \\',
    `${lines.join(' \\\n')} \\`,
    '  "$@"',
    '',
  ].join('\n');
}
