/**
 * The imbalanced-classes example end to end on data this test generates (examples/medical):
 * a 1:20 lesion folder trains with --class-weights balanced and --sampler balanced, and eval on the
 * balanced test part reports balanced accuracy and the rare class's sensitivity.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeLesionDataset } from '../../examples/medical/make_lesions.js';
import { runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-lesions-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('examples/medical: imbalanced lesions', () => {
  it('generates 1:20 train/val and a balanced test part', async () => {
    await makeLesionDataset(join(dir, 'data'), { benign: 200, ratio: 20, test: 20, seed: 3 });
    const count = (part: string, cls: string) => readdirSync(join(dir, 'data', part, cls)).length;
    expect([count('train', 'benign'), count('train', 'malignant')]).toEqual([200, 10]);
    expect([count('val', 'benign'), count('val', 'malignant')]).toEqual([40, 2]);
    expect([count('test', 'benign'), count('test', 'malignant')]).toEqual([20, 20]);
  }, 60_000);

  for (const flags of [['--class-weights', 'balanced', '--loss', 'focal'], ['--sampler', 'balanced']]) {
    it(`train ${flags.join(' ')} → eval reports balanced accuracy and sensitivity`, async () => {
      const out = join(dir, `run-${flags[1]}-${flags.length}`);
      const t = await runCli(['train', '--dataset', join(dir, 'data'), '--model', 'vit_tiny_patch4_28', '--epochs', '1', '--batch-size', '32',
        '--threads', '1', '--output', out, ...flags]);
      expect(t.code, t.stderr).toBe(0);
      const e = await runCli(['eval', '--checkpoint', join(out, 'last.safetensors'), '--dataset', join(dir, 'data', 'test'), '--positive-class', 'malignant', '--json']);
      expect(e.code, e.stderr).toBe(0);
      const m = JSON.parse(e.stdout).metrics;
      expect(m.balancedAccuracy).toBeGreaterThanOrEqual(0);
      expect(m.balancedAccuracy).toBeLessThanOrEqual(1);
      expect(m.binary.positiveClass).toBe('malignant');
      expect(m.binary.tp + m.binary.fn).toBe(20);
    }, 120_000);
  }

  it('a bad --class-weights is one line naming it', async () => {
    const r = await runCli(['train', '--dataset', join(dir, 'data'), '--model', 'vit_tiny_patch4_28', '--epochs', '1', '--class-weights', '1,2,3', '--output', join(dir, 'bad')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/--class-weights 1,2,3: 3 weights for 2 classes/);
  }, 60_000);
});
