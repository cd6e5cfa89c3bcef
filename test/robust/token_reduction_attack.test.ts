/**
 * `tessera attack` on token-reducing models (issue #21): a small trained ViT attacked with token
 * merging switched on (`--model-kwargs tome_r=2`, a checkpoint trained without it) and as a
 * DynamicViT checkpoint (ρ = 0.5, the trained weights and fresh score predictors). The input
 * gradient has to pass the merge (GatherElements, ScatterElements) and the top-k selection: if it
 * did not, PGD would leave the accuracy where it was.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { VisionTransformer } from '../../src/models/vit.js';
import { runCommand } from '../explain/program.js';
import { trainSmallModel } from './small_model.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-attack-reduce-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const plain = join(dir, 'plain.safetensors');
const pruning = join(dir, 'dynamicvit.safetensors');
const data = ['--dataset', 'fashion-mnist', '--data-dir', '/usr/share/datasets/fashion-mnist', '--threads', '1', '--limit', '100', '--json'];

beforeAll(async () => {
  const small = await trainSmallModel();
  small.save(plain);
  const dyn = new VisionTransformer({ ...small.model.config, dynamicKeep: 0.5 });
  const trained = new Map(small.model.namedState());
  for (const [k, p] of dyn.namedState()) if (trained.has(k)) p.data.set(trained.get(k)!.data);
  expect(dyn.pruneLocs).toEqual([1]); // depth 2: one stage, before block 1, keeping 8 of 16 patches
  saveCheckpoint(pruning, dyn, { ...small.meta, config: { ...dyn.config } });
}, 120_000);

describe('tessera attack on token-reducing models', () => {
  for (const [name, args] of [
    ['ToMe r=2 on a checkpoint trained without it', ['--checkpoint', plain, '--model-kwargs', 'tome_r=2']],
    ['a DynamicViT checkpoint (top-k selection in the graph)', ['--checkpoint', pruning]],
  ] as const) {
    it(`${name}: PGD lowers the accuracy inside its budget`, async () => {
      const r = await runCommand(['attack', ...args, ...data]);
      expect(r.code, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.count).toBe(100);
      expect(j.cleanAccuracy).toBeGreaterThan(0.5);
      expect(j.robustAccuracy).toBeLessThan(j.cleanAccuracy - 0.2);
      expect(j.adversarialLoss).toBeGreaterThan(j.cleanLoss);
      expect(j.maxPerturbation.linf).toBeLessThanOrEqual(0.1);
    }, 15_000);
  }
});
