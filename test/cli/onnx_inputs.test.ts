/**
 * `--checkpoint model.onnx` for the commands that need more than a forward pass (attack, explain,
 * export, convert): a float32 tessera export is rebuilt into the model it came from and gives the
 * checkpoint's results; an int8 export, a foreign or an empty file is refused in one line.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metaFor, readStateDict, saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { exportModel, quantizeExport } from '../../src/export/export.js';
import { createModel } from '../../src/models/registry.js';
import { buildProgram } from '../../src/cli/main.js';
import { runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-onnx-inputs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const isolated = { HOME: join(dir, 'home'), TESSERA_DATASET_MIRROR: 'http://127.0.0.1:9/', TESSERA_DATA: '' };
const ckpt = join(dir, 'model.safetensors');
const fp32 = join(dir, 'model.onnx');
const int8 = join(dir, 'model-int8.onnx');
const png = join(dir, 'shoe.png');
const lines = (s: string) => s.trim().split('\n').filter((l) => l && !l.startsWith('npm warn'));

beforeAll(async () => {
  const test = await loadBuiltinDataset('fashion-mnist', 'test');
  const model = createModel('vit_tiny_patch4_28', { numClasses: 10, seed: 3 });
  const meta = metaFor('vit_tiny_patch4_28', model, [...test.classNames]);
  saveCheckpoint(ckpt, model, meta);
  const exported = exportModel(model, meta);
  writeFileSync(fp32, exported.bytes);
  writeFileSync(int8, quantizeExport(exported).bytes);
  await sharp(Buffer.from(test.images.subarray(0, 784)), { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(png);
});

describe('a float32 .onnx export is rebuilt into its model', () => {
  it('attack gives the checkpoint\'s numbers', async () => {
    const args = ['attack', '--limit', '16', '--steps', '3', '--json'];
    const [a, b] = await Promise.all([runCli([...args, '--checkpoint', fp32], isolated), runCli([...args, '--checkpoint', ckpt], isolated)]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const { checkpoint: _a, ...fromOnnx } = JSON.parse(a.stdout);
    const { checkpoint: _b, ...fromCkpt } = JSON.parse(b.stdout);
    expect(fromOnnx).toEqual(fromCkpt);
  });

  it('explain (saliency, which needs input gradients) writes the checkpoint\'s map', async () => {
    const run = (checkpoint: string, out: string) => runCli(['explain', '--checkpoint', checkpoint, '--method', 'saliency', '--out', out, png], isolated);
    const [a, b] = await Promise.all([run(fp32, join(dir, 'ex-onnx')), run(ckpt, join(dir, 'ex-ckpt'))]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const map = (d: string) => JSON.parse(readFileSync(join(d, 'shoe.saliency.json'), 'utf8')).map;
    expect(map(join(dir, 'ex-onnx'))).toEqual(map(join(dir, 'ex-ckpt')));
  });

  it('export re-exports it and convert writes the checkpoint\'s weights', async () => {
    const [ex, cv] = await Promise.all([
      runCli(['export', '--checkpoint', fp32, '--out', join(dir, 'again.onnx'), '--samples', '2', '--json'], isolated),
      runCli(['convert', '--checkpoint', fp32, '--to', 'timm', '--out', join(dir, 'converted.safetensors')], isolated),
    ]);
    expect(ex.code, ex.stderr).toBe(0);
    expect(JSON.parse(ex.stdout).check.maxAbsDiff).toBeLessThan(1e-4);
    expect(cv.code, cv.stderr).toBe(0);
    const want = readStateDict(ckpt).state;
    const got = readStateDict(join(dir, 'converted.safetensors')).state;
    expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
    for (const k of Object.keys(want)) expect(got[k]!.data, k).toEqual(want[k]!.data);
  });
});

describe('files that cannot be rebuilt: one line each', () => {
  it('an int8 export: attack, explain, export and convert need the float weights', async () => {
    const runs = await Promise.all([
      runCli(['attack', '--checkpoint', int8, '--limit', '4'], isolated),
      runCli(['explain', '--checkpoint', int8, '--out', join(dir, 'never'), png], isolated),
      runCli(['export', '--checkpoint', int8, '--out', join(dir, 'never.onnx')], isolated),
      runCli(['convert', '--checkpoint', int8, '--to', 'hf', '--out', join(dir, 'never-hf')], isolated),
    ]);
    for (const [r, command] of runs.map((r, i) => [r, ['attack', 'explain', 'export', 'convert'][i]!] as const)) {
      expect(r.code, command).toBe(1);
      expect(lines(r.stderr)).toEqual([`tessera: ${int8} is int8-quantised (export --quantize int8): ${command} needs the float weights; give the checkpoint it was exported from (.safetensors), or an export without --quantize`]);
    }
  });

  it('an empty .onnx is reported as empty, not as missing metadata', async () => {
    const empty = join(dir, 'empty.onnx');
    writeFileSync(empty, '');
    const runs = await Promise.all([
      runCli(['eval', '--checkpoint', empty, '--limit', '4'], isolated),
      runCli(['attack', '--checkpoint', empty, '--limit', '4'], isolated),
    ]);
    for (const r of runs) {
      expect(r.code).toBe(1);
      expect(lines(r.stderr)).toEqual([`tessera: ${empty} is empty (0 bytes), not an ONNX model`]);
    }
  });
});

describe('--help says what --checkpoint accepts', () => {
  it.each([
    ['attack', 'float32 .onnx file from `tessera export` (the model is rebuilt from its weights)'],
    ['explain', 'float32 .onnx file from `tessera export` (the model is rebuilt from its weights)'],
    ['export', 'float32 .onnx file tessera exported'],
    ['convert', 'float32 .onnx file tessera exported'],
    ['eval', '.onnx file from `tessera export` (run as it is, int8 too)'],
    ['predict', '.onnx file from `tessera export` (run as it is, int8 too)'],
  ])('%s', (command, text) => {
    const help = buildProgram().commands.find((c) => c.name() === command)!.helpInformation();
    // commander wraps help at the terminal width: compare with the line breaks removed
    expect(help.replace(/\s+/g, ' ')).toContain(text);
  });
});
