/**
 * `pretrain --method clip` (src/train/objectives/clip.ts):
 * - the symmetric InfoNCE loss and the gradient of every parameter of a small CLIP equal
 *   scripts/make_clip_contrastive_goldens.py's plain-PyTorch reference (float64; loss ≤ 1e-5
 *   relative, gradients ≤ 1e-4 relative to each tensor's largest entry), a caption repeated in
 *   the batch included;
 * - logit_scale is clamped to [0, ln 100] after an update, as open_clip's train.py;
 * - the command on an image–caption manifest of coloured squares: the run directory with the
 *   tokenizer copied in, a loss that falls, zero-shot on its checkpoint naming the colours, and
 *   `convert --to openai | hf` writing what reads back to the same weights (and zero-shot logits),
 *   HF's config naming the tokenizer's own start/end ids;
 * - one-line errors: a dataset that is not a manifest, a caption longer than the context, a
 *   tokenizer larger than the model's vocabulary.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipModel, type ClipConfig } from '../../src/models/clip.js';
import { ClipObjective, MAX_LOGIT_SCALE } from '../../src/train/objectives/clip.js';
import { compileTrainStep } from '../../src/train/step.js';
import { ClipTokenizer } from '../../src/text/clip_tokenizer.js';
import { readClipCheckpoint } from '../../src/checkpoint/layout_clip.js';
import { fixturePath, readJsonFixture, readTensorFixture } from '../helpers/fixtures.js';
import { runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-clip-pretrain-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const toyTokenizer = () => ClipTokenizer.fromMergesFile(fixturePath('clip_tokenizer/bpe_toy_vocab.txt.gz'));

describe('CLIP contrastive loss', () => {
  it('loss and every gradient equal the plain-PyTorch reference', async () => {
    const g = readJsonFixture('clip_contrastive/goldens.json');
    const t = readTensorFixture('clip_contrastive/goldens.safetensors');
    const s = g.config;
    const config: ClipConfig = {
      embedDim: s.embed_dim, imageSize: s.image_size, patchSize: s.patch, contextLength: s.context, vocabSize: s.vocab,
      vision: { width: s.vw, layers: s.vl, heads: s.vheads, mlpWidth: s.vmlp }, text: { width: s.tw, layers: s.tl, heads: s.theads, mlpWidth: s.tmlp },
      act: 'quick_gelu', eps: 1e-5,
    };
    const model = new ClipModel(config);
    model.loadStateDict(Object.fromEntries(g.keys.map((k: string) => [k, t.get(k)!])));
    const objective = new ClipObjective(model, toyTokenizer(), new BigInt64Array(0), []);
    const step = await compileTrainStep(model, objective, { threads: 1 });
    try {
      const b = g.batch as number;
      const eye = new Float32Array(b * b).map((_, i) => (i % (b + 1) === 0 ? 1 : 0));
      const out = await step.exe.run({
        x: { data: t.get('in.images')!.data, shape: [b, 3, s.image_size, s.image_size] },
        text: { data: BigInt64Array.from(t.get('in.ids')!.data, (v) => BigInt(v)), shape: [b, s.context] },
        pair: { data: eye, shape: [b, b] },
      });
      const loss = Number(out.loss!.data[0]);
      expect(Math.abs(loss - g.loss) / g.loss).toBeLessThan(1e-5);
      expect(step.trainable.sort()).toEqual([...g.keys].sort());
      const worst = g.keys.map((k: string) => {
        const ref = t.get(`grad.${k}`)!.data;
        const got = out[`grad/${k}`]!.data as Float32Array;
        const scale = Math.max(...ref.map(Math.abs));
        return [k, Math.max(...ref.map((v, i) => Math.abs(v - got[i]!))) / scale] as const;
      }).filter(([, rel]: readonly [string, number]) => !(rel <= 1e-4));
      expect(worst).toEqual([]);
    } finally {
      await step.exe.dispose();
    }
  }, 60_000);

  it('clamps logit_scale to [0, ln 100] after an update', () => {
    const model = new ClipModel({ embedDim: 8, imageSize: 16, patchSize: 8, contextLength: 4, vocabSize: 600,
      vision: { width: 8, layers: 1, heads: 1, mlpWidth: 8 }, text: { width: 8, layers: 1, heads: 1, mlpWidth: 8 }, act: 'quick_gelu', eps: 1e-5 });
    const objective = new ClipObjective(model, toyTokenizer(), new BigInt64Array(0), []);
    const scale = model.namedParameters().find(([k]) => k === 'logit_scale')![1].data;
    expect(scale[0]).toBeCloseTo(Math.log(1 / 0.07), 6);
    objective.afterOptimizerStep(0);
    expect(scale[0]).toBeCloseTo(Math.log(1 / 0.07), 6); // inside the range: unchanged
    scale[0] = 6;
    objective.afterOptimizerStep(0);
    expect(scale[0]).toBeCloseTo(Math.log(100), 6);
    expect(MAX_LOGIT_SCALE).toBeCloseTo(4.6052, 4);
    scale[0] = -0.5;
    objective.afterOptimizerStep(0);
    expect(scale[0]).toBe(0);
  });
});

const COLOURS: Record<string, [number, number, number]> = { red: [220, 30, 30], green: [30, 200, 40], blue: [30, 40, 220], yellow: [230, 220, 30] };

describe('tessera pretrain --method clip', () => {
  const data = join(dir, 'data');
  const manifest = join(data, 'captions.csv');
  beforeAll(async () => {
    const { mkdirSync } = await import('node:fs');
    mkdirSync(data);
    const rows = ['path,caption'];
    for (let i = 0; i < 48; i++) {
      const name = Object.keys(COLOURS)[i % 4]!;
      const [r, gr, b] = COLOURS[name]!;
      const px = Buffer.alloc(32 * 32 * 3);
      for (let p = 0; p < 32 * 32; p++) {
        const n = ((i * 7919 + p * 104729) % 41) - 20; // a little texture, deterministic
        px[p * 3] = Math.max(0, Math.min(255, r + n)); px[p * 3 + 1] = Math.max(0, Math.min(255, gr - n)); px[p * 3 + 2] = Math.max(0, Math.min(255, b + n));
      }
      await sharp(px, { raw: { width: 32, height: 32, channels: 3 } }).png().toFile(join(data, `img${i}.png`));
      rows.push(`img${i}.png,${i % 8 < 4 ? 'a' : 'the'} ${name} square`);
    }
    writeFileSync(manifest, `${rows.join('\n')}\n`);
    copyFileSync(fixturePath('clip_tokenizer/bpe_toy_vocab.txt.gz'), join(data, 'bpe_simple_vocab_16e6.txt.gz'));
  });

  it('trains on a caption manifest; its checkpoint classifies zero-shot and converts to OpenAI and HF layouts', async () => {
    const run = join(dir, 'run');
    const p = await runCli(['pretrain', '--method', 'clip', '--dataset', manifest, '--epochs', '4', '--batch-size', '12', '--threads', '1', '--output', run, '--json']);
    expect(p.code, p.stderr).toBe(0);
    for (const f of ['last.safetensors', 'best.safetensors', 'state.safetensors', 'metrics.jsonl', 'bpe_simple_vocab_16e6.txt.gz']) expect(existsSync(join(run, f)), f).toBe(true);
    const epochs = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(epochs).toHaveLength(4);
    expect(epochs[3].train_loss).toBeLessThan(epochs[0].train_loss);
    expect(epochs[3].eval_top1).toBeGreaterThanOrEqual(0);

    const ckpt = join(run, 'last.safetensors');
    const labels = Object.keys(COLOURS).join(',');
    const zs = await runCli(['zero-shot', '--checkpoint', ckpt, '--labels', labels, '--template', 'a {} square', '--threads', '1', '--json',
      ...[0, 1, 2, 3].map((i) => join(data, `img${i}.png`))]);
    expect(zs.code, zs.stderr).toBe(0);
    const res = JSON.parse(zs.stdout) as { labels: { label: string }[]; logits: number[] }[];
    expect(res.map((r) => r.labels[0]!.label)).toEqual(Object.keys(COLOURS));

    // back to Python's layouts, with the tokenizer: the same tensors, the same zero-shot logits
    const source = readClipCheckpoint(ckpt).stateDict;
    for (const [to, out, tokenizerFile] of [['openai', join(dir, 'oa', 'model.pt'), join(dir, 'oa', 'bpe_simple_vocab_16e6.txt.gz')], ['hf', join(dir, 'hf'), join(dir, 'hf', 'merges.txt')]] as const) {
      const c = await runCli(['convert', '--checkpoint', ckpt, '--to', to, '--out', out]);
      expect(c.code, c.stderr).toBe(0);
      expect(existsSync(tokenizerFile)).toBe(true);
      if (to === 'hf') {
        // the toy tokenizer is smaller than the model's vocabulary: HF pools the text at its own end-of-text id
        const text = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).text_config;
        expect([text.bos_token_id, text.eos_token_id]).toEqual([toyTokenizer().startId, toyTokenizer().endId]);
        expect(toyTokenizer().endId).toBeLessThan(767);
      }
      const back = readClipCheckpoint(out);
      expect(back.layout).toBe(to);
      expect(Object.keys(back.stateDict).sort()).toEqual(Object.keys(source).sort());
      for (const [k, v] of Object.entries(source)) expect([...back.stateDict[k]!.data], k).toEqual([...v.data]);
      const again = await runCli(['zero-shot', '--checkpoint', out, '--labels', labels, '--template', 'a {} square', '--threads', '1', '--json', join(data, 'img0.png')]);
      expect(again.code, again.stderr).toBe(0);
      const l = (JSON.parse(again.stdout) as { logits: number[] }[])[0]!.logits;
      l.forEach((v, i) => expect(Math.abs(v - res[0]!.logits[i]!)).toBeLessThan(1e-4));
    }
    const wrong = await runCli(['convert', '--checkpoint', ckpt, '--to', 'timm', '--out', join(dir, 'x.safetensors')]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr.trim()).toMatch(/^tessera: .* is a whole CLIP: convert it --to openai or --to hf, not timm$/);
  }, 240_000);

  it('bad input is one line each', async () => {
    const cases: [string[], RegExp][] = [
      [['--dataset', 'fashion-mnist'], /^tessera: pretrain --method clip reads an image–caption manifest \(a \.csv or \.jsonl of path,caption\), got --dataset fashion-mnist$/],
      [['--dataset', manifest, '--model-kwargs', 'context_length=4'], /^tessera: .*captions\.csv: text "a blue square" is \d+ tokens, longer than the context of 4 of clip_contrastive_tiny \(shorten it, or give a longer --model-kwargs context_length=N\)$/],
      [['--dataset', manifest, '--model-kwargs', 'vocab_size=100'], /^tessera: the tokenizer \(.*\) has \d+ tokens but clip_contrastive_tiny embeds 100; give --model-kwargs vocab_size=\d+$/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(['pretrain', '--method', 'clip', '--epochs', '1', '--output', join(dir, 'bad'), '--overwrite', ...args], { TESSERA_DATASET_MIRROR: 'http://127.0.0.1:9/' });
      expect(r.code, r.stderr).not.toBe(0);
      const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('tessera:'));
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(message);
    }
    const help = await runCli(['zero-shot', '--help']);
    expect(help.stdout).not.toMatch(/--model\b/);
  }, 120_000);
});
