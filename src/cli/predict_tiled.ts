/**
 * `tessera predict --tile N`: sliding-window inference (src/predict/tiled.ts) for images larger
 * than the model's input, with --stride or --overlap, --aggregate mean|max and --tile-map
 * writing the per-tile class map over the image as a PNG.
 */
import { Option, type Command } from 'commander';
import { writeFileAtomic } from '../checkpoint/atomic.js';
import { classMapPng } from '../data/image/class_map_png.js';
import type { EvalTransform } from '../data/image/image.js';
import { startCutThread } from '../predict/tile_cutter.js';
import { decodeForTiles, displayImage, predictTiles, tileClassMap, type TileAggregate, type TileOptions, type TiledPrediction } from '../predict/tiled.js';
import type { Executable } from '../runtime/compile.js';
import { topK, type LabelScore } from '../serve/prediction.js';
import { imagePathsOf } from '../data/datasets/image_paths.js';
import { UsageError } from './output.js';
import { positiveInt } from './parse.js';

export interface TileFlags { tile?: number; stride?: number; overlap?: number; aggregate: TileAggregate; tileMap?: string }

export function addTileOptions(cmd: Command): Command {
  return cmd
    .option('--tile <n>', 'sliding-window inference: tiles of n×n image pixels, each through the eval transform, batched (--batch-size)', positiveInt('--tile'))
    .option('--stride <n>', 'with --tile: pixels between tiles (default tile / 2, 50% overlap); the last row and column end at the edge', positiveInt('--stride'))
    .addOption(new Option('--overlap <f>', 'with --tile: overlap fraction in [0, 1) instead of --stride (stride = round(tile · (1 − f)))').argParser((v) => {
      const f = Number(v);
      if (!(f >= 0 && f < 1)) throw new UsageError(`--overlap must be in [0, 1), got "${v}"`);
      return f;
    }).conflicts('stride'))
    .addOption(new Option('--aggregate <how>', 'with --tile: image probabilities are the mean or max of the tiles\'').choices(['mean', 'max']).default('mean'))
    .option('--tile-map <out.png>', 'with --tile and one image: write each pixel\'s class (highest mean probability of the tiles covering it) over the image');
}

export function tileOptionsOf(f: TileFlags & { batchSize: number }): TileOptions | undefined {
  if (f.tile === undefined) {
    const stray = f.stride !== undefined ? '--stride' : f.overlap !== undefined ? '--overlap' : f.tileMap !== undefined ? '--tile-map' : undefined;
    if (stray) throw new UsageError(`${stray} needs --tile`);
    return undefined;
  }
  const stride = f.stride ?? Math.max(1, Math.round(f.tile * (1 - (f.overlap ?? 0.5))));
  return { tile: f.tile, stride, aggregate: f.aggregate, batchSize: f.batchSize };
}

export interface TiledOutput { image: string; top: LabelScore[]; probabilities: number[]; tiles: { left: number; top: number; width: number; height: number; class: string; probability: number }[] }

/** Tiled prediction of one image file, and its class map PNG when asked. */
export async function predictTiledImage(path: string, exe: Executable, transform: EvalTransform, classNames: readonly string[], o: TileOptions, topk: number, tileMap?: string): Promise<TiledOutput> {
  const decoded = await decodeForTiles(path, transform, path);
  const classes = classNames.length;
  const run = async (x: Float32Array) => (await exe.run({ x })).logits!.data as Float32Array;
  const p = await predictTiles(decoded, transform, run, classes, o, path);
  if (tileMap) await writeTileMap(decoded, p, classes, tileMap);
  return {
    image: path,
    top: topK(p.probabilities.map(Math.log), classNames, topk).map((t) => ({ ...t, probability: p.probabilities[t.index]! })),
    probabilities: Array.from(p.probabilities),
    tiles: p.tiles.map((t) => {
      let best = 0;
      for (let k = 1; k < classes; k++) if (t.probabilities[k]! > t.probabilities[best]!) best = k;
      return { left: t.left, top: t.top, width: t.width, height: t.height, class: classNames[best]!, probability: t.probabilities[best]! };
    }),
  };
}

/** The class map at most 2048 pixels on the longer side. */
async function writeTileMap(decoded: Parameters<typeof displayImage>[0], p: TiledPrediction, classes: number, out: string): Promise<void> {
  const scale = Math.min(1, 2048 / Math.max(p.width, p.height));
  const m = tileClassMap(p, classes, scale);
  writeFileAtomic(out, await classMapPng(displayImage(decoded, m.width, m.height), m.map, classes));
}

/** Every image of `args`, one at a time (its tiles batched); an unreadable one is reported and the others answered. */
export async function predictTiledImages(args: string[], exe: Executable, transform: EvalTransform, classNames: readonly string[], o: TileOptions,
  f: { topk: number; tileMap?: string }, write: (p: TiledOutput) => Promise<void>): Promise<{ failed: number; total: number }> {
  let failed = 0, total = 0;
  // one cutting thread for all the images: it cuts the next batch of tiles while the model runs
  const cutter = startCutThread();
  try {
    for await (const a of imagePathsOf(args)) {
      total++;
      if (f.tileMap && total > 1) throw new UsageError(`--tile-map ${f.tileMap} takes one image; ${args.join(' ')} names more`);
      if ('error' in a) { failed++; process.stderr.write(`tessera: ${a.error}\n`); continue; }
      try {
        await write(await predictTiledImage(a.path, exe, transform, classNames, { ...o, cutter }, f.topk, f.tileMap));
      } catch (e) {
        failed++;
        process.stderr.write(`tessera: ${(e as Error).message}\n`);
      }
    }
  } finally {
    await cutter.close();
  }
  return { failed, total };
}
