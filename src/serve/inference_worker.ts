/**
 * The inference thread of `serve`: opens the model's ORT session and runs batches posted by
 * the main thread. onnxruntime-node runs inference synchronously on the calling thread, so
 * running it here keeps the server's event loop free for HTTP, decoding and health checks
 * while a batch computes.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadOnnxModel } from '../runtime/onnx_model.js';
import type { SessionOptions } from '../runtime/session.js';

export interface WorkerInit { bytes: Uint8Array; session: SessionOptions; source: string }
export type WorkerRequest = { id: number; x: Float32Array } | { id: number; close: true };
export type WorkerReply =
  | { ready: true }
  | { startError: string }
  | { id: number; logits: Float32Array; attention?: Float32Array }
  | { id: number; error: string }
  | { id: number; closed: true };

const port = parentPort!;
const init = workerData as WorkerInit;
const post = (m: WorkerReply, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

try {
  const model = await loadOnnxModel(init.bytes, init.session, init.source);
  port.on('message', async (m: WorkerRequest) => {
    if ('close' in m) {
      await model.dispose();
      post({ id: m.id, closed: true });
      port.close();
      return;
    }
    try {
      const { logits, attention } = await model.runWithAttention(m.x);
      post({ id: m.id, logits, ...(attention ? { attention } : {}) }, [logits.buffer as ArrayBuffer, ...(attention ? [attention.buffer as ArrayBuffer] : [])]);
    } catch (e) {
      post({ id: m.id, error: (e as Error).message });
    }
  });
  post({ ready: true });
} catch (e) {
  post({ startError: (e as Error).message });
}
