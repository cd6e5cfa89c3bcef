/** `tessera export` as a user runs it: the file, the checks it prints, and one-line errors. */
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metaFor, saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { createModel } from '../../src/models/registry.js';
import { loadOnnxModel } from '../../src/runtime/onnx_model.js';
import { runCli as runTessera } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-export-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const FASHION = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
let checkpoint: string;

const isolated = { HOME: join(dir, 'home'), TESSERA_DATASET_MIRROR: 'http://127.0.0.1:9/', TESSERA_DATA: '' };
const exportCli = (args: string[]) => runTessera(['export', ...args], isolated);

beforeAll(() => {
  const model = createModel('vit_tiny_patch4_28', { seed: 11 });
  checkpoint = join(dir, 'model.safetensors');
  saveCheckpoint(checkpoint, model, metaFor('vit_tiny_patch4_28', model, FASHION));
});

describe('tessera export', () => {
  it('writes a verified fp32 model and reports it as JSON', async () => {
    const out = join(dir, 'fp32.onnx');
    const r = await exportCli(['--checkpoint', checkpoint, '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({ out, model: 'vit_tiny_patch4_28', opset: 17, input: 'input', inputFormat: 'float32_nchw', labels: 10, quantization: 'none' });
    expect(s.bytes).toBe(statSync(out).size);
    expect(s.check.samples).toBe(8);
    expect(s.check.maxAbsDiff).toBeLessThanOrEqual(1e-5);
    const m = await loadOnnxModel(out);
    expect(m.meta.classNames).toEqual(FASHION);
    await m.dispose();
  });

  it('--quantize int8 --verify fashion-mnist: size, speed at batch 1 and 32, and accuracy against fp32', async () => {
    const out = join(dir, 'int8.onnx');
    const r = await exportCli(['--checkpoint', checkpoint, '--out', out, '--quantize', 'int8', '--verify', 'fashion-mnist', '--verify-limit', '300', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.quantization).toBe('int8_dynamic');
    expect(s.int8).toMatchObject({ weights: 26, perChannel: true, int8Bytes: statSync(out).size });
    expect(s.int8.int8Bytes).toBeLessThan(s.int8.fp32Bytes / 3);
    expect(s.int8.speed.map((x: { batchSize: number }) => x.batchSize)).toEqual([1, 32]);
    for (const x of s.int8.speed) expect(x.fp32Ms > 0 && x.int8Ms > 0).toBe(true);
    expect(s.int8.accuracy).toMatchObject({ dataset: 'fashion-mnist/test[0:300]', images: 300 });
    expect(Math.abs(s.int8.accuracy.dropPoints - 100 * (s.int8.accuracy.fp32Top1 - s.int8.accuracy.int8Top1))).toBeLessThan(1e-9);
  });

  it('--quantize int8 --quantize-calibration fashion-mnist: static int8 calibrated on N training images; --fused-attention', async () => {
    const out = join(dir, 'static.onnx');
    const r = await exportCli(['--checkpoint', checkpoint, '--out', out, '--quantize', 'int8', '--quantize-calibration', 'fashion-mnist',
      '--quantize-calibration-limit', '64', '--fused-attention', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.quantization).toBe('int8_static');
    expect(s.fusedAttention).toBe(6);
    expect(s.int8).toMatchObject({ weights: 26, perChannel: true, calibration: { dataset: 'fashion-mnist/train[0:64]', images: 64 } });
    const m = await loadOnnxModel(out);
    expect(m.meta.quantization).toBe('int8_static');
    await m.dispose();
    const text = await exportCli(['--checkpoint', checkpoint, '--out', join(dir, 'static2.onnx'), '--quantize', 'int8', '--quantize-calibration', 'fashion-mnist', '--quantize-calibration-limit', '32']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^int8 static, calibrated on fashion-mnist\/train\[0:32\]: 26 weight matmuls, per output channel, weights in ±64; /m);
  });

  it('--attention-map adds the rollout output that serve reads, and says so', async () => {
    const out = join(dir, 'attn.onnx');
    const r = await exportCli(['--checkpoint', checkpoint, '--out', out, '--attention-map', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ out, attentionMap: true });
    const m = await loadOnnxModel(out);
    try {
      expect([m.attentionMap, m.attentionSize]).toEqual([true, 49]);
      const x = new Float32Array(2 * 28 * 28).map((_, i) => Math.sin(0.05 * i));
      const { logits, attention } = await m.runWithAttention(x);
      expect(logits).toHaveLength(20);
      // a rollout row is a distribution over the 7×7 patches
      expect(attention).toHaveLength(2 * 49);
      for (let b = 0; b < 2; b++) {
        const row = attention!.subarray(b * 49, (b + 1) * 49);
        expect(Math.min(...row)).toBeGreaterThanOrEqual(0);
      }
    } finally {
      await m.dispose();
    }
    // without the flag the file has the logits only
    const plain = await loadOnnxModel(join(dir, 'fp32.onnx'));
    expect(plain.attentionMap).toBe(false);
    await plain.dispose();
    const text = await exportCli(['--checkpoint', checkpoint, '--out', join(dir, 'attn2.onnx'), '--attention-map']);
    expect(text.stdout.split('\n')[0]).toMatch(/, with attention_map$/);
  });

  it('prints a readable report', async () => {
    const r = await exportCli(['--checkpoint', checkpoint, '--out', join(dir, 'pre.onnx'), '--preprocess', '--opset', '18']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^wrote .*pre\.onnx: vit_tiny_patch4_28, \d\.\d\d MB, opset 18, input "image" uint8 pixels \[batch, H, W, C\], 10 labels$/);
    expect(lines[1]).toMatch(/^check: fp32 export in ORT vs tessera on 8 images: max \|Δlogit\| \d\.\d\de-\d+, top-1 agrees on 8\/8$/);
  });

  it('--help lists --verify and not --calibrate (which export refuses, naming --verify and `tessera calibrate`)', async () => {
    const r = await exportCli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/--verify <dataset>/);
    expect(r.stdout).not.toMatch(/--calibrate\b/);
    expect(r.stdout).toMatch(/--quantize-calibration <dataset>/);
  });

  it('bad input: one error line, a non-zero exit code, and no file', async () => {
    const cases: [string[], number, RegExp][] = [
      [['--opset', '16'], 2, /^tessera: option '--opset <n>' argument '16' is invalid\. --opset must be an integer from 17 to 21, got "16" \(see --help\)$/],
      [['--quantize', 'int4'], 2, /^tessera: option '--quantize <kind>' argument 'int4' is invalid\. Allowed choices are int8\. \(see --help\)$/],
      [['--per-tensor'], 2, /^tessera: --per-tensor, --full-range-weights and --exclude only apply with --quantize int8$/],
      [['--full-range-weights'], 2, /^tessera: --per-tensor, --full-range-weights and --exclude only apply with --quantize int8$/],
      [['--verify', 'cifar10', '--data-dir', dir], 1, /^tessera: /],
      [['--quantize', 'int8', '--calibrate', 'fashion-mnist'], 2,
        /^tessera: export has no --calibrate: --quantize-calibration fashion-mnist calibrates static int8 on the set, --verify fashion-mnist measures accuracy on it, and `tessera calibrate` fits temperature scaling into the checkpoint before export$/],
      [['--quantize-calibration', 'fashion-mnist'], 2, /^tessera: --quantize-calibration only applies with --quantize int8$/],
      [['--quantize', 'int8', '--quantize-calibration', 'fashion-mnist', '--quantize-calibration-limit', '0'], 2, /^tessera: option '--quantize-calibration-limit <n>' argument '0' is invalid\./],
      [['--quantize', 'int8', '--quantize-calibration', 'cifar10', '--data-dir', dir], 1, /^tessera: /],
    ];
    for (const [extra, code, message] of cases) {
      const out = join(dir, 'bad', 'x.onnx');
      const r = await exportCli(['--checkpoint', checkpoint, '--out', out, ...extra]);
      expect(r.code, extra.join(' ')).toBe(code);
      expect(r.stderr.trim(), extra.join(' ')).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(existsSync(out)).toBe(false);
    }
    const missing = await exportCli(['--checkpoint', join(dir, 'nope.safetensors'), '--out', join(dir, 'y.onnx')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe(`tessera: checkpoint ${join(dir, 'nope.safetensors')} does not exist`);
    expect(readdirSync(dir).filter((f) => f.startsWith('.'))).toEqual([]); // no temp files left behind
  });
});
