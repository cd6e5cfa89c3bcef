/** Shared by the checkpoint tests: fixture paths, goldens and logits through the engine. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VisionTransformer, type VitConfig } from '../../src/models/vit.js';
import type { StateDict } from '../../src/nn/module.js';
import { compile } from '../../src/runtime/compile.js';
import { deterministicInput, fixturePath, readJsonFixture } from '../helpers/fixtures.js';

export const layoutFixture = (name: string): string => fixturePath(`layouts/${name}`);
export const goldens = readJsonFixture('layouts/goldens.json');

/** Logits of `config` with `state` loaded, on det_input of `inputShape` (as the generator's). */
export async function logitsOf(config: Partial<VitConfig>, state: StateDict, inputShape: number[]): Promise<Float32Array> {
  const model = new VisionTransformer(config);
  model.loadStateDict(state, true);
  const [b, c, h, w] = inputShape as [number, number, number, number];
  const exe = await compile((x) => model.forward(x).logits, [{ name: 'x', shape: ['batch', c, h, w] }], { params: 'initializers', threads: 1 });
  const out = await exe.run({ x: deterministicInput(b * c * h * w) });
  await exe.dispose();
  return out.output!.data as Float32Array;
}

export const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

const dirs: string[] = [];
export function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'tessera-ckpt-'));
  dirs.push(d);
  return d;
}
export function removeTempDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}
