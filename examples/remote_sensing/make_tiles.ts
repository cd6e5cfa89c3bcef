/**
 * Synthetic 4-band (blue, green, red, near-infrared) 16-bit satellite tiles for the
 * remote-sensing example: four land-cover classes with the spectral signatures that tell them
 * apart in real imagery (water dark in NIR, vegetation bright in NIR and dark in red, bare soil
 * bright and flat, built-up grey with a street grid), field/shoreline texture and sensor noise.
 * Writes train/ and val/ class folders of 512×512 tiles and a 2048×2048 scene of 4×4 tiles
 * for tiled inference, as uncompressed TIFFs (no download, no Python).
 *
 *   npx tsx examples/remote_sensing/make_tiles.ts data/remote_sensing [--train 24] [--val 8]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Random } from '../../src/random.js';

const CLASSES = ['water', 'vegetation', 'bare_soil', 'built_up'] as const;
type Cls = (typeof CLASSES)[number];
// mean reflectance per band [B, G, R, NIR] (0..1), from typical surface reflectance curves
const SIGNATURE: Record<Cls, number[]> = {
  water: [0.08, 0.06, 0.04, 0.02],
  vegetation: [0.04, 0.08, 0.05, 0.45],
  bare_soil: [0.12, 0.16, 0.22, 0.28],
  built_up: [0.16, 0.17, 0.18, 0.2],
};
const SIZE = 512;

/** One 512×512 tile of `cls` into `out` (HWC, 4 bands) at offset (ox, oy) of a `stride`-wide raster. */
function paintTile(cls: Cls, rng: Random, out: Uint16Array, stride: number, ox: number, oy: number): void {
  const sig = SIGNATURE[cls];
  const fx = 2 + rng.uniform() * 6, fy = 2 + rng.uniform() * 6, phase = rng.uniform() * 6.3;
  const block = 24 + rng.int(24);
  const bright = 0.8 + 0.4 * rng.uniform();
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const u = x / SIZE, v = y / SIZE;
      // texture: field rows for vegetation, ripples for water, dunes for soil, a street grid for built-up
      let tex = 0;
      if (cls === 'vegetation') tex = 0.25 * Math.sin(2 * Math.PI * (fx * u + 0.3 * fy * v) + phase);
      else if (cls === 'water') tex = 0.1 * Math.sin(2 * Math.PI * fy * 3 * v + phase);
      else if (cls === 'bare_soil') tex = 0.15 * Math.sin(2 * Math.PI * (fx * u) + phase) * Math.cos(2 * Math.PI * fy * v);
      else tex = (x % block < 3 || y % block < 3) ? -0.35 : 0.1 * Math.sin(x * 0.7 + y * 1.3);
      for (let b = 0; b < 4; b++) {
        const r = sig[b]! * bright * (1 + tex) + 0.01 * (rng.uniform() - 0.5);
        out[((oy + y) * stride + ox + x) * 4 + b] = Math.max(0, Math.min(65535, Math.round(r * 65535)));
      }
    }
  }
}

/** A baseline TIFF: 4 × 16-bit samples per pixel, chunky, one strip, uncompressed, little-endian. */
function tiffBytes(data: Uint16Array, width: number, height: number): Uint8Array {
  const entries: [number, number, number, number][] = [ // tag, type, count, value
    [256, 4, 1, width], [257, 4, 1, height], [258, 3, 4, 0], [259, 3, 1, 1], [262, 3, 1, 1],
    [273, 4, 1, 0], [277, 3, 1, 4], [278, 4, 1, height], [279, 4, 1, data.byteLength], [284, 3, 1, 1], [338, 3, 1, 0], [339, 3, 1, 1],
  ];
  const ifdSize = 2 + entries.length * 12 + 4;
  const bitsAt = 8 + ifdSize, dataAt = bitsAt + 8;
  entries[2]![3] = bitsAt;
  entries[5]![3] = dataAt;
  const buf = new Uint8Array(dataAt + data.byteLength);
  const v = new DataView(buf.buffer);
  buf.set([0x49, 0x49, 42, 0]);
  v.setUint32(4, 8, true);
  v.setUint16(8, entries.length, true);
  entries.forEach(([tag, type, count, value], i) => {
    const e = 10 + i * 12;
    v.setUint16(e, tag, true); v.setUint16(e + 2, type, true); v.setUint32(e + 4, count, true);
    if (type === 3 && count === 1) v.setUint16(e + 8, value, true); else v.setUint32(e + 8, value, true);
  });
  for (let b = 0; b < 4; b++) v.setUint16(bitsAt + b * 2, 16, true);
  for (let i = 0; i < data.length; i++) v.setUint16(dataAt + i * 2, data[i]!, true);
  return buf;
}

const args = process.argv.slice(2);
const root = args.find((a) => !a.startsWith('--')) ?? 'data/remote_sensing';
const opt = (name: string, d: number) => { const i = args.indexOf(name); return i >= 0 ? Number(args[i + 1]) : d; };
const counts = { train: opt('--train', 24), val: opt('--val', 8) };
const rng = new Random(24);
for (const [split, n] of Object.entries(counts)) {
  for (const cls of CLASSES) {
    const dir = join(root, split, cls);
    mkdirSync(dir, { recursive: true });
    for (let i = 0; i < n; i++) {
      const tile = new Uint16Array(SIZE * SIZE * 4);
      paintTile(cls, rng, tile, SIZE, 0, 0);
      writeFileSync(join(dir, `${cls}_${i}.tif`), tiffBytes(tile, SIZE, SIZE));
    }
  }
  process.stderr.write(`${split}: ${n * CLASSES.length} tiles\n`);
}
// the scene: a 4×4 mosaic whose layout is printed, so the tile map can be checked by eye
const scene = new Uint16Array(4 * SIZE * 4 * SIZE * 4);
const layout: Cls[][] = [];
for (let ty = 0; ty < 4; ty++) {
  layout.push([]);
  for (let tx = 0; tx < 4; tx++) {
    const cls = CLASSES[(tx + 2 * ty + (tx * ty) % 3) % 4]!;
    layout[ty]!.push(cls);
    paintTile(cls, rng, scene, 4 * SIZE, tx * SIZE, ty * SIZE);
  }
}
writeFileSync(join(root, 'scene.tif'), tiffBytes(scene, 4 * SIZE, 4 * SIZE));
writeFileSync(join(root, 'scene_layout.json'), `${JSON.stringify(layout)}\n`);
process.stderr.write(`scene.tif: 2048×2048, layout ${JSON.stringify(layout)}\n`);
