/** `tessera eval`: top-1/top-5, loss, per-class accuracy and the confusion matrix of a checkpoint on a dataset. */
import type { Command } from 'commander';
import { loadBuiltinDataset } from '../data/datasets/builtin.js';
import { sliceDataset } from '../data/datasets/dataset.js';
import { TensorLoader } from '../data/loader/tensor_loader.js';
import type { BatchSource } from '../data/loader/batch_source.js';
import { isBuiltinDataset } from '../data/datasets/builtin.js';
import { openImageDataset, subsetSamples } from '../data/datasets/folder_dataset.js';
import { createImageLoader } from '../data/loader/image_loader.js';
import type { EvalTransform } from '../data/transforms/transform_config.js';
import { evaluate } from '../train/evaluate.js';
import type { ClassificationSummary } from '../train/metrics.js';
import { addPreprocessOptions, sharedOption, type PreprocessFlags, type SharedValues } from './common_options.js';
import { openForInference } from './load_for_inference.js';
import { nonNegativeInt, positiveInt } from './parse.js';
import { printTable } from './output.js';

type EvalFlags = PreprocessFlags & Pick<SharedValues, 'dataDir' | 'threads' | 'json'> & {
  dataset: string; split: 'train' | 'test'; batchSize: number; limit?: number; workers?: number; strict?: boolean;
};

export function registerEvalCommand(program: Command): void {
  const cmd = program.command('eval').description('evaluate a checkpoint: top-1/top-5, loss, per-class accuracy, confusion matrix');
  addPreprocessOptions(cmd)
    .option('--dataset <name>', 'built-in dataset (fashion-mnist, mnist, cifar10, cifar100), an image folder or a CSV/JSONL manifest', 'fashion-mnist')
    .option('--split <split>', 'train or test; for images on disk, test is the val/ folder or val rows when there are any, else every image', 'test')
    .option('--workers <n>', 'image datasets: decoding threads (default: the core count)', nonNegativeInt('--workers'))
    .option('--strict', 'image datasets: stop at the first unreadable image instead of skipping it')
    .addOption(sharedOption('dataDir'))
    .addOption(sharedOption('batchSize', { default: 500 }))
    .option('--limit <n>', 'evaluate N images only: the first N of a built-in dataset, a seeded sample of N from images on disk', positiveInt('--limit'))
    .addOption(sharedOption('threads'))
    .addOption(sharedOption('json', { description: 'print JSON (accuracies as numbers in [0, 1])' }))
    .action(async (f: EvalFlags) => {
      if (f.split !== 'train' && f.split !== 'test') throw new Error(`--split must be train or test, got "${f.split}"`);
      const { exe, classNames, transform, close } = await openForInference(f, f.threads);
      try {
        const source = isBuiltinDataset(f.dataset) ? await builtinSource(f, transform, classNames) : imageSource(f, transform, classNames);
        let summary;
        try {
          summary = await evaluate(exe, source.loader, classNames);
        } finally {
          await source.loader.close?.();
        }
        const skipped = source.skipped();
        if (f.json) console.log(JSON.stringify({ checkpoint: f.checkpoint, dataset: f.dataset, split: f.split, ...(skipped ? { skippedFiles: skipped } : {}), ...summary }));
        else printSummary(summary, skipped);
      } finally {
        await close();
      }
    });
}

interface EvalSource { loader: BatchSource; skipped(): number }

async function builtinSource(f: EvalFlags, transform: EvalTransform, classNames: readonly string[]): Promise<EvalSource> {
  let ds = await loadBuiltinDataset(f.dataset, f.split, { dataDir: f.dataDir });
  if (f.limit) ds = sliceDataset(ds, 0, f.limit);
  const [c, h, w] = transform.inputSize;
  if (ds.imageShape.join() !== [c, h, w].join()) {
    throw new Error(`${f.checkpoint} expects ${c}×${h}×${w} images but ${f.dataset} has ${ds.imageShape.join('×')}`);
  }
  checkClasses(f.checkpoint, classNames, f.dataset, ds.classNames);
  return { loader: new TensorLoader(ds, { batchSize: f.batchSize, shuffle: false, seed: 0, mean: transform.mean, std: transform.std }), skipped: () => 0 };
}

/** Images on disk, resized and centre-cropped with the model's eval transform; class folders must be the checkpoint's classes. */
function imageSource(f: EvalFlags, transform: EvalTransform, classNames: readonly string[]): EvalSource {
  const namesKnown = !classNames.every((n, i) => n === String(i));
  const ds = openImageDataset(f.dataset, namesKnown ? { classNames } : {});
  if (!namesKnown) checkClasses(f.checkpoint, classNames, f.dataset, ds.classNames);
  const whole = f.split === 'train' || !ds.val ? ds.train : ds.val;
  // class folders are sorted by class: a prefix would be one class, so take a seeded subset
  const part = f.limit ? subsetSamples(whole, f.limit, 0) : whole;
  let skipped = 0;
  const loader = createImageLoader(part, {
    batchSize: f.batchSize, shuffle: false, seed: 0, train: false, transform, workers: f.workers, strict: f.strict,
    onSkip: (_, message) => {
      skipped++;
      process.stderr.write(`skipping an unreadable image: ${message}\n`);
    },
  });
  return { loader, skipped: () => skipped };
}

/** Checkpoint and dataset must agree on the classes (names when the checkpoint has them). */
export function checkClasses(checkpoint: string, ckpt: readonly string[], dataset: string, data: readonly string[]): void {
  const namesKnown = !ckpt.every((n, i) => n === String(i));
  if (ckpt.length !== data.length || (namesKnown && ckpt.some((n, i) => n !== data[i]))) {
    const show = (l: readonly string[]) => `${l.length}: ${l.slice(0, 4).join(', ')}${l.length > 4 ? ', …' : ''}`;
    throw new Error(`${checkpoint} was trained on other classes (${show(ckpt)}) than ${dataset} has (${show(data)})`);
  }
}

function printSummary(s: ClassificationSummary, skipped = 0): void {
  const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
  console.log(`images ${s.count}   top-1 ${pct(s.top1)}   top-5 ${pct(s.top5)}   loss ${s.loss.toFixed(4)}${skipped ? `   (${skipped} unreadable files skipped)` : ''}\n`);
  printTable(['class', 'accuracy', 'images'], s.perClass.map((p) => [p.name, pct(p.accuracy), String(p.count)]));
  console.log('\nconfusion matrix (rows: true class, columns: predicted)');
  printTable(['', ...s.perClass.map((_, i) => String(i))], s.confusion.map((row, i) => [`${i} ${s.perClass[i]!.name}`, ...row.map(String)]));
}
