/**
 * A pool of decoding worker threads (image_worker.ts), shared by every loader that asks for the
 * same size: a training and an evaluation loader use the same threads. Tasks run first-in,
 * first-out, four at a time per worker (while its thread runs one sample's transforms, the
 * others decode in libvips; four instead of two gave +10% throughput with 2 workers on 2 cores),
 * each writing into an output slot (a SharedArrayBuffer) that the pool hands out and takes back. A worker that dies is replaced; its tasks fail with the reason, they don't hang.
 */
import type { Worker } from 'node:worker_threads';
import { spawnModuleWorker } from '../../runtime/spawn_worker.js';
import type { SampleTask } from '../transforms/image_pipeline.js';
import type { WorkerRequest, WorkerResponse } from './image_worker.js';

const PER_WORKER = 4;

/** What run() resolves with: the sample's floats (a view of a pool slot until recycle()) or the error. */
export type SampleResponse = { ok: true; data: Float32Array } | { ok: false; message: string; fatal?: boolean };

/** A queued sample; its output slot is attached when a worker takes it, so only samples in flight hold one. */
interface Pending { task: SampleTask & { id: number }; resolve: (r: SampleResponse) => void; out?: SharedArrayBuffer }
interface Slot { worker: Worker; inFlight: Map<number, Pending>; answered: boolean }

export class WorkerPool {
  private slots: Slot[] = [];
  private queue: Pending[] = [];
  private nextId = 0;
  /** Free output slots by byte size. */
  private readonly freeOutputs = new Map<number, SharedArrayBuffer[]>();
  private closed = false;
  private bootFailures = 0;
  private broken?: string;

  constructor(readonly size: number) {
    for (let i = 0; i < size; i++) this.slots.push(this.start());
  }

  private start(): Slot {
    const slot: Slot = { worker: spawnModuleWorker(import.meta.url, 'image_worker'), inFlight: new Map(), answered: false };
    slot.worker.on('message', (m: WorkerResponse) => {
      slot.answered = true;
      this.bootFailures = 0;
      const p = slot.inFlight.get(m.id);
      slot.inFlight.delete(m.id);
      if (p) p.resolve(m.ok ? { ok: true, data: new Float32Array(p.out!) } : (this.release(p.out!), m));
      this.pump();
    });
    let failed = false;
    const fail = (reason: string) => {
      if (this.closed || failed) return;
      failed = true;
      // a worker that dies before answering anything could not start: after three in a row, stop trying
      if (!slot.answered && ++this.bootFailures >= 3) this.broken = `could not start the image decoding workers (${reason})`;
      for (const p of slot.inFlight.values()) {
        // the slot may still be written by the dying thread: it is not reused
        p.resolve(this.broken
          ? { ok: false, fatal: true, message: this.broken }
          : { ok: false, message: `${p.task.path}: the decoding worker stopped while reading it (${reason})` });
      }
      slot.inFlight.clear();
      const i = this.slots.indexOf(slot);
      if (this.broken) {
        for (const p of this.queue.splice(0)) p.resolve({ ok: false, fatal: true, message: this.broken });
        if (i >= 0) this.slots.splice(i, 1);
        return;
      }
      if (i >= 0) this.slots[i] = this.start();
      this.pump();
    };
    slot.worker.on('error', (e: Error) => fail(e.message));
    slot.worker.on('exit', (code) => fail(`exit code ${code}`));
    // idle workers must not keep the process alive
    slot.worker.unref();
    return slot;
  }

  /** Queues one sample; resolves with its pixels or its error (fatal: the pool itself failed), never rejects. */
  run(task: SampleTask): Promise<SampleResponse> {
    if (this.closed || this.broken) return Promise.resolve({ ok: false, fatal: true, message: this.broken ?? 'the image loader is closed' });
    return new Promise((resolve) => {
      this.queue.push({ task: { ...task, id: this.nextId++ }, resolve });
      this.pump();
    });
  }

  /** Hands a sample's slot back once its floats have been copied out (the view must not be used after). */
  recycle(data: Float32Array): void {
    if (data.buffer instanceof SharedArrayBuffer) this.release(data.buffer);
  }

  private release(out: SharedArrayBuffer): void {
    const list = this.freeOutputs.get(out.byteLength) ?? [];
    // enough for every task in flight plus the prefetched batches' stragglers
    if (list.length < 4 * PER_WORKER * this.size && !list.includes(out)) list.push(out);
    this.freeOutputs.set(out.byteLength, list);
  }

  private pump(): void {
    for (const slot of this.slots) {
      while (slot.inFlight.size < PER_WORKER && this.queue.length) {
        const p = this.queue.shift()!;
        const [c, h, w] = p.task.transform.eval.inputSize;
        const bytes = c * h * w * 4;
        p.out = this.freeOutputs.get(bytes)?.pop() ?? new SharedArrayBuffer(bytes);
        slot.inFlight.set(p.task.id, p);
        slot.worker.ref();
        slot.worker.postMessage({ ...p.task, out: p.out } satisfies WorkerRequest);
      }
      if (slot.inFlight.size === 0) slot.worker.unref();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.resolve({ ok: false, fatal: true, message: 'the image loader is closed' });
    // the workers are unref'd, and a terminating worker does not keep the event loop alive by
    // itself: without this timer the process could exit with close() (and its caller) unsettled
    const keepAlive = setInterval(() => {}, 60_000);
    try {
      await Promise.all(this.slots.map((s) => s.worker.terminate()));
    } finally {
      clearInterval(keepAlive);
    }
  }
}

const shared = new Map<number, { pool: WorkerPool; users: number }>();

/** The shared pool of `size` workers; call the returned release() when done (the last one stops the threads). */
export function acquireWorkerPool(size: number): { pool: WorkerPool; release: () => Promise<void> } {
  let entry = shared.get(size);
  if (!entry) {
    entry = { pool: new WorkerPool(size), users: 0 };
    shared.set(size, entry);
  }
  entry.users++;
  const e = entry;
  let released = false;
  return {
    pool: e.pool,
    release: async () => {
      if (released) return;
      released = true;
      if (--e.users === 0) {
        shared.delete(size);
        await e.pool.close();
      }
    },
  };
}
