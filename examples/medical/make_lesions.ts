/**
 * Synthetic dermoscopy-like lesions for the imbalanced-classes example: 28×28 grey images of a
 * dark lesion on textured skin. Benign lesions are near-round with a smooth border and even
 * pigment; malignant ones (the rare class) have an irregular border and an uneven, darker core —
 * two of the ABCD rule's cues. The size, contrast and position of both vary the same way, so only
 * the shape and pigment pattern tell them apart.
 * Writes class folders train/ (1:20, as screening data), val/ (1:20) and test/ (balanced, so
 * that per-class recall is measured on enough rare images). No download, no Python.
 *
 *   npx tsx examples/medical/make_lesions.ts data/lesions [--benign 2000] [--ratio 20] [--test 200] [--seed 1]
 */
import { join } from 'node:path';
import { Random } from '../../src/random.js';
import { writeGreyClassFolders } from '../class_folders.js';

const SIZE = 28;
export const LESION_CLASSES = ['benign', 'malignant'] as const;

/** One lesion image (grey, HW) of the given class. */
export function paintLesion(malignant: boolean, rng: Random): Uint8Array {
  const img = new Uint8Array(SIZE * SIZE);
  const cx = SIZE / 2 + (rng.uniform() - 0.5) * 6, cy = SIZE / 2 + (rng.uniform() - 0.5) * 6;
  const radius = 5 + rng.uniform() * 4, squash = 0.75 + 0.25 * rng.uniform(), tilt = rng.uniform() * Math.PI;
  // border irregularity: radial bumps of random frequency; the classes overlap a little
  const bumps = 3 + rng.int(5), amp = malignant ? 0.18 + 0.2 * rng.uniform() : 0.1 * rng.uniform(), phase = rng.uniform() * 6.3;
  const skin = 170 + 40 * rng.uniform(), contrast = 60 + 50 * rng.uniform();
  const core = malignant ? 0.3 + 0.4 * rng.uniform() : 0.15 * rng.uniform();
  const coreX = (rng.uniform() - 0.5) * radius * 0.8, coreY = (rng.uniform() - 0.5) * radius * 0.8;
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const dx = x - cx, dy = y - cy;
      const u = dx * Math.cos(tilt) + dy * Math.sin(tilt), v = (-dx * Math.sin(tilt) + dy * Math.cos(tilt)) / squash;
      const r = Math.hypot(u, v), theta = Math.atan2(v, u);
      const edge = radius * (1 + amp * Math.sin(bumps * theta + phase));
      const inside = 1 / (1 + Math.exp((r - edge) * 2)); // soft border
      const spot = Math.exp(-((dx - coreX) ** 2 + (dy - coreY) ** 2) / (2 * (radius * 0.35) ** 2));
      const value = skin - inside * contrast * (1 + core * spot) + 6 * Math.sin(x * 0.9 + y * 0.4) + 10 * (rng.uniform() - 0.5);
      img[y * SIZE + x] = Math.max(0, Math.min(255, Math.round(value)));
    }
  }
  return img;
}

/** Writes each class's count of images into DIR/<class>/. */
export const writeLesions = (dir: string, counts: Record<(typeof LESION_CLASSES)[number], number>, rng: Random) =>
  writeGreyClassFolders(dir, SIZE, counts, (cls, r) => paintLesion(cls === 'malignant', r), rng);

/** train/ and val/ at 1:ratio, test/ balanced. */
export async function makeLesionDataset(root: string, { benign = 2000, ratio = 20, test = 200, seed = 1 } = {}): Promise<void> {
  const rng = new Random(seed);
  await writeLesions(join(root, 'train'), { benign, malignant: Math.round(benign / ratio) }, rng);
  await writeLesions(join(root, 'val'), { benign: Math.round(benign / 5), malignant: Math.max(1, Math.round(benign / 5 / ratio)) }, rng);
  await writeLesions(join(root, 'test'), { benign: test, malignant: test }, rng);
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const args = process.argv.slice(2);
  const root = args.find((a) => !a.startsWith('--')) ?? 'data/lesions';
  const flag = (name: string, d: number) => { const i = args.indexOf(`--${name}`); return i >= 0 ? Number(args[i + 1]) : d; };
  await makeLesionDataset(root, { benign: flag('benign', 2000), ratio: flag('ratio', 20), test: flag('test', 200), seed: flag('seed', 1) });
  console.log(`wrote ${root}/{train,val,test}`);
}
