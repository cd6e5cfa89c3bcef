/**
 * Image folders the loader tests write: Fashion-MNIST test images as PNG and JPEG in class
 * folders, generated RGB photos in several formats, a CMYK JPEG, and broken files.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import type { TensorDataset } from '../../src/data/datasets/dataset.js';

/** A w×h RGB image: smooth gradients and a disc, different per seed. */
export function gradientImage(w: number, h: number, seed: number): Buffer {
  const px = Buffer.alloc(w * h * 3);
  const [a, b, c] = [(seed * 37) % 255, (seed * 91) % 255, (seed * 53) % 255];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      const inDisc = (x - w / 2) ** 2 + (y - h / 3) ** 2 < (Math.min(w, h) / 4) ** 2;
      px[i] = inDisc ? 255 - a : (a + (x * 255) / w) % 256;
      px[i + 1] = inDisc ? 40 : (b + (y * 255) / h) % 256;
      px[i + 2] = (c + ((x + y) * 128) / (w + h)) % 256;
    }
  }
  return px;
}

export const rawRgb = (w: number, h: number, seed: number) => sharp(gradientImage(w, h, seed), { raw: { width: w, height: h, channels: 3 } });

export interface FashionFolder {
  dir: string;
  /** per written file: path, its class folder and the dataset image it came from */
  files: { path: string; folder: string; source: number; format: 'png' | 'jpg' }[];
  source: TensorDataset;
}

/** `perClass` Fashion-MNIST test images of each class, alternately PNG and JPEG, in folders named after the classes. */
export async function writeFashionFolder(dir: string, perClass: number): Promise<FashionFolder> {
  const source = await loadBuiltinDataset('fashion-mnist', 'test');
  const files: FashionFolder['files'] = [];
  const seen = new Array<number>(10).fill(0);
  for (let i = 0; i < source.length && files.length < perClass * 10; i++) {
    const label = source.labels[i]!;
    if (seen[label]! >= perClass) continue;
    const n = seen[label]!++;
    const folder = source.classNames[label]!.replace('/', '-');
    mkdirSync(join(dir, folder), { recursive: true });
    const format = n % 2 === 0 ? 'png' : 'jpg';
    const path = join(dir, folder, `${String(i).padStart(5, '0')}.${format}`);
    const img = sharp(Buffer.from(source.images.subarray(i * 784, (i + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } });
    await (format === 'png' ? img.png() : img.jpeg({ quality: 92 })).toFile(path);
    files.push({ path, folder, source: i, format });
  }
  return { dir, files, source };
}

/** Names of the broken files writeMixedFolder adds (class "broken"). */
export const BROKEN = ['truncated.jpg', 'random-bytes.png', 'empty.webp'];

/**
 * Classes "cmyk" (a CMYK JPEG), "formats" (WebP, GIF, TIFF, AVIF, RGBA PNG, 16-bit PNG, EXIF-rotated
 * JPEG), "photos" (RGB JPEGs of several sizes) and "broken" (two good images and the BROKEN files),
 * plus a non-image file that datasets ignore.
 */
export async function writeMixedFolder(dir: string): Promise<void> {
  for (const c of ['cmyk', 'formats', 'photos', 'broken']) mkdirSync(join(dir, c), { recursive: true });
  // one CMYK JPEG: libvips converts it through an ICC profile, ~60 ms each
  await rawRgb(40, 30, 1).toColourspace('cmyk').jpeg({ quality: 90 }).toFile(join(dir, 'cmyk', 'c0.jpg'));
  const f = (name: string) => join(dir, 'formats', name);
  await rawRgb(48, 36, 10).webp({ quality: 90 }).toFile(f('a.webp'));
  await rawRgb(48, 36, 11).gif().toFile(f('b.gif'));
  await rawRgb(48, 36, 12).tiff().toFile(f('c.tiff'));
  await rawRgb(48, 36, 13).avif({ quality: 70 }).toFile(f('d.avif'));
  await rawRgb(48, 36, 14).ensureAlpha(0.5).png().toFile(f('e.png'));
  await rawRgb(48, 36, 15).toColourspace('rgb16').png().toFile(f('f.png'));
  await rawRgb(48, 36, 16).jpeg().withMetadata({ orientation: 6 }).toFile(f('g.jpg'));
  for (let i = 0; i < 6; i++) await rawRgb(64 + 16 * i, 48 + 8 * i, 20 + i).jpeg({ quality: 85 }).toFile(join(dir, 'photos', `p${i}.jpg`));
  await rawRgb(50, 40, 30).png().toFile(join(dir, 'broken', 'good1.png'));
  await rawRgb(50, 40, 31).jpeg().toFile(join(dir, 'broken', 'good2.jpg'));
  const jpeg = await rawRgb(50, 40, 32).jpeg().toBuffer();
  writeFileSync(join(dir, 'broken', BROKEN[0]!), jpeg.subarray(0, jpeg.length >> 1));
  writeFileSync(join(dir, 'broken', BROKEN[1]!), Buffer.from(Array.from({ length: 500 }, (_, i) => (i * 7919) % 256)));
  writeFileSync(join(dir, 'broken', BROKEN[2]!), Buffer.alloc(0));
  writeFileSync(join(dir, 'photos', 'notes.txt'), 'not an image\n');
}
