/**
 * `tessera explain`: attention maps, rollout, gradient-weighted rollout and saliency for image
 * files. Per image it writes a heatmap overlay PNG, the raw map (JSON or .npy) and, with --grid,
 * a grid of the per-layer/per-head maps. Everything is computed before the first file is written.
 */
import { mkdirSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { writeFileAtomic } from '../checkpoint/atomic.js';
import { loadImageForModel } from '../data/image/image.js';
import { colormapNames, gridPng, npyBytes, overlayPng, type ColormapName, type PixelImage } from '../data/image/image_overlay.js';
import { Explainer, explainMethods, type ExplainMethod, type Explanation } from '../explain/index.js';
import { softmaxRows } from '../nn/host_math.js';
import { toPixels } from '../robust/attack_model.js';
import { addPreprocessOptions, rebuiltOnnxCheckpointHelp, sharedOption, type PreprocessFlags } from './common_options.js';
import { loadForInference } from './load_for_inference.js';
import { UsageError } from './output.js';
import { nonNegativeNumber, positiveInt } from './parse.js';

interface ExplainFlags extends PreprocessFlags {
  method: ExplainMethod;
  out: string;
  headFusion: 'mean' | 'max' | 'min';
  discardRatio: number;
  class?: string;
  grid?: boolean;
  format: 'json' | 'npy';
  alpha: number;
  colormap: ColormapName;
  smoothgrad?: number;
  noiseLevel: number;
  seed: number;
  threads?: number;
  json?: boolean;
}

const unitInterval = (flag: string, { open = false } = {}) => (v: string): number => {
  const n = Number(v);
  if (!(n >= 0 && (open ? n < 1 : n <= 1)) || v.trim() === '') throw new InvalidArgumentError(`${flag} must be a number in [0, ${open ? '1)' : '1]'}, got "${v}"`);
  return n;
};

export function registerExplainCommand(program: Command): void {
  const cmd = program.command('explain')
    .description('explain predictions: attention, rollout, grad-rollout or saliency maps, or a token-reducing model\'s kept or merged patches, as overlay PNGs and raw maps')
    .argument('<images...>', 'image files');
  addPreprocessOptions(cmd, rebuiltOnnxCheckpointHelp)
    .addOption(new Option('--method <m>', 'attention (last block), rollout (Abnar & Zuidema), grad-rollout (Chefer et al.), saliency (input gradient), tokens (the patches a DynamicViT kept or a ToMe model merged)')
      .choices([...explainMethods]).default('rollout'))
    .requiredOption('--out <dir>', 'output directory (created if missing)')
    .addOption(new Option('--head-fusion <f>', 'how attention and rollout combine the heads of a layer').choices(['mean', 'max', 'min']).default('mean'))
    .option('--discard-ratio <f>', 'rollout: fraction of each layer\'s lowest attentions to zero', unitInterval('--discard-ratio', { open: true }), 0)
    .option('--class <k|name>', 'class to explain, as an index or a class name (default: the prediction)')
    .option('--grid', 'also write a grid of the per-layer/per-head (saliency: per-channel) maps')
    .addOption(new Option('--format <f>', 'raw map file format').choices(['json', 'npy']).default('json'))
    .option('--alpha <a>', 'heatmap opacity over the image', unitInterval('--alpha'), 0.5)
    .addOption(new Option('--colormap <name>', 'heatmap colours').choices([...colormapNames]).default('viridis'))
    .option('--smoothgrad <n>', 'saliency: average over n noisy copies (SmoothGrad)', positiveInt('--smoothgrad'))
    .option('--noise-level <f>', 'SmoothGrad noise σ as a fraction of the image\'s value range', nonNegativeNumber('--noise-level'), 0.15)
    .option('--seed <n>', 'seed of the SmoothGrad noise', (v) => Number.isInteger(Number(v)) && Number(v) >= 0 ? Number(v) : failArg(`--seed must be a non-negative integer, got "${v}"`), 0)
    .addOption(sharedOption('threads'))
    .addOption(sharedOption('json', { description: 'print a JSON summary (files, predicted and explained class per image)' }))
    .action(async (images: string[], f: ExplainFlags) => {
      if (f.smoothgrad && f.method !== 'saliency') throw new UsageError(`--smoothgrad applies to --method saliency, not ${f.method}`);
      if (f.discardRatio > 0 && f.method !== 'rollout') throw new UsageError(`--discard-ratio applies to --method rollout, not ${f.method}`);
      const { model, meta, transform } = loadForInference(f, 'explain');
      const classIndex = f.class === undefined ? undefined : parseClass(f.class, meta.classNames);
      const inputs = await Promise.all(images.map((p) => loadImageForModel(p, transform)));
      const [c, h, w] = transform.inputSize;
      const x = new Float32Array(inputs.length * c * h * w);
      inputs.forEach((t, i) => x.set(t, i * c * h * w));

      const explainer = new Explainer(model, { threads: f.threads }, meta.model);
      let explanations: Explanation[];
      try {
        explanations = await explainer.explain(x, {
          method: f.method, headFusion: f.headFusion, discardRatio: f.discardRatio,
          classes: images.map(() => classIndex),
          smoothGrad: f.smoothgrad ? { samples: f.smoothgrad, noiseLevel: f.noiseLevel, seed: f.seed } : undefined,
        });
      } finally {
        await explainer.dispose();
      }

      // render everything first: nothing is written if any image fails
      const pixels = toPixels(x, [c, h, w], transform.mean, transform.std);
      const stems = uniqueStems(images);
      const label = (k: number) => meta.classNames[k] ?? String(k);
      const outputs = await Promise.all(explanations.map(async (e, i) => {
        const img: PixelImage = { data: pixels.subarray(i * c * h * w, (i + 1) * c * h * w), channels: c, height: h, width: w };
        const base = join(f.out, `${stems[i]}.${f.method}`);
        const files: [string, Uint8Array | string][] = [[`${base}.png`, await overlayPng(img, e.map, e.mapShape, { alpha: f.alpha, colormap: f.colormap })]];
        if (f.grid) files.push([`${base}.grid.png`, await gridPng(img, e.tiles, e.mapShape, { columns: e.tileColumns, alpha: f.alpha, colormap: f.colormap })]);
        const probs = softmaxRows(e.logits, e.logits.length);
        const predicted = { index: e.predicted, label: label(e.predicted), probability: probs[e.predicted]! };
        const explained = { index: e.classIndex, label: label(e.classIndex), probability: probs[e.classIndex]! };
        files.push(...rawMapFiles(base, f, e, { image: images[i]!, predicted, explained }));
        return {
          image: images[i]!,
          method: f.method,
          predicted,
          explained,
          mapShape: e.mapShape,
          files: files.map(([p]) => p),
          write: files,
        };
      }));
      mkdirSync(f.out, { recursive: true });
      for (const o of outputs) for (const [path, data] of o.write) writeFileAtomic(path, data);

      const summary = outputs.map(({ write: _, ...rest }) => rest);
      if (f.json) {
        console.log(JSON.stringify(summary));
        return;
      }
      for (const s of summary) {
        const pct = (p: number) => `${(100 * p).toFixed(1)}%`;
        console.log(`${s.image}: predicted ${s.predicted.label} (${pct(s.predicted.probability)}), explaining ${s.explained.label}`);
        for (const file of s.files) console.log(`  ${file}`);
      }
    });
}

const failArg = (msg: string): never => { throw new InvalidArgumentError(msg); };

/** An index in range or an exact (then case-insensitive) class name. */
export function parseClass(v: string, names: readonly string[]): number {
  const trimmed = v.trim();
  if (/^\d+$/.test(trimmed)) {
    const k = Number(trimmed);
    if (k < names.length) return k;
    throw new Error(`--class ${v} is out of range: the checkpoint has ${names.length} classes (0…${names.length - 1})`);
  }
  let k = names.indexOf(trimmed);
  if (k < 0) k = names.findIndex((n) => n.toLowerCase() === trimmed.toLowerCase());
  if (k < 0) {
    const list = names.length > 12 ? `${names.slice(0, 12).join(', ')}, …` : names.join(', ');
    throw new Error(`--class "${v}" is not a class index or name of the checkpoint (classes: ${list})`);
  }
  return k;
}

/** File stems from image names, made unique (a/x.png and b/x.png → x, x-2). */
function uniqueStems(paths: readonly string[]): string[] {
  const seen = new Map<string, number>();
  return paths.map((p) => {
    const stem = basename(p, extname(p)).replace(/[^\w.-]+/g, '_') || 'image';
    const n = (seen.get(stem) ?? 0) + 1;
    seen.set(stem, n);
    return n === 1 ? stem : `${stem}-${n}`;
  });
}

interface ClassInfo { index: number; label: string; probability: number }

function rawMapFiles(base: string, f: ExplainFlags, e: Explanation, info: { image: string; predicted: ClassInfo; explained: ClassInfo }): [string, Uint8Array | string][] {
  const [mh, mw] = e.mapShape;
  if (f.format === 'npy') {
    const files: [string, Uint8Array][] = [[`${base}.npy`, npyBytes(e.map, [mh, mw])]];
    if (f.grid) {
      const stack = new Float32Array(e.tiles.length * mh * mw);
      e.tiles.forEach((t, i) => stack.set(t.map, i * mh * mw));
      files.push([`${base}.grid.npy`, npyBytes(stack, [e.tiles.length, mh, mw])]);
    }
    return files;
  }
  const rows = (m: Float32Array) => Array.from({ length: mh }, (_, r) => Array.from(m.subarray(r * mw, (r + 1) * mw)));
  const doc = {
    image: info.image, method: f.method, checkpoint: f.checkpoint, class: info.explained, predicted: info.predicted,
    options: { headFusion: f.headFusion, discardRatio: f.discardRatio, smoothgrad: f.smoothgrad ?? null },
    shape: [mh, mw], map: rows(e.map),
    ...(f.grid ? { grid: e.tiles.map((t) => ({ label: t.label, map: rows(t.map) })) } : {}),
  };
  return [[`${base}.json`, JSON.stringify(doc)]];
}
