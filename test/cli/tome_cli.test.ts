/**
 * Token merging on a checkpoint trained without it, through the commands: `export --model-kwargs
 * tome_r=4` writes a graph whose merge is inside it (TopK, GatherElements, ScatterElements), whose
 * metadata carries tome_r, and which ORT runs at any batch size with what tessera computes;
 * `predict --model-kwargs` answers with the merged model; a key that would change the weights is
 * refused with exit 2 and nothing written.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metaFor, saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { createModel } from '../../src/models/registry.js';
import { decodeModel } from '../../src/onnx/proto.js';
import { inspectOnnxModel, loadOnnxModel } from '../../src/runtime/onnx_model.js';
import { runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-tome-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const ckpt = join(dir, 'model.safetensors');
const classes = Array.from({ length: 10 }, (_, i) => `c${i}`);

beforeAll(() => {
  const model = createModel('vit_tiny_patch4_28', { numClasses: 10, seed: 3 });
  saveCheckpoint(ckpt, model, metaFor('vit_tiny_patch4_28', model, classes));
});

const image = (seed: number) => Float32Array.from({ length: 784 }, (_, i) => Math.sin(0.37 * i * (seed + 1)) * 0.5 + 0.5);

describe('tome_r on a checkpoint trained without it', () => {
  it('export puts the merge in the graph; ORT runs it at batch 1 and 4 alike', async () => {
    const out = join(dir, 'tome.onnx');
    const plainOut = join(dir, 'plain.onnx');
    const [r, p] = await Promise.all([
      runCli(['export', '--checkpoint', ckpt, '--out', out, '--model-kwargs', 'tome_r=4', '--json']),
      runCli(['export', '--checkpoint', ckpt, '--out', plainOut, '--json']),
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(p.code, p.stderr).toBe(0);
    const ops = new Set((decodeModel(readFileSync(out)).graph?.node ?? []).map((n) => n.opType));
    for (const op of ['TopK', 'GatherElements', 'ScatterElements']) expect(ops.has(op), op).toBe(true);
    expect((inspectOnnxModel(out).meta.config as { tomeR: number }).tomeR).toBe(4);
    const merged = await loadOnnxModel(out);
    const plain = await loadOnnxModel(plainOut);
    const four = new Float32Array(4 * 784);
    for (let k = 0; k < 4; k++) four.set(image(k), k * 784);
    const all = await merged.executable.run({ x: { data: four, shape: [4, 1, 28, 28] } });
    const one = await merged.executable.run({ x: { data: image(2), shape: [1, 1, 28, 28] } });
    const base = await plain.executable.run({ x: { data: four, shape: [4, 1, 28, 28] } });
    const a = all.logits!.data as Float32Array;
    const b = one.logits!.data as Float32Array;
    for (let i = 0; i < 10; i++) expect(Math.abs(a[20 + i]! - b[i]!)).toBeLessThanOrEqual(1e-5);
    const c = base.logits!.data as Float32Array;
    expect(Math.max(...Array.from(a, (v, i) => Math.abs(v - c[i]!)))).toBeGreaterThan(1e-4);
    await merged.dispose();
    await plain.dispose();
  }, 120_000);

  it('a key that changes the weights is refused, exit 2, nothing written', async () => {
    const out = join(dir, 'bad.onnx');
    const [r, shallower] = await Promise.all([
      runCli(['export', '--checkpoint', ckpt, '--out', out, '--model-kwargs', 'embed_dim=48']),
      runCli(['export', '--checkpoint', ckpt, '--out', out, '--model-kwargs', 'depth=1']),
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--model-kwargs embed_dim change the model's weights \(cls_token\)/);
    expect(shallower.code).toBe(2);
    expect(shallower.stderr).toMatch(/--model-kwargs depth change the model's weights \(blocks\.1\.\S+ would be dropped\)/);
    expect(existsSync(out)).toBe(false);
    const unknown = await runCli(['export', '--checkpoint', ckpt, '--out', out, '--model-kwargs', 'tome=4']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown key tome; known keys of vit: .*tome_r/);
  }, 120_000);
});
