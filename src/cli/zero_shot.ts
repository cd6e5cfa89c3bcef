/**
 * `tessera zero-shot`: classifies images by a CLIP's text prompts, with no training. The labels'
 * prompts are encoded once (src/models/clip_zero_shot.ts), then the images run through the image
 * tower with that text-derived head `--batch-size` at a time. Also the loading `eval --zero-shot`
 * shares: a CLIP checkpoint, its tokenizer beside it, OpenAI's preprocessing with predict's overrides.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { loadImageForModel, type EvalTransform } from '../data/image/image.js';
import { configureSharpForLoading } from '../data/image/image_decode.js';
import { imagePathsOf } from '../data/datasets/image_paths.js';
import { compileInference, frozenWeights } from '../models/executables.js';
import { CLIP_PREPROCESSING } from '../models/clip.js';
import { checkLabels, DEFAULT_TEMPLATE, zeroShotClassifier, ZeroShotError } from '../models/clip_zero_shot.js';
import type { ClipImageClassifier } from '../models/clip.js';
import { loadClip } from '../checkpoint/layout_clip.js';
import { ClipTokenizer, TokenizerError } from '../text/clip_tokenizer.js';
import { topK } from '../serve/prediction.js';
import { addPreprocessOptions, sharedOption, type PreprocessFlags, type SharedValues } from './common_options.js';
import { withOverrides, type InferenceModel } from './load_for_inference.js';
import { isBuiltinDataset, loadBuiltinDataset } from '../data/datasets/builtin.js';
import { openImageDataset } from '../data/datasets/folder_dataset.js';
import { UsageError } from './output.js';

export interface ZeroShotFlags extends PreprocessFlags { template?: string[] }
type Flags = ZeroShotFlags & Pick<SharedValues, 'threads' | 'json'> & { labels?: string; labelsFile?: string; batchSize: number };

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** --template, repeatable (eval --zero-shot adds the same option). */
export function addTemplateOption(cmd: Command): Command {
  return cmd.option('--template <text>', `prompt with {} for the label; repeat it to ensemble prompts (mean of normalised text embeddings) (default: "${DEFAULT_TEMPLATE}")`, collect);
}

/**
 * The zero-shot classifier of `labels` and its eval transform. A template without {} and a prompt
 * too long for the context are command-line errors (UsageError, exit 2); a checkpoint without a
 * text tower or tokenizer files fails on what was read (exit 1). Each is one line.
 */
export async function openZeroShot(f: ZeroShotFlags, labels: readonly string[], threads?: number): Promise<{ model: ClipImageClassifier; transform: EvalTransform }> {
  // eval --zero-shot has --model (for eval's other modes); zero-shot itself has none
  if (f.model) throw new UsageError(`--model is not used by zero-shot: the CLIP architecture is read from ${f.checkpoint}`);
  const { model: clip, checkpoint } = loadClip(f.checkpoint);
  const tokenizer = ClipTokenizer.find(checkpoint.folder);
  let model: ClipImageClassifier;
  try {
    model = await zeroShotClassifier(clip, tokenizer, labels, f.template?.length ? f.template : [DEFAULT_TEMPLATE], threads);
  } catch (e) {
    if (e instanceof ZeroShotError || e instanceof TokenizerError) throw new UsageError(e.message);
    throw e;
  }
  const s = clip.config.imageSize;
  return { model, transform: withOverrides(f, { ...CLIP_PREPROCESSING, inputSize: [3, s, s] }) };
}

