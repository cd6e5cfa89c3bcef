/**
 * The tile-cutting thread of tiled inference (tile_cutter.ts): it holds the decoded image in
 * shared memory and cuts the batches it is asked for into the buffers it is lent, while the
 * calling thread runs the model on the previous batch.
 */
import { parentPort } from 'node:worker_threads';
import { ImageDecodeError } from '../data/image/image_decode.js';
import type { EvalTransform } from '../data/transforms/transform_config.js';
import { cutTiles, type TileBox, type TileSource } from './tile_input.js';

export type CutRequest =
  | { job: number; image: TileSource; transform: EvalTransform; boxes: TileBox[]; label: string }
  | { job: number; release: true }
  | { job: number; id: number; start: number; n: number; buffer: ArrayBuffer };
export type CutReply = { id: number; buffer: ArrayBuffer; ms: number } | { id: number; buffer: ArrayBuffer; error: string; decode: boolean };

const port = parentPort!;
/** the images being tiled, by job: several predictions may share the thread */
const jobs = new Map<number, Extract<CutRequest, { image: TileSource }>>();

port.on('message', (m: CutRequest) => {
  if ('image' in m) {
    jobs.set(m.job, m);
    return;
  }
  if ('release' in m) {
    jobs.delete(m.job);
    return;
  }
  const t0 = performance.now();
  try {
    const job = jobs.get(m.job);
    if (!job) throw new Error(`no image for tiling job ${m.job}`);
    cutTiles(job.image, job.boxes, m.start, m.n, job.transform, job.label, new Float32Array(m.buffer));
    port.postMessage({ id: m.id, buffer: m.buffer, ms: performance.now() - t0 } satisfies CutReply, [m.buffer]);
  } catch (e) {
    port.postMessage({ id: m.id, buffer: m.buffer, error: (e as Error).message, decode: e instanceof ImageDecodeError } satisfies CutReply, [m.buffer]);
  }
});
