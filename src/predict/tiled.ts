/**
 * Sliding-window (tiled) inference for images larger than the model's input, as remote-sensing
 * and inspection users run it: tiles of `tile` pixels every `stride` pixels (the last row and
 * column are moved in to end at the image's edge, so every pixel is covered and no tile is
 * padded), each tile through the model's eval transform exactly as plain predict would put a
 * file of that size through it (tile_input.ts), the tiles batched, softmax per tile, and the
 * image's probabilities the mean or max of its tiles'. The image is decoded once.
 */
import { decodeBandsIfNeeded } from '../data/image/band_decode.js';
import { decodeFull } from '../data/image/image_decode.js';
import type { EvalTransform } from '../data/transforms/transform_config.js';
import type { TileBox, TileSource } from './tile_input.js';
import { inlineCutter, type TileCutter, type TileJob } from './tile_cutter.js';

export type { TileBox, TileSource } from './tile_input.js';

export type TileAggregate = 'mean' | 'max';

export interface TileOptions {
  /** tile side in image pixels */
  tile: number;
  /** step between tiles (tile / 2 is 50% overlap) */
  stride: number;
  aggregate: TileAggregate;
  /** tiles per model run */
  batchSize: number;
  /** who cuts the tiles (tile_cutter.ts): this thread between runs (default), or a cutting thread meanwhile */
  cutter?: TileCutter;
}

export interface TileResult extends TileBox { probabilities: Float32Array }

/** Where a tiled prediction's time went, in milliseconds summed over its batches. */
export interface TileTimings {
  /** this thread's time cutting and normalising tiles into the batch, or waiting for a cutting thread to have done so */
  cut: number;
  /** the model runs (from handing a batch over to getting its logits, less the cutting done meanwhile) */
  run: number;
  /** softmax per tile and the aggregate */
  result: number;
  batches: number;
}

export interface TiledPrediction {
  width: number;
  height: number;
  tiles: TileResult[];
  /** the aggregate of the tiles' probabilities */
  probabilities: Float32Array;
  timings: TileTimings;
}

/** Starts along one axis: 0, stride, 2·stride, … and a last one ending at the edge (a tile larger than the side is clipped to it). */
export function tileStarts(size: number, tile: number, stride: number): number[] {
  const t = Math.min(tile, size);
  const starts: number[] = [];
  for (let s = 0; s + t <= size; s += stride) starts.push(s);
  if (starts[starts.length - 1]! + t < size) starts.push(size - t);
  return starts;
}

/** The tile boxes of a width × height image, row by row. */
export function tileGrid(width: number, height: number, tile: number, stride: number): TileBox[] {
  const xs = tileStarts(width, tile, stride), ys = tileStarts(height, tile, stride);
  return ys.flatMap((top) => xs.map((left) => ({ left, top, width: Math.min(tile, width), height: Math.min(tile, height) })));
}

export async function decodeForTiles(input: string | Uint8Array, t: EvalTransform, label: string): Promise<TileSource> {
  const read = await decodeBandsIfNeeded(input, t.inputSize[0], label);
  return read instanceof Uint8Array ? { kind: 'pixels', img: await decodeFull(read, label) } : { kind: 'bands', img: read };
}

export function softmax(row: Float32Array): Float32Array {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  const out = new Float32Array(row.length);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += (out[i] = Math.exp(row[i]! - max));
  for (let i = 0; i < row.length; i++) out[i]! /= sum;
  return out;
}

/**
 * Model runs: a batch of n inputs [n, C, H, W] → logits [n, classes]. `x` is lent for the call:
 * it is refilled once the returned promise has settled, so a runner must have read it (or copied
 * it) by then.
 */
export type RunBatch = (x: Float32Array, n: number) => Promise<Float32Array>;

/**
 * Tiles `d` and classifies every tile, `o.batchSize` tiles per run. Two batch buffers are
 * allocated once and take turns: one is being cut (tile_cutter.ts) while the runner holds the
 * other. With the default cutter the cutting happens on this thread, between runs; with a
 * cutting thread (`o.cutter`, startCutThread) it overlaps the model's work.
 */
