/**
 * A decoding worker thread: receives SampleTasks, answers with the sample's normalised CHW
 * floats (the buffer is transferred, not copied, and comes back with a `recycle` message once
 * the loader has copied it into its batch, so steady state allocates nothing) or with the
 * error message. Decode errors are answers, never crashes: the loader decides whether to skip
 * the file or stop (strict).
 */
import { parentPort } from 'node:worker_threads';
import { configureSharpForLoading } from './image_decode.js';
import { runSampleTask, type SampleTask } from './image_pipeline.js';

export type WorkerRequest = (SampleTask & { id: number }) | { recycle: ArrayBuffer };
export type WorkerResponse = { id: number; ok: true; data: Float32Array } | { id: number; ok: false; message: string; fatal?: boolean };

const port = parentPort;
if (!port) throw new Error('image_worker.ts runs as a worker thread (see worker_pool.ts)');
configureSharpForLoading();
const spare: ArrayBuffer[] = [];

port.on('message', (m: WorkerRequest) => {
  if ('recycle' in m) {
    if (spare.length < 8) spare.push(m.recycle);
    return;
  }
  const [c, h, w] = m.transform.eval.inputSize;
  const bytes = c * h * w * 4;
  const i = spare.findIndex((b) => b.byteLength === bytes);
  const out = new Float32Array(i >= 0 ? spare.splice(i, 1)[0]! : new ArrayBuffer(bytes));
  runSampleTask(m, out).then(
    (data) => port.postMessage({ id: m.id, ok: true, data } satisfies WorkerResponse, [data.buffer as ArrayBuffer]),
    (e: unknown) => {
      spare.push(out.buffer as ArrayBuffer);
      port.postMessage({ id: m.id, ok: false, message: e instanceof Error ? e.message : String(e) } satisfies WorkerResponse);
    },
  );
});
