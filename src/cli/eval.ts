/** `tessera eval`: top-1/top-5, loss, per-class accuracy and the confusion matrix of a checkpoint on a dataset. */
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import type { HeldOutSplit } from '../checkpoint/checkpoint.js';
import { loadBuiltinDataset } from '../data/datasets/builtin.js';
import { sliceDataset } from '../data/datasets/dataset.js';
import { TensorLoader } from '../data/loader/tensor_loader.js';
import type { BatchSource } from '../data/loader/batch_source.js';
import { isBuiltinDataset } from '../data/datasets/builtin.js';
import { openImageDataset, subsetSamples, type ImageDataset, type ImageSamples } from '../data/datasets/folder_dataset.js';
import { createImageLoader } from '../data/loader/image_loader.js';
import type { EvalTransform } from '../data/transforms/transform_config.js';
import { evaluateWithLogits } from '../train/evaluate.js';
import { evaluationMetrics, type EvaluationMetrics } from '../metrics/evaluation.js';
import { writeEvaluationReport } from '../train/eval_report.js';
import type { ClassificationSummary } from '../train/metrics.js';
import { addPreprocessOptions, sharedOption, type PreprocessFlags, type SharedValues } from './common_options.js';
import { openForInference } from './load_for_inference.js';
import { addTemplateOption, openZeroShotForEval, type ZeroShotFlags } from './zero_shot.js';
import { nonNegativeInt, positiveInt, positiveNumber } from './parse.js';
import { UsageError, printTable } from './output.js';
import { runKnnEval } from './eval_knn.js';

export type EvalFlags = PreprocessFlags & Pick<SharedValues, 'dataDir' | 'threads' | 'json'> & {
  dataset: string; split: 'train' | 'test' | 'all'; batchSize: number; limit?: number; workers?: number; strict?: boolean;
} & ZeroShotFlags & { zeroShot?: boolean; knn?: boolean; knnK: number; knnTemperature: number }
  & { threshold: number; positiveClass?: string; calibrationBins: number; report?: string };

export function registerEvalCommand(program: Command): void {
  const cmd = program.command('eval').description('evaluate a checkpoint: top-1/top-5, loss, per-class accuracy, confusion matrix');
  addPreprocessOptions(cmd)
    .option('--dataset <name>', 'built-in dataset (fashion-mnist, mnist, cifar10, cifar100), an image folder or a CSV/JSONL manifest', 'fashion-mnist')
    .addOption(new Option('--split <split>', 'images on disk: test is the val/ folder or val rows; without them, the part training held out when the folder is the one the checkpoint was trained on (recorded in it), else every image; all is every image (train + val)')
      .choices(['train', 'test', 'all']).default('test'))
    .option('--workers <n>', 'image datasets: decoding threads (default: the core count)', nonNegativeInt('--workers'))
    .option('--strict', 'image datasets: stop at the first unreadable image instead of skipping it')
    .addOption(sharedOption('dataDir'))
    .addOption(sharedOption('batchSize', { default: 500 }))
    .option('--limit <n>', 'evaluate N images only: the first N of a built-in dataset, a seeded sample of N from images on disk', positiveInt('--limit'))
    .addOption(sharedOption('threads'))
    .addOption(sharedOption('json', { description: 'print JSON (accuracies as numbers in [0, 1])' }))
    .option('--zero-shot', 'classify with a CLIP checkpoint by text prompts of the dataset\'s class names (see --template)')
    .option('--knn', "weighted k-NN accuracy of the checkpoint's features instead (DINO's: train split as the bank, test split queried; built-in datasets)")
    .option('--knn-k <k>', 'neighbours of --knn', positiveInt('--knn-k'), 20)
    .option('--knn-temperature <t>', 'vote temperature of --knn: weights exp(similarity / T)', positiveNumber('--knn-temperature'), 0.07)
    .option('--threshold <p>', "binary tasks: sensitivity and specificity with the positive class predicted when its probability is ≥ p", probability('--threshold'), 0.5)
    .option('--positive-class <name>', 'binary tasks: the positive class, by name or index (default: the second class, index 1)')
    .option('--calibration-bins <n>', 'equal-width confidence bins of the expected calibration error and the reliability diagram', positiveInt('--calibration-bins'), 15)
    .option('--report <dir>', 'also write DIR/eval.html with the metrics and ROC, precision-recall and reliability charts (PNGs beside it)');
  addTemplateOption(cmd)
    .action(async (f: EvalFlags) => {
      if (f.template && !f.zeroShot) throw new UsageError('--template is for --zero-shot');
      if (f.knn && f.zeroShot) throw new UsageError('--knn and --zero-shot do not go together');
      if (f.knn) return runKnnEval({ ...f, checkpoint: (f as { checkpoint: string }).checkpoint });
      if (f.split === 'all' && isBuiltinDataset(f.dataset)) throw new UsageError(`--split all is for images on disk; ${f.dataset} has a train and a test split`);
      // raw logits: the metrics apply the temperature themselves and report the ECE without it too
      const opened = f.zeroShot ? await openZeroShotForEval(f, f.threads) : await openForInference(f, f.threads, { rawLogits: true, frozen: true });
      const { exe, classNames, transform, heldOut, close } = opened;
      const temperature = 'temperature' in opened ? opened.temperature : undefined;
      try {
        if (f.positiveClass !== undefined && classNames.length !== 2) throw new UsageError(`--positive-class is for binary tasks; ${f.checkpoint} has ${classNames.length} classes`);
        const positiveClass = f.positiveClass === undefined ? 1 : classIndex(f.positiveClass, classNames);
        const source = isBuiltinDataset(f.dataset) ? await builtinSource(f, transform, classNames) : imageSource(f, transform, classNames, heldOut);
        let scored;
        try {
          scored = await evaluateWithLogits(exe, source.loader, classNames);
        } finally {
          await source.loader.close?.();
        }
        const metrics = evaluationMetrics(scored.logits, scored.labels, classNames, { temperature, threshold: f.threshold, positiveClass, calibrationBins: f.calibrationBins });
        // top-1/top-5/loss stay the network's own (as training records them); metrics.calibration.nll is the loss with the temperature
        const summary = scored.summary;
        const skipped = source.skipped();
        const part = source.part ? { part: source.part } : {};
        const { curves: _curves, ...withoutCurves } = metrics;
        if (f.json) console.log(JSON.stringify({ checkpoint: f.checkpoint, dataset: f.dataset, split: f.split, ...part, ...(skipped ? { skippedFiles: skipped } : {}), ...summary, metrics: withoutCurves }));
        else printSummary(summary, skipped, metrics);
        if (f.report) {
          const page = await writeEvaluationReport(f.report, `${f.checkpoint} on ${source.part ?? `${f.dataset} (${f.split})`}`, [
            ['Checkpoint', f.checkpoint], ['Dataset', source.part ?? `${f.dataset} (${f.split} split)`], ['Images', String(summary.count)],
            ['Top-1', (100 * summary.top1).toFixed(2) + '%'], ['Top-5', (100 * summary.top5).toFixed(2) + '%'], ['Loss', summary.loss.toFixed(4)],
          ], metrics);
          process.stderr.write(`wrote ${page}\n`);
        }
      } finally {
        await close();
      }
    });
}

