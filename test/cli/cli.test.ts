/**
 * The CLI as a user runs it: train → eval → predict on real Fashion-MNIST, and one clear error
 * line (non-zero exit) for each kind of bad input.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
// keep every run away from the real home cache and the network
const isolated = { HOME: join(dir, 'home'), TESSERA_DATASET_MIRROR: 'http://127.0.0.1:9/', TESSERA_DATA: '' };

let trainJson: { runDir: string; top1: number };
let trainLog = '';
beforeAll(async () => {
  const r = await runCli(['train', '--epochs', '1', '--train-limit', '640', '--eval-limit', '200', '--batch-size', '64',
    '--output', join(dir, 'run'), '--json'], isolated);
  expect(r.code, r.stderr).toBe(0);
  trainJson = JSON.parse(r.stdout.trim().split('\n').pop()!);
  trainLog = r.stderr;
}, 300_000);

describe('tessera train', () => {
  it('--model-kwargs changes the architecture; the checkpoint carries it to eval', async () => {
    const out = join(dir, 'kwargs');
    const r = await runCli(['train', '--model-kwargs', 'depth=2', 'global_pool=avg class_token=false', '--epochs', '1', '--train-limit', '128',
      '--eval-limit', '50', '--batch-size', '64', '--output', out, '--json'], isolated);
    expect(r.code, r.stderr).toBe(0);
    const { readStateDict } = await import('../../src/checkpoint/checkpoint.js');
    const { state, metadata } = readStateDict(join(out, 'last.safetensors'));
    expect(Object.keys(state).some((k) => k.startsWith('blocks.2.'))).toBe(false);
    expect(Object.keys(state)).toContain('blocks.1.attn.qkv.weight');
    expect(Object.keys(state)).not.toContain('cls_token');
    expect(Object.keys(state)).toContain('fc_norm.weight');
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).modelKwargs).toEqual({ depth: 2, globalPool: 'avg', classToken: false });
    expect(Object.values(metadata).join(' ')).toMatch(/"depth":2/);
    const ev = await runCli(['eval', '--checkpoint', join(out, 'last.safetensors'), '--limit', '50', '--json'], isolated);
    expect(ev.code, ev.stderr).toBe(0);
  }, 120_000);

  it('prints the test accuracy as JSON and writes the run directory', () => {
    expect(trainJson.runDir).toBe(join(dir, 'run'));
    expect(trainJson.top1).toBeGreaterThan(0.1);
    for (const f of ['report.html', 'loss.png', 'accuracy.png', 'confusion.png']) expect(existsSync(join(dir, 'run', f)), f).toBe(true);
    const cfg = JSON.parse(readFileSync(join(dir, 'run', 'config.json'), 'utf8'));
    expect(cfg).toMatchObject({ model: 'vit_tiny_patch4_28', dataset: 'fashion-mnist', epochs: 1, trainLimit: 640, lr: 0.002 });
  });

  it('says that one epoch with the default one warm-up epoch is all warm-up', () => {
    expect(trainLog).toContain('warning: --warmup-epochs 1 covers all 1 epoch: the whole run is linear warm-up (from --warmup-lr 0.000001 to --lr 0.002) and the cosine schedule never starts; give fewer (e.g. --warmup-epochs 0.2)');
  });

  it('logs plain progress lines (rate, ETA) when stderr is not a terminal', () => {
    const steps = trainLog.split('\n').filter((l) => l.startsWith('epoch 1/1 step'));
    expect(steps.length).toBeGreaterThanOrEqual(5);
    expect(steps.at(-1)).toMatch(/^epoch 1\/1 step 10\/10 loss \d+\.\d{4} lr \S+ \d+ img\/s run ETA \S+$/);
    expect(trainLog).toMatch(/epoch 1\/1: train loss \d\.\d+, test top-1 \d+\.\d\d%/);
  });
});

describe('Ctrl-C', () => {
  it('saves a resumable state, exits 130, and --resume finishes the run', async () => {
    const out = join(dir, 'interrupted');
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', 'train', '--epochs', '2', '--train-limit', '1280', '--eval-limit', '100',
      '--batch-size', '32', '--output', out], { cwd: fileURLToPath(new URL('../../', import.meta.url)), env: { ...process.env, ...isolated }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const code = await new Promise<number>((resolve) => {
      child.stderr.on('data', (d) => {
        stderr += d;
        // interrupt once the first epoch is well under way
        if (/epoch 1\/2 step (1[0-9]|[2-9][0-9])\//.test(stderr) && !child.killed) child.kill('SIGINT');
      });
      child.on('close', (c) => resolve(c ?? -1));
    });
    expect(code).toBe(130);
    expect(stderr).toContain(`interrupted; resume with: npx tessera train --resume ${out}`);
    expect(existsSync(join(out, 'state.safetensors'))).toBe(true);
    const r = await runCli(['train', '--resume', out, '--json'], isolated);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/resuming .* at epoch 1, batch \d+ of 40/);
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!).epochs).toBe(2);
  });

  it('refuses flags that would change a resumed run', async () => {
    const r = await runCli(['train', '--resume', join(dir, 'run'), '--lr', '0.1'], isolated);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('--resume continues a run with its saved configuration; remove --lr');
  });
});

describe('tessera eval', () => {
  it('reports the same top-1 as training did on the same images, as numbers in [0, 1]', async () => {
    const r = await runCli(['eval', '--checkpoint', join(dir, 'run', 'last.safetensors'), '--limit', '200', '--json'], isolated);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.top1).toBeCloseTo(trainJson.top1, 10);
    expect(out.top5).toBeGreaterThanOrEqual(out.top1);
    expect(out.top5).toBeLessThanOrEqual(1);
    expect(out.count).toBe(200);
    expect(out.perClass).toHaveLength(10);
    expect(out.perClass[9].name).toBe('Ankle boot');
    expect(out.confusion.flat().reduce((a: number, b: number) => a + b, 0)).toBe(200);
  });

  it('prints a readable table without --json', async () => {
    const r = await runCli(['eval', '--checkpoint', join(dir, 'run', 'best.safetensors'), '--limit', '50'], isolated);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/images 50 {3}top-1 \d+\.\d\d% {3}top-5/);
    expect(r.stdout).toContain('confusion matrix');
  });
});

describe('tessera predict', () => {
  it('classifies PNG and JPEG files and agrees with eval on the same image', async () => {
    const test = await loadBuiltinDataset('fashion-mnist', 'test');
    const png = join(dir, 'boot.png');
    await sharp(Buffer.from(test.images.subarray(0, 784)), { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(png);
    const jpg = join(dir, 'boot-rgb.jpg');
    await sharp(Buffer.from(test.images.subarray(0, 784)), { raw: { width: 28, height: 28, channels: 1 } }).resize(84, 84).toColourspace('srgb').jpeg({ quality: 95 }).toFile(jpg);
    const r = await runCli(['predict', '--checkpoint', join(dir, 'run', 'last.safetensors'), png, jpg, '--topk', '10', '--json'], isolated);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toHaveLength(2);
    for (const img of out) {
      expect(img.top).toHaveLength(10);
      expect(img.logits).toHaveLength(10);
      expect(img.top.reduce((s: number, t: { probability: number }) => s + t.probability, 0)).toBeCloseTo(1, 5);
      // probabilities are the softmax of the printed logits
      const m = Math.max(...img.logits);
      const z = img.logits.reduce((s: number, v: number) => s + Math.exp(v - m), 0);
      expect(img.top[0].probability).toBeCloseTo(Math.exp(img.logits[img.top[0].index] - m) / z, 5);
    }
    // the PNG is the dataset image itself: same prediction as evaluating the checkpoint on test image 0
    const e = await runCli(['eval', '--checkpoint', join(dir, 'run', 'last.safetensors'), '--limit', '1', '--json'], isolated);
    const confusion: number[][] = JSON.parse(e.stdout).confusion;
    const predicted = confusion[9]!.findIndex((v) => v === 1);
    expect(out[0].top[0].index).toBe(predicted);
  });

  it('names an unreadable image', async () => {
    const bad = join(dir, 'not-an-image.png');
    writeFileSync(bad, 'hello');
    const r = await runCli(['predict', '--checkpoint', join(dir, 'run', 'last.safetensors'), bad], isolated);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`${bad}: not a readable image`);
  });
});

/** A copy of Debian's Fashion-MNIST files in `target`, to corrupt or to rename. */
function copyFashionMnist(target: string): string {
  mkdirSync(target, { recursive: true });
  for (const f of ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']) {
    copyFileSync(join('/usr/share/datasets/fashion-mnist', f), join(target, f));
  }
  return target;
}

