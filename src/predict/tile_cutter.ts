/**
 * Who cuts the tiles of a tiled prediction into batches (tiled.ts). On the calling thread the
 * cutting and the model runs take turns, because onnxruntime-node runs a session on the thread
 * that calls it. A cutting thread (tile_cut_worker.ts) cuts the next batch while the model runs
 * the current one: the image goes to it once, in shared memory, and the batch buffers travel
 * back and forth as transferred ArrayBuffers, so no batch is copied. It pays off when a core is
 * free of the model's threads; on a machine whose every core runs the model it can only take
 * the cutting's share of one of them.
 */
import type { Worker } from 'node:worker_threads';
import { ImageDecodeError } from '../data/image/image_decode.js';
import type { EvalTransform } from '../data/transforms/transform_config.js';
import { spawnModuleWorker } from '../runtime/spawn_worker.js';
import type { CutReply, CutRequest } from './tile_cut_worker.js';
import { cutTiles, type TileBox, type TileSource } from './tile_input.js';

export interface TileJob { image: TileSource; transform: EvalTransform; boxes: readonly TileBox[]; label: string }

export interface TileCutter {
  /** Fills `buffer` with tiles start … start + n − 1 of the job; resolves with it (the same memory, or the same buffer moved back). */
  cut(job: TileJob, start: number, n: number, buffer: Float32Array): Promise<Float32Array>;
  /** The job is finished: its image can go. */
  release(job: TileJob): void;
  close(): Promise<void>;
}

/** Cuts on the calling thread, synchronously. */
export const inlineCutter: TileCutter = {
  async cut(job, start, n, buffer) {
    cutTiles(job.image, job.boxes, start, n, job.transform, job.label, buffer);
    return buffer;
  },
  release() {},
  async close() {},
};

/** The image's samples in shared memory (copied once), so the cutting thread reads them without a copy per batch. */
function sharedImage(d: TileSource): TileSource {
  const src = d.img.data;
  if (src.buffer instanceof SharedArrayBuffer) return d;
  const shared = new SharedArrayBuffer(src.byteLength);
  if (d.kind === 'pixels') {
    const data = new Uint8Array(shared);
    data.set(d.img.data);
    return { kind: 'pixels', img: { ...d.img, data } };
  }
  const data = new Float32Array(shared);
  data.set(d.img.data);
  return { kind: 'bands', img: { ...d.img, data } };
}

/** Starts a cutting thread; one thread serves every job (image) given to it, in the order asked. */
export function startCutThread(): TileCutter {
  const worker: Worker = spawnModuleWorker(import.meta.url, 'tile_cut_worker');
  // the thread keeps the process alive only while a cut is awaited
  worker.unref();
  const pending = new Map<number, { resolve(b: ArrayBuffer): void; reject(e: Error): void }>();
  const jobIds = new WeakMap<TileJob, number>();
  let nextJob = 0;
  let nextId = 0;
  let dead: Error | undefined;
  const failAll = (e: Error) => {
    dead ??= e;
    for (const p of pending.values()) p.reject(e);
    pending.clear();
  };
  worker.on('message', (m: CutReply) => {
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (pending.size === 0) worker.unref();
    // an image the transform refuses stays an ImageDecodeError (serve answers it with 400)
    if ('error' in m) p?.reject(m.decode ? new ImageDecodeError(m.error) : new Error(m.error));
    else p?.resolve(m.buffer);
  });
  worker.on('error', (e: Error) => failAll(new Error(`the tile-cutting thread failed: ${e.message}`)));
  worker.on('exit', (code) => failAll(new Error(`the tile-cutting thread exited (code ${code})`)));
  return {
    cut(job, start, n, buffer) {
      if (dead) return Promise.reject(dead);
      let jobId = jobIds.get(job);
      if (jobId === undefined) {
        jobIds.set(job, (jobId = nextJob++));
        worker.postMessage({ job: jobId, image: sharedImage(job.image), transform: job.transform, boxes: [...job.boxes], label: job.label } satisfies CutRequest);
      }
      // the whole buffer moves; a view of a larger one would take its neighbours along
      if (buffer.byteOffset !== 0 || buffer.byteLength !== buffer.buffer.byteLength) throw new Error('a tile batch buffer must own its ArrayBuffer');
      const id = nextId++;
      const length = buffer.length;
      const back = new Promise<ArrayBuffer>((resolve, reject) => pending.set(id, { resolve, reject }));
      worker.ref();
      const ab = buffer.buffer as ArrayBuffer;
      worker.postMessage({ job: jobId, id, start, n, buffer: ab } satisfies CutRequest, [ab]);
      return back.then((b) => new Float32Array(b, 0, length));
    },
    release(job) {
      const jobId = jobIds.get(job);
      if (jobId === undefined || dead) return;
      jobIds.delete(job);
      worker.postMessage({ job: jobId, release: true } satisfies CutRequest);
    },
    async close() {
      failAll(new Error('the tile-cutting thread was closed'));
      await worker.terminate();
    },
  };
}

/** A cutting thread started on the first cut (a server that never tiles starts none). */
export function lazyCutThread(): TileCutter {
  let thread: TileCutter | undefined;
  return {
    cut: (job, start, n, buffer) => (thread ??= startCutThread()).cut(job, start, n, buffer),
    release: (job) => thread?.release(job),
    close: async () => thread?.close(),
  };
}
