/**
 * The training run's data: a built-in tensor dataset (Fashion-MNIST, CIFAR…) or images on disk
 * (a class-folder tree, train/ + val/ folders, or a CSV/JSONL manifest), turned into the two
 * batch sources the trainer consumes. Both kinds honour the same keys: --classes, --train-limit,
 * --eval-limit, label smoothing and Mixup/CutMix; image datasets add decoding workers, timm's
 * augmentation flags and the model's eval transform.
 */
import { existsSync } from 'node:fs';
import type { BatchSource } from '../data/loader/batch_source.js';
import { isBuiltinDataset, loadBuiltinDataset, builtinDatasetNames } from '../data/datasets/builtin.js';
import type { TensorDataset } from '../data/datasets/dataset.js';
import { selectClasses, sliceDataset } from '../data/datasets/dataset.js';
import { describeDataset, openImageDataset, selectSampleClasses, subsetSamples } from '../data/datasets/folder_dataset.js';
import { createImageLoader, type ImageLoader } from '../data/loader/image_loader.js';
import { mixupSchema, type MixupOptions } from '../data/transforms/mixup.js';
import { TensorLoader } from '../data/loader/tensor_loader.js';
import { sizeAwareAugment, type EvalTransform } from '../data/transforms/transform_config.js';
import type { HeldOutSplit } from '../checkpoint/checkpoint.js';
import type { TrainConfig } from './config.js';

export interface TrainData {
  train: BatchSource;
  eval: BatchSource;
  /** The data's classes, in label order. */
  classNames: readonly string[];
  /** Training images per class, in label order (class weights "balanced"). */
  classCounts: readonly number[];
  /** [C, H, W] of the batches */
  imageShape: readonly [number, number, number];
  /** Unreadable files skipped so far (image datasets). */
  skipped(): number;
  /** For checkpoint metadata: the hold-out drawn from images on disk without a validation part. */
  checkpointMeta: { heldOut?: HeldOutSplit };
  close(): Promise<void>;
}

export interface DataPreprocessing {
  /** The model's eval transform; for image datasets inputSize is what the batches are resized to. */
  transform: EvalTransform;
}

/** True when `dataset` names images on disk rather than a built-in dataset. */
export function isImageDataset(dataset: string): boolean {
  return !isBuiltinDataset(dataset);
}

function mixupOf(cfg: TrainConfig): MixupOptions {
  return mixupSchema.parse({
    mixup: cfg.mixup, cutmix: cfg.cutmix, cutmixMinmax: cfg.cutmixMinmax, mixupProb: cfg.mixupProb,
    mixupSwitchProb: cfg.mixupSwitchProb, mixupMode: cfg.mixupMode,
  });
}

/** Opens the training and evaluation data of `cfg`; `tensors` replaces a built-in dataset (library use, tests). */
export async function openTrainData(cfg: TrainConfig, pre: DataPreprocessing, log: (m: string) => void,
  tensors?: { train: TensorDataset; test: TensorDataset }): Promise<TrainData> {
  if (tensors || !isImageDataset(cfg.dataset)) return openTensorData(cfg, pre, log, tensors);
  return openImageData(cfg, pre, log);
}

async function openTensorData(cfg: TrainConfig, pre: DataPreprocessing, log: (m: string) => void,
  given?: { train: TensorDataset; test: TensorDataset }): Promise<TrainData> {
  let data = given;
  if (!data) {
    const opts = { dataDir: cfg.dataDir };
    data = { train: await loadBuiltinDataset(cfg.dataset, 'train', opts), test: await loadBuiltinDataset(cfg.dataset, 'test', opts) };
    log(`dataset ${cfg.dataset}: ${data.train.length} training and ${data.test.length} test images of ${data.train.imageShape.join('×')}, ${data.train.classNames.length} classes`);
  }
  const [trainAll, testAll] = cfg.classes ? [selectClasses(data.train, cfg.classes), selectClasses(data.test, cfg.classes)] : [data.train, data.test];
  const trainSet = cfg.trainLimit ? sliceDataset(trainAll, 0, cfg.trainLimit) : trainAll;
  const testSet = cfg.evalLimit ? sliceDataset(testAll, 0, cfg.evalLimit) : testAll;
  const { mean, std } = pre.transform;
  return {
    train: new TensorLoader(trainSet, {
      batchSize: cfg.batchSize, shuffle: true, balanced: cfg.sampler === 'balanced', seed: cfg.seed, mean, std, smoothing: cfg.smoothing, mixup: mixupOf(cfg),
      augment: { cropPadding: cfg.cropPadding, hflip: cfg.hflip, reprob: cfg.reprob, remode: cfg.remode },
    }),
    eval: new TensorLoader(testSet, { batchSize: cfg.evalBatchSize, shuffle: false, seed: 0, mean, std }),
    classNames: trainSet.classNames,
    classCounts: countClasses(trainSet.labels, trainSet.classNames.length),
    imageShape: trainSet.imageShape,
    skipped: () => 0,
    checkpointMeta: {},
    close: async () => {},
  };
}

function countClasses(labels: ArrayLike<number>, classes: number): number[] {
  const counts = new Array<number>(classes).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]!]!++;
  return counts;
}

