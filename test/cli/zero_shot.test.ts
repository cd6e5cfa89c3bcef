/**
 * `tessera zero-shot` against scripts/make_clip_zero_shot_goldens.py (the tiny CLIP in
 * clip_ref.py, the toy BPE through the reference tokenizer, prompt ensembling as OpenAI's
 * notebook): probabilities and raw logits ≤ 1e-4 with one template and with two; text output;
 * one-line errors (exit 2 for the command line, 1 for files) for a text longer than the context,
 * a label file with a duplicate or an empty line, and a checkpoint without a text tower.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { writeClip, loadClip } from '../../src/checkpoint/layout_clip.js';
import { ClipImageClassifier } from '../../src/models/clip.js';
import { fixturePath, readJsonFixture } from '../helpers/fixtures.js';

const goldens = readJsonFixture('clip_zero_shot/goldens.json');
const dir = mkdtempSync(join(tmpdir(), 'tessera-zero-shot-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const ckpt = join(dir, 'clip', 'model.safetensors');
const images = [fixturePath('clip_zero_shot/a.png'), fixturePath('clip_zero_shot/b.png')];

beforeAll(() => {
  // a CLIP file with its tokenizer beside it, as OpenAI's package ships them
  for (const d of ['clip', 'visual']) mkdirSync(join(dir, d));
  copyFileSync(fixturePath('clip_tiny_openai.safetensors'), ckpt);
  for (const d of ['clip', 'visual']) copyFileSync(fixturePath('clip_tokenizer/bpe_toy_vocab.txt.gz'), join(dir, d, 'bpe_simple_vocab_16e6.txt.gz'));
  const { model } = loadClip(ckpt);
  const tower = new ClipImageClassifier({ clip: model.config, numClasses: 0 });
  tower.loadStateDict(Object.fromEntries(Object.entries(model.stateDict()).filter(([k]) => k.startsWith('visual.'))));
  writeClip(tower as never, 'openai', join(dir, 'visual', 'model.safetensors'));
});

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const saved = [console.log, console.error, process.stdout.write, process.stderr.write] as const;
  console.log = (...a: unknown[]) => { out.push(`${a.join(' ')}\n`); };
  console.error = (...a: unknown[]) => { err.push(`${a.join(' ')}\n`); };
  process.stdout.write = ((c: string) => { out.push(String(c)); return true; }) as typeof process.stdout.write;
  process.stderr.write = ((c: string) => { err.push(String(c)); return true; }) as typeof process.stderr.write;
  try {
    process.exitCode = undefined;
    const code = await main(args);
    return { code, out: out.join(''), err: err.join('') };
  } finally {
    [console.log, console.error, process.stdout.write, process.stderr.write] = saved;
    process.exitCode = undefined;
  }
}

const maxDiff = (a: number[][], b: number[][]) => Math.max(...a.flatMap((r, i) => r.map((v, j) => Math.abs(v - b[i]![j]!))));

describe('tessera zero-shot', () => {
  it('one template (the default): probabilities and logits of each image equal the reference', async () => {
    const r = await run(['zero-shot', '--checkpoint', ckpt, '--labels', goldens.labels.join(','), '--json', '--threads', '1', ...images]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const res = JSON.parse(r.out) as { image: string; labels: { label: string; probability: number }[]; logits: number[] }[];
    expect(res.map((x) => x.image)).toEqual(images);
    const probs = res.map((x) => goldens.labels.map((l: string) => x.labels.find((y) => y.label === l)!.probability));
    expect(maxDiff(probs, goldens.single.probabilities)).toBeLessThan(1e-4);
    expect(maxDiff(res.map((x) => x.logits), goldens.single.logits)).toBeLessThan(1e-4);
  }, 60_000);

  it('two templates from a labels file: the ensembled probabilities, printed most likely first', async () => {
    const labelsFile = join(dir, 'labels.txt');
    writeFileSync(labelsFile, `${goldens.labels.join('\n')}\n`);
    const args = ['zero-shot', '--checkpoint', ckpt, '--labels-file', labelsFile, ...goldens.templates.flatMap((t: string) => ['--template', t]), '--threads', '1'];
    const json = JSON.parse((await run([...args, '--json', ...images])).out) as { labels: { label: string; probability: number }[]; logits: number[] }[];
    expect(maxDiff(json.map((x) => x.logits), goldens.ensemble.logits)).toBeLessThan(1e-4);
    const text = await run([...args, images[1]!]);
    const p = goldens.ensemble.probabilities[1] as number[];
    const order = [0, 1, 2].sort((a, b) => p[b]! - p[a]!);
    expect(text.out).toBe(`${images[1]}\n${order.map((i) => `  ${(100 * p[i]!).toFixed(2).padStart(6)}%  ${goldens.labels[i]}\n`).join('')}`);
  }, 60_000);

  it('eval --zero-shot on an image folder: class folders become prompts; loss and accuracy from the reference probabilities', async () => {
    // cat/a.png, dog/b.png, t-shirt/a.png: samples (image 0, class 0), (1, 1), (0, 2)
    const samples: [number, number][] = [[0, 0], [1, 1], [0, 2]];
    const folder = join(dir, 'folder');
    for (const [img, label] of samples) {
      mkdirSync(join(folder, goldens.labels[label]), { recursive: true });
      copyFileSync(images[img]!, join(folder, goldens.labels[label], `${img}.png`));
    }
    const r = await run(['eval', '--zero-shot', '--checkpoint', ckpt, '--dataset', folder, '--split', 'all', '--json', '--threads', '1']);
    expect(r.code, r.err).toBe(0);
    const summary = JSON.parse(r.out);
    const p = goldens.single.probabilities as number[][];
    const argmax = (row: number[]) => row.indexOf(Math.max(...row));
    expect(summary.count).toBe(3);
    expect(summary.top1).toBeCloseTo(samples.filter(([i, l]) => argmax(p[i]!) === l).length / 3, 6);
    expect(summary.loss).toBeCloseTo(samples.reduce((s, [i, l]) => s - Math.log(p[i]![l]!), 0) / 3, 4);
    const noZeroShot = await run(['eval', '--checkpoint', ckpt, '--dataset', folder, '--template', 'a {}']);
    expect([noZeroShot.code, noZeroShot.err.trim()]).toEqual([2, 'tessera: --template is for --zero-shot']);
  }, 60_000);

  it('bad input is one line each: exit 2 for the command line, 1 for what was read', async () => {
    const file = (name: string, text: string) => { writeFileSync(join(dir, name), text); return join(dir, name); };
    const cases: [string[], number, RegExp][] = [
      [['--labels', `cat,${'very '.repeat(20)}long`], 2, /^tessera: text "a photo of a very very .*" is \d+ tokens, longer than the context of 16$/],
      [['--labels', 'cat,,dog'], 2, /^tessera: --labels: label 2 is empty$/],
      [['--labels', 'cat,dog', '--template', 'a photo'], 2, /^tessera: template "a photo" has no \{\} for the label$/],
      [['--labels-file', file('dup.txt', 'cat\ndog\ncat\n')], 1, /^tessera: .*dup\.txt: label "cat" appears twice \(labels 1 and 3\)$/],
      [['--labels-file', file('blank.txt', 'cat\n\ndog\n')], 1, /^tessera: .*blank\.txt: label 2 is empty; give one label per line, without blank lines$/],
      [['--labels', 'cat,dog', '--checkpoint', join(dir, 'visual', 'model.safetensors')], 1, /^tessera: .*visual[/\\]model\.safetensors: has no text tower .*: zero-shot needs a full CLIP checkpoint$/],
    ];
    for (const [extra, code, message] of cases) {
      const r = await run(['zero-shot', '--checkpoint', ckpt, ...extra, images[0]!]);
      expect(r.code, extra.join(' ')).toBe(code);
      expect(r.err.trimEnd().split('\n'), extra.join(' ')).toHaveLength(1);
      expect(r.err.trimEnd(), extra.join(' ')).toMatch(message);
      expect(r.out).toBe('');
    }
  }, 60_000);
});