export interface EvalSource {
  loader: BatchSource;
  skipped(): number;
  /** Images on disk: which of them were scored, e.g. "/data/pets (val split 10%)". */
  part?: string;
}

export async function builtinSource(f: EvalFlags, transform: EvalTransform, classNames: readonly string[]): Promise<EvalSource> {
  let ds = await loadBuiltinDataset(f.dataset, f.split === 'train' ? 'train' : 'test', { dataDir: f.dataDir });
  if (f.limit) ds = sliceDataset(ds, 0, f.limit);
  const [c, h, w] = transform.inputSize;
  if (ds.imageShape.join() !== [c, h, w].join()) {
    throw new Error(`${f.checkpoint} expects ${c}×${h}×${w} images but ${f.dataset} has ${ds.imageShape.join('×')}`);
  }
  checkClasses(f.checkpoint, classNames, f.dataset, ds.classNames);
  return { loader: new TensorLoader(ds, { batchSize: f.batchSize, shuffle: false, seed: 0, mean: transform.mean, std: transform.std }), skipped: () => 0 };
}

/**
 * Images on disk, resized and centre-cropped with the model's eval transform; class folders must
 * be the checkpoint's classes. Without a validation part, the folder the checkpoint was trained on
 * is split again as training split it, so `test` scores only images the model never saw.
 */
export function imageSource(f: EvalFlags, transform: EvalTransform, classNames: readonly string[], heldOut: HeldOutSplit | undefined): EvalSource {
  const namesKnown = !classNames.every((n, i) => n === String(i));
  const fixed = namesKnown ? { classNames } : {};
  let ds = openImageDataset(f.dataset, fixed);
  if (!namesKnown) checkClasses(f.checkpoint, classNames, f.dataset, ds.classNames);
  const split = ds.val ? undefined : splitOfTraining(ds, heldOut);
  if (split && f.split !== 'all') ds = openImageDataset(f.dataset, { ...fixed, valSplit: split.valSplit, seed: split.seed });
  const whole = f.split === 'all' ? everyImage(ds) : f.split === 'train' || !ds.val ? ds.train : ds.val;
  if (f.split === 'test' && split) {
    process.stderr.write(`scoring the ${whole.length} images training held out of ${f.dataset} (val split ${split.valSplit}, seed ${split.seed}, as ${f.checkpoint} records); --split all scores all ${split.images}\n`);
  } else if (f.split === 'test' && !ds.val) {
    process.stderr.write(`${f.dataset} has no validation part and ${f.checkpoint} records no hold-out of it: scoring all ${whole.length} images\n`);
  }
  // class folders are sorted by class: a prefix would be one class, so take a seeded subset (the
  // run's seed for its held-out part: --limit N then picks the images --eval-limit N did)
  const part = f.limit ? subsetSamples(whole, f.limit, split?.seed ?? 0) : whole;
  let skipped = 0;
  const loader = createImageLoader(part, {
    batchSize: f.batchSize, shuffle: false, seed: 0, train: false, transform, workers: f.workers, strict: f.strict,
    onSkip: (_, message) => {
      skipped++;
      process.stderr.write(`skipping an unreadable image: ${message}\n`);
    },
  });
  return { loader, skipped: () => skipped, part: part.name };
}