describe('exported .onnx files', () => {
  it('eval and predict accept them and agree with the checkpoint', async () => {
    const onnx = join(dir, 'model.onnx');
    const ex = await runCli(['export', '--checkpoint', join(dir, 'run', 'last.safetensors'), '--out', onnx], isolated);
    expect(ex.code, ex.stderr).toBe(0);
    const e = await runCli(['eval', '--checkpoint', onnx, '--limit', '200', '--json'], isolated);
    expect(e.code, e.stderr).toBe(0);
    expect(JSON.parse(e.stdout).top1).toBeCloseTo(trainJson.top1, 10);
    const png = join(dir, 'onnx-input.png');
    const test = await loadBuiltinDataset('fashion-mnist', 'test');
    await sharp(Buffer.from(test.images.subarray(784, 1568)), { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(png);
    const [a, b] = await Promise.all([
      runCli(['predict', '--checkpoint', onnx, png, '--json'], isolated),
      runCli(['predict', '--checkpoint', join(dir, 'run', 'last.safetensors'), png, '--json'], isolated),
    ]);
    expect(a.code, a.stderr).toBe(0);
    const [la, lb] = [JSON.parse(a.stdout)[0].logits as number[], JSON.parse(b.stdout)[0].logits as number[]];
    expect(Math.max(...la.map((v, i) => Math.abs(v - lb[i]!)))).toBeLessThan(1e-4);
  });
});

describe('plain timm checkpoints', () => {
  it('evaluates a safetensors file without tessera metadata when given --model', async () => {
    const { readStateDict } = await import('../../src/checkpoint/checkpoint.js');
    const { writeSafetensors } = await import('../../src/checkpoint/safetensors.js');
    const { state } = readStateDict(join(dir, 'run', 'last.safetensors'));
    const plain = join(dir, 'plain-timm.safetensors');
    writeSafetensors(plain, Object.fromEntries(Object.entries(state).map(([k, t]) => [k, { shape: t.shape, data: t.data }])));
    const without = await runCli(['eval', '--checkpoint', plain, '--limit', '200', '--json'], isolated);
    expect(without.code).not.toBe(0);
    expect(without.stderr).toContain('carries no tessera metadata; pass --model NAME');
    const r = await runCli(['eval', '--checkpoint', plain, '--model', 'vit_tiny_patch4_28', '--limit', '200', '--json'], isolated);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).top1).toBeCloseTo(trainJson.top1, 10);
  });
});

