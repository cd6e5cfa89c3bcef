/**
 * A decoding worker thread: receives SampleTasks, each with a SharedArrayBuffer slot to write the
 * sample's normalised CHW floats into, and answers with the task id or the error message. The
 * slots belong to the pool and are reused: no buffer is allocated, transferred or sent back for
 * recycling per sample.
 * Decode errors are answers, never crashes: the loader decides whether to skip the file or stop
 * (strict).
 */
import { parentPort } from 'node:worker_threads';
import { configureSharpForLoading } from '../image/image_decode.js';
import { runSampleTask, type SampleTask } from '../transforms/image_pipeline.js';

export type WorkerRequest = SampleTask & { id: number; out: SharedArrayBuffer };
export type WorkerResponse = { id: number; ok: true } | { id: number; ok: false; message: string; fatal?: boolean };

const port = parentPort;
if (!port) throw new Error('image_worker.ts runs as a worker thread (see worker_pool.ts)');
configureSharpForLoading();

port.on('message', (m: WorkerRequest) => {
  runSampleTask(m, new Float32Array(m.out)).then(
    () => port.postMessage({ id: m.id, ok: true } satisfies WorkerResponse),
    (e: unknown) => port.postMessage({ id: m.id, ok: false, message: e instanceof Error ? e.message : String(e) } satisfies WorkerResponse),
  );
});