export async function predictTiles(d: TileSource, t: EvalTransform, run: RunBatch, classes: number, o: TileOptions, label = 'image'): Promise<TiledPrediction> {
  const { width, height } = d.img;
  const boxes = tileGrid(width, height, o.tile, o.stride);
  const per = t.inputSize[0] * t.inputSize[1] * t.inputSize[2];
  const capacity = Math.min(o.batchSize, boxes.length);
  const cutter = o.cutter ?? inlineCutter;
  const job: TileJob = { image: d, transform: t, boxes, label };
  const timings: TileTimings = { cut: 0, run: 0, result: 0, batches: 0 };
  const tiles: TileResult[] = [];
  const queue: { start: number; n: number; x: Promise<Float32Array> }[] = [];
  let nextStart = 0;
  /** Asks for the next batch to be cut into `buffer`; the time this thread spends on it counts as cutting. */
  const request = (buffer: Float32Array) => {
    if (nextStart >= boxes.length) return;
    const t0 = performance.now();
    const n = Math.min(o.batchSize, boxes.length - nextStart);
    const x = cutter.cut(job, nextStart, n, buffer);
    x.catch(() => undefined); // awaited in turn below; a batch cut ahead of a failed run is not an unhandled rejection
    queue.push({ start: nextStart, n, x });
    nextStart += n;
    timings.cut += performance.now() - t0;
  };
  const started = performance.now();
  try {
    request(new Float32Array(capacity * per));
    if (boxes.length > capacity) request(new Float32Array(capacity * per));
    while (queue.length > 0) {
      const cur = queue.shift()!;
      let t0 = performance.now();
      const full = await cur.x;
      timings.cut += performance.now() - t0;
      timings.batches++;
      const logits = await run(full.subarray(0, cur.n * per), cur.n);
      request(full);
      t0 = performance.now();
      for (let i = 0; i < cur.n; i++) tiles.push({ ...boxes[cur.start + i]!, probabilities: softmax(logits.subarray(i * classes, (i + 1) * classes)) });
      timings.result += performance.now() - t0;
    }
  } finally {
    cutter.release(job);
  }
  const t0 = performance.now();
  const probabilities = aggregateTiles(tiles, classes, o.aggregate);
  timings.result += performance.now() - t0;
  timings.run = performance.now() - started - timings.cut - timings.result;
  return { width, height, tiles, probabilities, timings };
}

export function aggregateTiles(tiles: readonly TileResult[], classes: number, how: TileAggregate): Float32Array {
  const out = new Float32Array(classes).fill(how === 'max' ? -Infinity : 0);
  for (const t of tiles) {
    for (let k = 0; k < classes; k++) out[k] = how === 'max' ? Math.max(out[k]!, t.probabilities[k]!) : out[k]! + t.probabilities[k]! / tiles.length;
  }
  return out;
}

/**
 * The per-pixel class map at `scale` of the image's size: each pixel takes the class of highest
 * mean probability over the tiles that cover it. Returns class indices [H·W] (row-major).
 */
export function tileClassMap(p: TiledPrediction, classes: number, scale = 1): { map: Int32Array; width: number; height: number } {
  const w = Math.max(1, Math.round(p.width * scale)), h = Math.max(1, Math.round(p.height * scale));
  const sum = new Float32Array(w * h * classes);
  for (const t of p.tiles) {
    const x0 = Math.floor(t.left * scale), x1 = Math.min(w, Math.ceil((t.left + t.width) * scale));
    const y0 = Math.floor(t.top * scale), y1 = Math.min(h, Math.ceil((t.top + t.height) * scale));
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) {
      const o = (y * w + x) * classes;
      for (let k = 0; k < classes; k++) sum[o + k] += t.probabilities[k]!;
    }
  }
  const map = new Int32Array(w * h);
  for (let i = 0; i < w * h; i++) {
    let best = 0;
    for (let k = 1; k < classes; k++) if (sum[i * classes + k]! > sum[i * classes + best]!) best = k;
    map[i] = best;
  }
  return { map, width: w, height: h };
}

/** The image as [0, 1] CHW floats at `scale` (nearest pixel; the first three bands of a multiband image), for the overlay. */
export function displayImage(d: TileSource, width: number, height: number): { data: Float32Array; channels: number; width: number; height: number } {
  const src = d.img;
  const channels = Math.min(3, src.channels);
  const data = new Float32Array(channels * width * height);
  const norm = d.kind === 'pixels' ? 1 / 255 : 1;
  for (let y = 0; y < height; y++) {
    const sy = Math.min(src.height - 1, Math.floor(((y + 0.5) * src.height) / height));
    for (let x = 0; x < width; x++) {
      const sx = Math.min(src.width - 1, Math.floor(((x + 0.5) * src.width) / width));
      for (let c = 0; c < channels; c++) data[c * width * height + y * width + x] = src.data[(sy * src.width + sx) * src.channels + c]! * norm;
    }
  }
  return { data, channels, width, height };
}
