/**
 * `tessera explain` end to end on Fashion-MNIST images: overlay and grid PNGs (decoded), raw maps
 * as JSON and .npy (header parsed), class selection, SmoothGrad, and one-line errors that write
 * nothing.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { metaFor, saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { resizeBilinear, normaliseMinMax } from '../../src/explain/index.js';
import { VisionTransformer } from '../../src/models/vit.js';
import { deterministicValues } from '../helpers/fixtures.js';
import { runCommand } from './program.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-explain-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const ckpt = join(dir, 'model.safetensors');
const images: string[] = [];
let classNames: string[] = [];

beforeAll(async () => {
  const test = await loadBuiltinDataset('fashion-mnist', 'test', { dataDir: '/usr/share/datasets/fashion-mnist' });
  classNames = [...test.classNames];
  const model = new VisionTransformer({ imgSize: 28, patchSize: 4, inChans: 1, numClasses: 10, embedDim: 48, depth: 2, numHeads: 3, mlpRatio: 2 });
  for (const [k, p] of model.namedParameters()) p.data = deterministicValues(k, p.size);
  saveCheckpoint(ckpt, model, metaFor('vit_tiny_patch4_28', model, classNames, { mean: [0.286], std: [0.353] }));
  mkdirSync(join(dir, 'a'));
  mkdirSync(join(dir, 'b'));
  for (const [i, path] of [[0, join(dir, 'a', 'shoe.png')], [1, join(dir, 'b', 'shoe.png')]] as const) {
    await sharp(Buffer.from(test.images.subarray(i * 784, (i + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(path);
    images.push(path);
  }
  // a larger colour JPEG: resized and converted to the model's one channel on load
  const big = join(dir, 'big.jpg');
  await sharp(Buffer.from(test.images.subarray(2 * 784, 3 * 784)), { raw: { width: 28, height: 28, channels: 1 } }).resize(84, 84).toColourspace('srgb').jpeg().toFile(big);
  images.push(big);
});

function parseNpy(bytes: Buffer): { descr: string; shape: number[]; data: Float32Array } {
  expect([...bytes.subarray(0, 8)]).toEqual([0x93, ...Buffer.from('NUMPY'), 1, 0]);
  const len = bytes.readUInt16LE(8);
  expect((10 + len) % 64).toBe(0);
  const header = bytes.subarray(10, 10 + len).toString('latin1');
  expect(header.endsWith('\n')).toBe(true);
  const descr = /'descr': '([^']+)'/.exec(header)![1]!;
  expect(header).toContain("'fortran_order': False");
  const shape = /'shape': \(([^)]*)\)/.exec(header)![1]!.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const body = bytes.subarray(10 + len);
  const data = new Float32Array(body.length / 4).map((_, i) => body.readFloatLE(i * 4));
  expect(data.length).toBe(shape.reduce((a, b) => a * b, 1));
  return { descr, shape, data };
}

describe('tessera explain', () => {
  it('writes overlay PNGs at display size, grids and .npy maps, and a JSON summary', async () => {
    const out = join(dir, 'rollout');
    const r = await runCommand(['explain', '--checkpoint', ckpt, ...images, '--method', 'rollout', '--out', out, '--grid', '--format', 'npy', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary).toHaveLength(3);
    expect(summary.map((s: any) => s.files.map((f: string) => f.slice(out.length + 1)))).toEqual([
      ['shoe.rollout.png', 'shoe.rollout.grid.png', 'shoe.rollout.npy', 'shoe.rollout.grid.npy'],
      ['shoe-2.rollout.png', 'shoe-2.rollout.grid.png', 'shoe-2.rollout.npy', 'shoe-2.rollout.grid.npy'],
      ['big.rollout.png', 'big.rollout.grid.png', 'big.rollout.npy', 'big.rollout.grid.npy'],
    ]);
    for (const s of summary) {
      expect(s.explained).toEqual(s.predicted);
      expect(classNames).toContain(s.predicted.label);
      const overlay = await sharp(s.files[0]).metadata();
      expect([overlay.format, overlay.width, overlay.height, overlay.channels]).toEqual(['png', 224, 224, 3]);
      // rollout: 2 blocks in one row of 112-pixel tiles with 16-pixel labels and 4-pixel gaps
      const grid = await sharp(s.files[1]).metadata();
      expect([grid.width, grid.height]).toEqual([2 * 116 + 4, 132 + 4]);
      const map = parseNpy(readFileSync(s.files[2]));
      expect(map.descr).toBe('<f4');
      expect(map.shape).toEqual([7, 7]);
      expect(map.data.every((v) => v >= 0 && v <= 1)).toBe(true);
      const stack = parseNpy(readFileSync(s.files[3]));
      expect(stack.shape).toEqual([2, 7, 7]);
      expect(stack.data.subarray(49)).toEqual(map.data);
    }
  });

  it('colours the overlay with viridis: with --alpha 1 the hottest pixel is viridis(1), the coldest viridis(0)', async () => {
    const out = join(dir, 'attention');
    const r = await runCommand(['explain', '--checkpoint', ckpt, images[0]!, '--method', 'attention', '--out', out, '--alpha', '1', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const [s] = JSON.parse(r.stdout);
    const doc = JSON.parse(readFileSync(join(out, 'shoe.attention.json'), 'utf8'));
    expect(doc).toMatchObject({ method: 'attention', shape: [7, 7], class: s.explained, predicted: s.predicted });
    const v = normaliseMinMax(resizeBilinear(Float32Array.from(doc.map.flat()), 7, 7, 224, 224));
    const { data } = await sharp(s.files[0]).raw().toBuffer({ resolveWithObject: true });
    const px = (i: number) => [...data.subarray(i * 3, i * 3 + 3)];
    expect(px(v.indexOf(1))).toEqual([0xfd, 0xe7, 0x25]);
    expect(px(v.indexOf(0))).toEqual([0x44, 0x01, 0x54]);
  });

  it('explains the class given by index or name; saliency with SmoothGrad gives a 28×28 map', async () => {
    const out = join(dir, 'saliency');
    const byName = await runCommand(['explain', '--checkpoint', ckpt, images[0]!, '--method', 'saliency', '--smoothgrad', '4', '--class', 'trouser', '--out', out, '--json', '--grid']);
    expect(byName.code, byName.stderr).toBe(0);
    expect(JSON.parse(byName.stdout)[0].explained.label).toBe('Trouser');
    const doc = JSON.parse(readFileSync(join(out, 'shoe.saliency.json'), 'utf8'));
    expect(doc.shape).toEqual([28, 28]);
    expect(doc.options.smoothgrad).toBe(4);
    expect(doc.grid).toHaveLength(1);
    const byIndex = await runCommand(['explain', '--checkpoint', ckpt, images[0]!, '--method', 'grad-rollout', '--class', '5', '--out', out]);
    expect(byIndex.code, byIndex.stderr).toBe(0);
    expect(byIndex.stdout).toMatch(/explaining Sandal\n/);
  });

  it.each([
    [['--method', 'gradcam'], /--method.*gradcam.*attention, rollout, grad-rollout, saliency/],
    [['--discard-ratio', '1.5'], /--discard-ratio must be a number in \[0, 1\), got "1.5"/],
    [['--alpha', 'x'], /--alpha must be a number in \[0, 1\], got "x"/],
    [['--class', 'Sock'], /--class "Sock" is not a class index or name of the checkpoint \(classes: T-shirt\/top, Trouser/],
    [['--class', '12'], /--class 12 is out of range: the checkpoint has 10 classes/],
    [['--smoothgrad', '8'], /--smoothgrad applies to --method saliency, not rollout/],
    [['--discard-ratio', '0.5', '--method', 'attention'], /--discard-ratio applies to --method rollout, not attention/],
    [['missing.png'], /missing\.png: cannot be read \(ENOENT\)/],
  ])('rejects %j with one line and writes nothing', async (extra, message) => {
    const out = join(dir, 'bad');
    const r = await runCommand(['explain', '--checkpoint', ckpt, images[0]!, '--out', out, ...extra]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^tessera: /);
    expect(r.stderr).toMatch(message);
    expect(existsSync(out) && readdirSync(out).length > 0).toBe(false);
  });

  it('names a missing checkpoint', async () => {
    const r = await runCommand(['explain', '--checkpoint', join(dir, 'nope.safetensors'), images[0]!, '--out', join(dir, 'x')]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`tessera: checkpoint ${join(dir, 'nope.safetensors')} does not exist`);
  });
});
