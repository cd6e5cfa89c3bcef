/**
 * The data of the Fashion-MNIST CLIP target (issue #20; bench/clip_fm_target.ts): PNG files of a
 * seeded subset of Fashion-MNIST with
 * - `captions.csv` (path,caption): each image captioned from its label by one of TEMPLATES,
 *   drawn from the seed — what `pretrain --method clip` reads;
 * - `labels.csv` (path,label,split): other training images as `train` rows and test images as
 *   `val` rows, for `eval --zero-shot` and `train --pretrained`;
 * - `bpe_simple_vocab_16e6.txt` beside them: byte-level BPE merges learnt from the captions
 *   (GPT-2/CLIP's procedure: merge the most frequent adjacent pair of symbols within words,
 *   repeatedly), in OpenAI's merges format, so ClipTokenizer.find picks it up.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { loadBuiltinDataset } from '../src/data/datasets/builtin.js';
import type { TensorDataset } from '../src/data/datasets/dataset.js';
import { Random } from '../src/random.js';
import { cleanText } from '../src/text/clip_tokenizer.js';

export const TEMPLATES = [
  'a photo of a {}.', 'a picture of a {}.', 'an image of a {}.', 'a black and white photo of a {}.',
  'a low resolution photo of a {}.', 'a product photo of the {}.', 'a grayscale picture of the {}.', 'a small photo of the {}.',
];

export interface FmClipData { dir: string; captions: string; labels: string; vocabSize: number; merges: number }

/** The indices of `n` images of `ds` not in `taken`, drawn from `rng` (a partial Fisher–Yates shuffle). */
function sample(ds: TensorDataset, n: number, rng: Random, taken = new Set<number>()): number[] {
  const free = Array.from({ length: ds.length }, (_, i) => i).filter((i) => !taken.has(i));
  for (let i = 0; i < n; i++) {
    const j = i + rng.int(free.length - i);
    [free[i], free[j]] = [free[j]!, free[i]!];
  }
  return free.slice(0, n);
}

async function writePng(ds: TensorDataset, i: number, file: string): Promise<void> {
  const [, h, w] = ds.imageShape;
  await sharp(Buffer.from(ds.images.subarray(i * h * w, (i + 1) * h * w)), { raw: { width: w, height: h, channels: 1 } }).png().toFile(file);
}

/** CLIP's word split (its pre-tokenizer, for the ASCII captions here): letters, single digits, other runs. */
const WORD = /'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\p{White_Space}\p{L}\p{N}]+/gu;

/** Byte-level BPE merges learnt from `texts` until every word is one symbol (or `maxMerges`); ties broken by the pair's text. */
export function learnMerges(texts: readonly string[], maxMerges: number): string[] {
  const counts = new Map<string, number>();
  for (const t of texts) for (const m of cleanText(t).matchAll(WORD)) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
  const words = [...counts].map(([w, n]) => ({ parts: [...w.slice(0, -1)].concat(`${w.slice(-1)}</w>`), n }));
  const merges: string[] = [];
  while (merges.length < maxMerges) {
    const pairs = new Map<string, number>();
    for (const { parts, n } of words) for (let i = 0; i < parts.length - 1; i++) pairs.set(`${parts[i]} ${parts[i + 1]}`, (pairs.get(`${parts[i]} ${parts[i + 1]}`) ?? 0) + n);
    if (pairs.size === 0) break;
    const [best] = [...pairs].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]!;
    merges.push(best);
    const [a, b] = best.split(' ') as [string, string];
    for (const w of words) {
      const next: string[] = [];
      for (let i = 0; i < w.parts.length; i++) {
        if (i < w.parts.length - 1 && w.parts[i] === a && w.parts[i + 1] === b) { next.push(a + b); i++; } else next.push(w.parts[i]!);
      }
      w.parts = next;
    }
  }
  return merges;
}

export async function writeFmClipData(dir: string, { pretrain = 2000, finetune = 1000, test = 1000, seed = 0 } = {}): Promise<FmClipData> {
  const train = await loadBuiltinDataset('fashion-mnist', 'train');
  const testDs = await loadBuiltinDataset('fashion-mnist', 'test');
  const rng = new Random(seed);
  mkdirSync(join(dir, 'img'), { recursive: true });
  const pre = sample(train, pretrain, rng);
  const ft = sample(train, finetune, rng, new Set(pre));
  const te = sample(testDs, test, rng);
  const captionRows = ['path,caption'];
  const captions: string[] = [];
  for (const i of pre) {
    const caption = TEMPLATES[rng.int(TEMPLATES.length)]!.replace('{}', train.classNames[train.labels[i]!]!);
    await writePng(train, i, join(dir, 'img', `train${i}.png`));
    captionRows.push(`img/train${i}.png,"${caption}"`);
    captions.push(caption);
  }
  const labelRows = ['path,label,split'];
  for (const i of ft) {
    await writePng(train, i, join(dir, 'img', `train${i}.png`));
    labelRows.push(`img/train${i}.png,${train.classNames[train.labels[i]!]},train`);
  }
  for (const i of te) {
    await writePng(testDs, i, join(dir, 'img', `test${i}.png`));
    labelRows.push(`img/test${i}.png,${testDs.classNames[testDs.labels[i]!]},val`);
  }
  writeFileSync(join(dir, 'captions.csv'), `${captionRows.join('\n')}\n`);
  writeFileSync(join(dir, 'labels.csv'), `${labelRows.join('\n')}\n`);
  // the class names as zero-shot prompts them too ("a photo of a {}.")
  const merges = learnMerges([...captions, ...train.classNames.map((c) => `a photo of a ${c}.`)], 49152 - 256 - 2);
  writeFileSync(join(dir, 'bpe_simple_vocab_16e6.txt'), `#version: 0.2 (learnt from the captions by bench/clip_fm_data.ts)\n${merges.join('\n')}\n`);
  return { dir, captions: join(dir, 'captions.csv'), labels: join(dir, 'labels.csv'), vocabSize: 512 + merges.length + 2, merges: merges.length };
}