function labelsOf(f: Flags): string[] {
  if ((f.labels === undefined) === (f.labelsFile === undefined)) throw new UsageError('give the labels with --labels a,b,c or --labels-file FILE (one of them)');
  if (f.labels !== undefined) {
    try {
      return checkLabels(f.labels.split(','), '--labels');
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  let text: string;
  try {
    text = readFileSync(f.labelsFile!, 'utf8');
  } catch (e) {
    throw new UsageError(`--labels-file ${f.labelsFile}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  const lines = text.replace(/\r?\n$/, '').split(/\r?\n/);
  return checkLabels(lines, f.labelsFile!); // a file's content: exit 1, not a usage error
}

export function registerZeroShotCommand(program: Command): void {
  const cmd = program.command('zero-shot').description('classify images with a CLIP checkpoint by text prompts of the labels (no training)')
    .argument('<images...>', 'image files, directories or quoted glob patterns');
  addPreprocessOptions(cmd, 'a CLIP checkpoint: OpenAI/open_clip state dict (.pt, .bin, .safetensors) or a Hugging Face CLIPModel directory, with its tokenizer files beside it (bpe_simple_vocab_16e6.txt.gz, or vocab.json + merges.txt)', ['model', 'modelKwargs'])
    .option('--labels <list>', 'labels separated by commas, e.g. cat,dog,bird')
    .option('--labels-file <file>', 'labels, one a line');
  addTemplateOption(cmd)
    .addOption(sharedOption('batchSize', { default: 64, description: 'images per model run' }))
    .addOption(sharedOption('threads'))
    .addOption(sharedOption('json', { description: 'print a JSON array: per image every label\'s probability and the raw logits' }))
    .action(async (args: string[], f: Flags) => {
      const labels = labelsOf(f);
      const { model, transform } = await openZeroShot(f, labels, f.threads);
      // weights fed as inputs: in the graph (frozenWeights, as eval --zero-shot) they cost ≈ 2.5 s
      // and 1 GB more to open for ViT-B-32 and win ≈ 7 ms an image (BENCHMARKS.md), a loss for a few images
      const exe = await compileInference(model, { threads: f.threads });
      configureSharpForLoading();
      const results: { image: string; labels: { label: string; probability: number }[]; logits: number[] }[] = [];
      let failed = 0;
      try {
        const per = 3 * transform.inputSize[1] * transform.inputSize[2];
        let batch: { path: string; data: Float32Array }[] = [];
        const run = async () => {
          const x = new Float32Array(batch.length * per);
          batch.forEach((b, i) => x.set(b.data, i * per));
          const logits = (await exe.run({ x })).logits!.data as Float32Array;
          batch.forEach((b, i) => {
            const row = logits.slice(i * labels.length, (i + 1) * labels.length);
            const r = { image: b.path, labels: topK(row, labels, labels.length).map(({ label, probability }) => ({ label, probability })), logits: Array.from(row) };
            results.push(r);
            if (!f.json) process.stdout.write(`${r.image}\n${r.labels.map((l) => `  ${(100 * l.probability).toFixed(2).padStart(6)}%  ${l.label}\n`).join('')}`);
          });
          batch = [];
        };
        for await (const a of imagePathsOf(args)) {
          if ('error' in a) { failed++; process.stderr.write(`tessera: ${a.error}\n`); continue; }
          try {
            batch.push({ path: a.path, data: await loadImageForModel(a.path, transform) });
          } catch (e) {
            failed++;
            process.stderr.write(`tessera: ${(e as Error).message}\n`);
            continue;
          }
          if (batch.length === f.batchSize) await run();
        }
        if (batch.length) await run();
      } finally {
        await exe.dispose();
      }
      if (f.json) console.log(JSON.stringify(results));
      if (failed) process.exitCode = 1;
    });
}

/**
 * `eval --zero-shot`: the dataset's class names (underscores read as spaces) become the labels of
 * the prompts; the classifier then runs as any checkpoint's does.
 */
export async function openZeroShotForEval(f: ZeroShotFlags & { dataset: string; dataDir?: string }, threads?: number): Promise<InferenceModel> {
  const classNames = isBuiltinDataset(f.dataset)
    ? [...(await loadBuiltinDataset(f.dataset, 'test', { dataDir: f.dataDir })).classNames]
    : [...openImageDataset(f.dataset).train.classNames];
  const { model, transform } = await openZeroShot(f, classNames.map((c) => c.replace(/_/g, ' ')), threads);
  // a whole dataset follows: the weights go into the graph, so ORT packs them once (frozenWeights)
  const exe = await compileInference(model, { threads, params: frozenWeights(model) });
  return { exe, classNames, transform, close: () => exe.dispose() };
}