describe('bad input: one line, non-zero exit, nothing written', () => {
  const oneLine = (r: { stderr: string }) => r.stderr.trim().split('\n').filter((l) => !l.startsWith('npm warn'));

  it('unknown flag', async () => {
    const r = await runCli(['train', '--nosuch', '1'], isolated);
    expect(r.code).toBe(2);
    expect(oneLine(r)).toEqual(["tessera: unknown option '--nosuch' (see --help)"]);
  });

  it('negative learning rate', async () => {
    const out = join(dir, 'never');
    const r = await runCli(['train', '--lr', '-1', '--output', out], isolated);
    expect(r.code).not.toBe(0);
    expect(oneLine(r)).toEqual(['tessera: invalid option: --lr must be >0, got -1']);
    expect(() => readFileSync(join(out, 'config.json'))).toThrow();
  });

  it('--model-kwargs: unknown keys and bad values', async () => {
    const unknown = await runCli(['train', '--model-kwargs', 'embed_dim=64', 'widht=3', '--output', join(dir, 'never4')], isolated);
    expect(unknown.code).not.toBe(0);
    expect(oneLine(unknown)[0]).toMatch(/^tessera: invalid option: --model-kwargs unknown key widht; known keys: embed_dim, depth, num_heads, /);
    const badStride = await runCli(['train', '--model-kwargs', 'stem_strides=[1,3]', '--output', join(dir, 'never4')], isolated);
    expect(oneLine(badStride)[0]).toMatch(/--model-kwargs stem_strides\[1\]: each stride must be 1 or 2;/);
    // these pass the schema and fail when the model is built: still before the run directory exists
    const heads = await runCli(['train', '--model-kwargs', 'num_heads=5', '--output', join(dir, 'never4')], isolated);
    expect(heads.code).not.toBe(0);
    expect(oneLine(heads).at(-1)).toMatch(/^tessera: Attention: dim 96 is not divisible by 5 heads$/);
    const stem = await runCli(['train', '--model-kwargs', 'stem_width=16', '--output', join(dir, 'never4')], isolated);
    expect(oneLine(stem).at(-1)).toMatch(/--model-kwargs stem_width configure a convolutional stem, but vit_tiny_patch4_28 has embed_layer=patch/);
    const bad = await runCli(['train', '--model-kwargs', 'depth=0', '--output', join(dir, 'never4')], isolated);
    expect(oneLine(bad)[0]).toMatch(/^tessera: invalid option: --model-kwargs depth: .*>0/);
    const noValue = await runCli(['train', '--model-kwargs', 'depth', '--output', join(dir, 'never4')], isolated);
    expect(oneLine(noValue)[0]).toMatch(/--model-kwargs takes key=value pairs, got "depth"/);
    expect(existsSync(join(dir, 'never4'))).toBe(false);
  });

  it('list flags: a colour jitter of two values, a crop scale of one', async () => {
    const jitter = await runCli(['train', '--color-jitter', '0.1,0.2', '--output', join(dir, 'never3')], isolated);
    expect(jitter.code).toBe(2);
    expect(oneLine(jitter)).toEqual(['tessera: invalid option: --color-jitter needs at least 3 values, got [0.1,0.2]']);
    const scale = await runCli(['train', '--scale', '0.5', '--output', join(dir, 'never3')], isolated);
    expect(oneLine(scale)).toEqual(['tessera: invalid option: --scale needs at least 2 values, got [0.5]']);
  });

  it('a missing dataset says where to put the files', async () => {
    const r = await runCli(['train', '--dataset', 'cifar10', '--data-dir', join(dir, 'empty'), '--output', join(dir, 'never2')], isolated);
    expect(r.code).not.toBe(0);
    const lines = oneLine(r);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(join(dir, 'empty'));
    expect(lines[0]).toContain('cifar-10-binary.tar.gz');
  });

  it('a corrupt IDX file is named with what was expected', async () => {
    const data = copyFashionMnist(join(dir, 'corrupt', 'fashion-mnist'));
    writeFileSync(join(data, 't10k-images-idx3-ubyte.gz'), Buffer.from([0, 0, 8, 3, 0, 0, 0, 1]));
    const r = await runCli(['eval', '--checkpoint', join(dir, 'run', 'last.safetensors'), '--data-dir', join(dir, 'corrupt')], isolated);
    expect(r.code).not.toBe(0);
    const lines = oneLine(r);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('t10k-images-idx3-ubyte.gz');
  });

  it("a checkpoint whose classes don't match the dataset", async () => {
    // an MNIST-shaped dataset: the same images, digit class names
    const data = copyFashionMnist(join(dir, 'digits', 'mnist'));
    const r = await runCli(['eval', '--checkpoint', join(dir, 'run', 'last.safetensors'), '--dataset', 'mnist', '--data-dir', join(dir, 'digits')], isolated);
    expect(r.code).not.toBe(0);
    expect(oneLine(r)).toEqual([expect.stringContaining('was trained on other classes (10: T-shirt/top, Trouser, Pullover, Dress, …) than mnist has (10: 0, 1, 2, 3, …)')]);
  });

  it('a checkpoint file that does not exist', async () => {
    const r = await runCli(['eval', '--checkpoint', join(dir, 'nope.safetensors')], isolated);
    expect(r.code).not.toBe(0);
    expect(oneLine(r)).toEqual([`tessera: checkpoint ${join(dir, 'nope.safetensors')} does not exist`]);
  });
});
