/** For the generated-data examples: grey images painted per class, written as PNGs into DIR/<class>/. */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Random } from '../src/random.js';

export async function writeGreyClassFolders<C extends string>(dir: string, size: number, counts: Record<C, number>,
  paint: (cls: C, rng: Random) => Uint8Array, rng: Random): Promise<void> {
  for (const cls of Object.keys(counts) as C[]) {
    mkdirSync(join(dir, cls), { recursive: true });
    for (let i = 0; i < counts[cls]; i++) {
      await sharp(Buffer.from(paint(cls, rng)), { raw: { width: size, height: size, channels: 1 } }).png().toFile(join(dir, cls, `${String(i).padStart(5, '0')}.png`));
    }
  }
}
