/**
 * The rare-defect example end to end on data this test generates (examples/inspection): surfaces
 * with rare scratches at 1:20, trained with --class-weights balanced at the example's input size,
 * evaluated on the balanced test part with the scratch class as positive.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeSurfaceDataset, paintSurface } from '../../examples/inspection/make_surfaces.js';
import { Random } from '../../src/random.js';
import { runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-surfaces-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('examples/inspection: rare scratches', () => {
  it('a scratch changes the patch along a thin line only; the folders are 1:20 with a balanced test part', async () => {
    const ok = paintSurface(false, new Random(5)), scratched = paintSurface(true, new Random(5));
    const changed = ok.reduce((n, v, i) => n + (Math.abs(v - scratched[i]!) > 8 ? 1 : 0), 0);
    expect(changed).toBeGreaterThan(8);
    expect(changed).toBeLessThan(32 * 32 * 0.15);
    await makeSurfaceDataset(join(dir, 'data'), { ok: 200, ratio: 20, test: 20, seed: 2 });
    const count = (part: string, cls: string) => readdirSync(join(dir, 'data', part, cls)).length;
    expect([count('train', 'ok'), count('train', 'scratch')]).toEqual([200, 10]);
    expect([count('test', 'ok'), count('test', 'scratch')]).toEqual([20, 20]);
  }, 60_000);

  it('train --class-weights balanced --img-size 32 → eval with the scratch class positive', async () => {
    const out = join(dir, 'run');
    const t = await runCli(['train', '--dataset', join(dir, 'data'), '--model', 'vit_tiny_patch4_28', '--img-size', '32', '--epochs', '1',
      '--batch-size', '32', '--threads', '1', '--class-weights', 'balanced', '--output', out]);
    expect(t.code, t.stderr).toBe(0);
    const e = await runCli(['eval', '--checkpoint', join(out, 'last.safetensors'), '--dataset', join(dir, 'data', 'test'), '--positive-class', 'scratch', '--json']);
    expect(e.code, e.stderr).toBe(0);
    const m = JSON.parse(e.stdout).metrics;
    expect(m.binary.positiveClass).toBe('scratch');
    expect(m.binary.tp + m.binary.fn).toBe(20);
    expect(m.binary.tn + m.binary.fp).toBe(20);
  }, 120_000);
});
