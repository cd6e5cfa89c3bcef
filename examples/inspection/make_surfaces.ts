/**
 * Synthetic surface-inspection images for the rare-defect example: 32×32 grey patches of a
 * machined or brushed surface (oriented grain, its direction and pitch varying, lighting
 * gradient and sensor noise). A defect is a thin scratch at any angle, slightly darker or lighter
 * than the grain — rare (1:20 in train and val) and small, as in line inspection. Writes class
 * folders train/, val/ and a balanced test/. No download, no Python.
 *
 *   npx tsx examples/inspection/make_surfaces.ts data/surfaces [--ok 2000] [--ratio 20] [--test 200] [--seed 1]
 */
import { join } from 'node:path';
import { Random } from '../../src/random.js';
import { writeGreyClassFolders } from '../class_folders.js';

const SIZE = 32;
export const SURFACE_CLASSES = ['ok', 'scratch'] as const;

/** One surface patch (grey, HW), with a scratch when `defect`. */
export function paintSurface(defect: boolean, rng: Random): Uint8Array {
  const img = new Uint8Array(SIZE * SIZE);
  const grain = rng.uniform() * Math.PI, pitch = 1.5 + rng.uniform() * 2.5, phase = rng.uniform() * 6.3;
  const base = 110 + 60 * rng.uniform(), depth = 8 + 10 * rng.uniform();
  const gx = (rng.uniform() - 0.5) * 1.5, gy = (rng.uniform() - 0.5) * 1.5;
  // the scratch: a segment through a random point, 1–2 px wide, 10–26 px long
  const sx = 6 + rng.uniform() * 20, sy = 6 + rng.uniform() * 20, angle = rng.uniform() * Math.PI;
  const half = 5 + rng.uniform() * 8, width = 0.6 + rng.uniform() * 0.6, contrast = (rng.uniform() < 0.5 ? -1 : 1) * (22 + 18 * rng.uniform());
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const along = x * Math.cos(grain) + y * Math.sin(grain);
      let v = base + depth * Math.sin((2 * Math.PI * along) / pitch + phase) + gx * x + gy * y + 12 * (rng.uniform() - 0.5);
      if (defect) {
        const dx = x - sx, dy = y - sy;
        const t = dx * Math.cos(angle) + dy * Math.sin(angle), d = Math.abs(-dx * Math.sin(angle) + dy * Math.cos(angle));
        if (Math.abs(t) <= half) v += contrast * Math.exp(-(d * d) / (2 * width * width));
      }
      img[y * SIZE + x] = Math.max(0, Math.min(255, Math.round(v)));
    }
  }
  return img;
}

/** Writes each class's count of images into DIR/<class>/. */
export const writeSurfaces = (dir: string, counts: Record<(typeof SURFACE_CLASSES)[number], number>, rng: Random) =>
  writeGreyClassFolders(dir, SIZE, counts, (cls, r) => paintSurface(cls === 'scratch', r), rng);

/** train/ and val/ at 1:ratio, test/ balanced. */
export async function makeSurfaceDataset(root: string, { ok = 2000, ratio = 20, test = 200, seed = 1 } = {}): Promise<void> {
  const rng = new Random(seed);
  await writeSurfaces(join(root, 'train'), { ok, scratch: Math.round(ok / ratio) }, rng);
  await writeSurfaces(join(root, 'val'), { ok: Math.round(ok / 5), scratch: Math.max(1, Math.round(ok / 5 / ratio)) }, rng);
  await writeSurfaces(join(root, 'test'), { ok: test, scratch: test }, rng);
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const args = process.argv.slice(2);
  const root = args.find((a) => !a.startsWith('--')) ?? 'data/surfaces';
  const flag = (name: string, d: number) => { const i = args.indexOf(`--${name}`); return i >= 0 ? Number(args[i + 1]) : d; };
  await makeSurfaceDataset(root, { ok: flag('ok', 2000), ratio: flag('ratio', 20), test: flag('test', 200), seed: flag('seed', 1) });
  console.log(`wrote ${root}/{train,val,test}`);
}