/** Self-supervised methods: they read no labels, so a flat folder of images is a dataset for them. */
const UNLABELLED_METHODS = new Set(['mae', 'dino']);

async function openImageData(cfg: TrainConfig, pre: DataPreprocessing, log: (m: string) => void): Promise<TrainData> {
  if (!existsSync(cfg.dataset)) {
    throw new Error(`dataset ${cfg.dataset} is neither a built-in dataset (${builtinDatasetNames().join(', ')}) nor an existing image folder or manifest`);
  }
  // a validation folder or split column wins over the hold-out, which only applies without one
  const ds = openImageDataset(cfg.dataset, { valSplit: cfg.valSplit ?? 0.1, seed: cfg.seed, unlabelled: UNLABELLED_METHODS.has(cfg.method) });
  if (!ds.val) throw new Error(`${cfg.dataset} has no validation folder or split column and --val-split is 0: training needs images to evaluate on (give --val-split, e.g. 0.1)`);
  if (ds.valSource === 'split' && cfg.valSplit === undefined) log(`${cfg.dataset} has no validation part: holding out 10% of each class (--val-split 0.1)`);
  if (ds.valSource !== 'split' && cfg.valSplit) log(`--val-split ${cfg.valSplit} ignored: ${cfg.dataset} has its own validation part (${ds.valSource})`);
  const heldOut = ds.valSource === 'split'
    ? { dataset: ds.source, valSplit: cfg.valSplit ?? 0.1, seed: cfg.seed, images: ds.train.length + ds.val.length } : undefined;
  log(`dataset ${describeDataset(ds)}`);
  let train = ds.train, val = ds.val!;
  if (cfg.classes) [train, val] = [selectSampleClasses(train, cfg.classes), selectSampleClasses(val, cfg.classes)];
  if (cfg.trainLimit) train = subsetSamples(train, cfg.trainLimit, cfg.seed);
  if (cfg.evalLimit) val = subsetSamples(val, cfg.evalLimit, cfg.seed);
  if (val.length === 0) throw new Error(`${val.name} has no images to evaluate on`);

  let skippedCount = 0;
  const onSkip = (path: string, message: string) => {
    skippedCount++;
    log(`skipping an unreadable image (${skippedCount} so far; --strict stops instead): ${message}`);
  };
  const chosen = sizeAwareAugment(pre.transform.inputSize);
  const transform = {
    ...pre.transform,
    scale: cfg.scale ?? chosen.scale, ratio: cfg.ratio ?? chosen.ratio, hflip: cfg.hflip, vflip: cfg.vflip, colorJitter: cfg.colorJitter ?? chosen.colorJitter,
    aa: cfg.aa, reprob: cfg.reprob, remode: cfg.remode, trainInterpolation: cfg.trainInterpolation,
  };
  log(describeAugment(transform, chosen.small && (cfg.scale === undefined || cfg.ratio === undefined || cfg.colorJitter === undefined)));
  const common = { seed: cfg.seed, transform, workers: cfg.workers, strict: cfg.strict, onSkip };
  const trainLoader: ImageLoader = createImageLoader(train, { ...common, batchSize: cfg.batchSize, shuffle: true, balanced: cfg.sampler === 'balanced', train: true, mixup: mixupOf(cfg), smoothing: cfg.smoothing });
  const evalLoader: ImageLoader = createImageLoader(val, { ...common, batchSize: cfg.evalBatchSize, shuffle: false, train: false });
  return {
    train: trainLoader,
    eval: evalLoader,
    classNames: train.classNames,
    classCounts: countClasses(train.labels, train.classNames.length),
    imageShape: trainLoader.imageShape,
    skipped: () => skippedCount,
    checkpointMeta: heldOut ? { heldOut } : {},
    close: async () => {
      await trainLoader.close();
      await evalLoader.close();
    },
  };
}

/** The training augmentation as one line, e.g. `augmentation: RandomResizedCrop scale 1,1 ratio 1,1, hflip 0.5, colour jitter 0 (…)`. */
function describeAugment(t: { inputSize: readonly number[]; scale: readonly number[]; ratio: readonly number[]; hflip: number; vflip: number;
  colorJitter: number | readonly number[]; aa?: string; reprob: number }, smallDefaults: boolean): string {
  const list = (v: number | readonly number[]) => (typeof v === 'number' ? [v] : v).map((x) => +x.toFixed(3)).join(',');
  const parts = [`RandomResizedCrop scale ${list(t.scale)} ratio ${list(t.ratio)}`, `hflip ${t.hflip}`];
  if (t.vflip) parts.push(`vflip ${t.vflip}`);
  // timm skips ColorJitter when RandAugment is on
  parts.push(t.aa ? `RandAugment ${t.aa}` : `colour jitter ${list(t.colorJitter)}`);
  if (t.reprob) parts.push(`random erasing ${t.reprob}`);
  const [, h, w] = t.inputSize;
  const why = smallDefaults
    ? ` (the model input ${h}×${w} is small: no zoom, aspect change or colour jitter by default; timm's photo defaults are --scale 0.08,1 --ratio 0.75,1.333 --color-jitter 0.4)`
    : '';
  return `augmentation: ${parts.join(', ')}${why}`;
}
