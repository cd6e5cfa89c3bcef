/**
 * `tessera predict`: top-k labels and probabilities for image files (PNG, JPEG, … anything sharp
 * decodes), directories of them and glob patterns. Images stream through: a bounded number are
 * decoded at a time, the model runs them `--batch-size` at a time, and each result is written as
 * soon as its batch is done, so memory stays flat however many images there are. An unreadable
 * image is reported on stderr and the others are still answered; the exit status is then 1.
 */
import type { Command } from 'commander';
import { imagePathsOf, type ImageArg } from '../data/datasets/image_paths.js';
import { configureSharpForLoading } from '../data/image/image_decode.js';
import { loadImageForModel, type EvalTransform } from '../data/image/image.js';
import { physicalCores } from '../runtime/cores.js';
import { topK } from '../serve/prediction.js';
import { addPreprocessOptions, sharedOption, type PreprocessFlags, type SharedValues } from './common_options.js';
import { openForInference } from './load_for_inference.js';
import { positiveInt } from './parse.js';
import { addTileOptions, predictTiledImages, tileOptionsOf, type TileFlags } from './predict_tiled.js';

type PredictFlags = PreprocessFlags & Pick<SharedValues, 'threads' | 'json'> & TileFlags & { topk: number; batchSize: number; jsonl?: boolean };

interface Prediction {
  image: string;
  top: { label: string; index: number; probability: number }[];
  logits: number[];
}

export function registerPredictCommand(program: Command): void {
  const cmd = program.command('predict').description('classify images with a checkpoint')
    .argument('<images...>', 'image files, directories (searched recursively for image files) or quoted glob patterns such as "photos/**/*.jpg"');
  addPreprocessOptions(cmd)
    .option('--topk <k>', 'labels to show per image', positiveInt('--topk'), 5)
    .addOption(sharedOption('batchSize', { default: 64, description: 'images per model run' }))
    .addOption(sharedOption('threads'))
    .addOption(sharedOption('json', { description: 'print a JSON array, including each image\'s raw logits (written as the images are done)' }).conflicts('jsonl'))
    .option('--jsonl', 'print one JSON object per image and line (as --json\'s elements)');
  addTileOptions(cmd)
    .action(async (args: string[], f: PredictFlags) => {
      const tiling = tileOptionsOf(f);
      const { exe, classNames, transform, close } = await openForInference(f, f.threads);
      configureSharpForLoading();
      const out = new PredictionWriter(f.json ? 'json' : f.jsonl ? 'jsonl' : 'text');
      let failed = 0, total = 0;
      try {
        if (tiling) ({ failed, total } = await predictTiledImages(args, exe, transform, classNames, tiling, f, (p) => out.write(p)));
        const [c, h, w] = transform.inputSize;
        const per = c * h * w;
        const x = new Float32Array(f.batchSize * per);
        let batch: string[] = [];
        const runBatch = async () => {
          const n = batch.length;
          const logits = (await exe.run({ x: x.subarray(0, n * per) })).logits!.data as Float32Array;
          for (const p of predictions(batch, logits, classNames, f.topk)) await out.write(p);
          batch = [];
        };
        // decodes in flight beside the batch being filled: enough to keep sharp's threads busy
        const decoding = Math.min(f.batchSize, 2 * physicalCores());
        // with --tile the images were answered above
        for await (const r of inOrder(tiling ? noImages() : imagePathsOf(args), decoding, (a) => decode(a, transform))) {
          total++;
          if ('error' in r) {
            failed++;
            process.stderr.write(`tessera: ${r.error}\n`);
            continue;
          }
          x.set(r.data, batch.length * per);
          batch.push(r.path);
          if (batch.length === f.batchSize) await runBatch();
        }
        if (batch.length) await runBatch();
      } finally {
        await out.end();
        await close();
      }
      if (failed) {
        if (total > 1) process.stderr.write(`tessera: ${failed} of ${total} inputs failed (named above); the other ${total - failed} images were answered\n`);
        process.exitCode = 1;
      }
    });
}

// eslint-disable-next-line require-yield
async function* noImages(): AsyncGenerator<ImageArg> {}

type Decoded = { path: string; data: Float32Array } | { error: string };

async function decode(a: ImageArg, transform: EvalTransform): Promise<Decoded> {
  if ('error' in a) return a;
  try {
    return { path: a.path, data: await loadImageForModel(a.path, transform) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** `fn` over `source` with at most `limit` calls in flight, results in source order (fn must not reject). */
async function* inOrder<T, R>(source: AsyncIterable<T>, limit: number, fn: (t: T) => Promise<R>): AsyncGenerator<R> {
  const pending: Promise<R>[] = [];
  for await (const item of source) {
    pending.push(fn(item));
    if (pending.length >= limit) yield await pending.shift()!;
  }
  while (pending.length) yield await pending.shift()!;
}

function predictions(paths: readonly string[], logits: Float32Array, classNames: readonly string[], topk: number): Prediction[] {
  const classes = classNames.length;
  return paths.map((image, i) => {
    const row = logits.subarray(i * classes, (i + 1) * classes);
    return { image, top: topK(row, classNames, topk), logits: Array.from(row) };
  });
}

/** Writes predictions to stdout as they come (waiting when the pipe is full): text, a JSON array, or JSON lines. */
class PredictionWriter {
  private count = 0;

  constructor(private readonly format: 'text' | 'json' | 'jsonl') {}

  async write(p: Pick<Prediction, 'image' | 'top'>): Promise<void> {
    let s: string;
    if (this.format === 'json') s = `${this.count ? ',' : '['}${JSON.stringify(p)}`;
    else if (this.format === 'jsonl') s = `${JSON.stringify(p)}\n`;
    else s = `${p.image}\n${p.top.map((t) => `  ${(100 * t.probability).toFixed(2).padStart(6)}%  ${t.label}\n`).join('')}`;
    this.count++;
    await emit(s);
  }

  async end(): Promise<void> {
    if (this.format === 'json') await emit(this.count ? ']\n' : '[]\n');
  }
}

function emit(s: string): Promise<void> {
  return new Promise((resolve) => {
    if (process.stdout.write(s)) resolve();
    else process.stdout.once('drain', resolve);
  });
}