/** The checkpoint's hold-out when `ds` is the folder (or manifest) it was split from. */
function splitOfTraining(ds: ImageDataset, heldOut: HeldOutSplit | undefined): HeldOutSplit | undefined {
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(p);
    }
  };
  if (!heldOut || real(heldOut.dataset) !== real(ds.source)) return undefined;
  if (ds.train.length !== heldOut.images) {
    process.stderr.write(`warning: ${ds.source} has ${ds.train.length} images but training split ${heldOut.images}: the held-out part is not the run's (it may hold training images)\n`);
  }
  return heldOut;
}

function everyImage(ds: ImageDataset): ImageSamples {
  const { train, val } = ds;
  if (!val) return train;
  return {
    name: `${ds.source} (train and val)`, paths: [...train.paths, ...val.paths], labels: Int32Array.from([...train.labels, ...val.labels]),
    classNames: train.classNames, length: train.length + val.length,
  };
}

/** Checkpoint and dataset must agree on the classes (names when the checkpoint has them). */
export function checkClasses(checkpoint: string, ckpt: readonly string[], dataset: string, data: readonly string[]): void {
  const namesKnown = !ckpt.every((n, i) => n === String(i));
  if (ckpt.length !== data.length || (namesKnown && ckpt.some((n, i) => n !== data[i]))) {
    const show = (l: readonly string[]) => `${l.length}: ${l.slice(0, 4).join(', ')}${l.length > 4 ? ', …' : ''}`;
    throw new Error(`${checkpoint} was trained on other classes (${show(ckpt)}) than ${dataset} has (${show(data)})`);
  }
}

/** A class by name, or by index when no class has that name. */
function classIndex(value: string, classNames: readonly string[]): number {
  const byName = classNames.indexOf(value);
  if (byName >= 0) return byName;
  const i = Number(value);
  if (Number.isInteger(i) && i >= 0 && i < classNames.length) return i;
  throw new UsageError(`--positive-class ${JSON.stringify(value)} is neither a class of the checkpoint (${classNames.join(', ')}) nor an index in [0, ${classNames.length})`);
}

function probability(flag: string) {
  return (v: string) => {
    const p = Number(v);
    if (!(v.trim() !== '' && p >= 0 && p <= 1)) throw new UsageError(`${flag} takes a probability in [0, 1], got "${v}"`);
    return p;
  };
}

function printSummary(s: ClassificationSummary, skipped = 0, m: EvaluationMetrics): void {
  const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
  const f3 = (v: number | null) => (v === null ? '—' : v.toFixed(3));
  const c = m.calibration;
  console.log(`images ${s.count}   top-1 ${pct(s.top1)}   top-5 ${pct(s.top5)}   loss ${s.loss.toFixed(4)}   balanced accuracy ${pct(m.balancedAccuracy)}${skipped ? `   (${skipped} unreadable files skipped)` : ''}\n`);
  // accuracy of a class is its recall; ROC-AUC and AP are one vs rest
  printTable(['class', 'images', 'accuracy', 'precision', 'F1', 'ROC-AUC', 'AP'], [
    ...m.perClass.map((p, i) => [p.name, String(p.support), pct(s.perClass[i]!.accuracy), f3(p.precision), f3(p.f1), f3(p.rocAuc), f3(p.averagePrecision)]),
    ['macro', '', pct(m.macro.recall), f3(m.macro.precision), f3(m.macro.f1), f3(m.macro.rocAuc), f3(m.macro.averagePrecision)],
    ['weighted', String(s.count), pct(m.weighted.recall), f3(m.weighted.precision), f3(m.weighted.f1), '', ''],
  ]);
  console.log(`\nexpected calibration error ${c.ece.toFixed(4)}${c.temperature !== undefined ? ` with the checkpoint's temperature ${c.temperature.toFixed(4)} (${c.eceBefore!.toFixed(4)} without; loss with it ${c.nll.toFixed(4)})` : ''}; ${c.binning}`);
  if (m.binary) {
    const b = m.binary;
    console.log(`positive class ${b.positiveClass}, predicted at p ≥ ${b.threshold}: sensitivity ${pct(b.sensitivity)} (${b.tp}/${b.tp + b.fn})   specificity ${pct(b.specificity)} (${b.tn}/${b.tn + b.fp})`);
  }
  console.log('\nconfusion matrix (rows: true class, columns: predicted)');
  printTable(['', ...s.perClass.map((_, i) => String(i))], s.confusion.map((row, i) => [`${i} ${s.perClass[i]!.name}`, ...row.map(String)]));
}
