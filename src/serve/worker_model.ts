/**
 * The served model on its own thread (see inference_worker.ts): the main thread keeps the
 * metadata and the file's bytes, the worker owns the ORT session. Batches cross as transferred
 * buffers, so nothing is copied.
 */
import type { OnnxModelMeta } from '../export/metadata.js';
import { inspectOnnxModel, type RunWithAttention } from '../runtime/onnx_model.js';
import type { SessionOptions } from '../runtime/session.js';
import type { WorkerInit, WorkerReply, WorkerRequest } from './inference_worker.js';
import { spawnModuleWorker } from '../runtime/spawn_worker.js';

/** What the server needs of a model; an OnnxModel (inference on the main thread) is one too. */
export interface ServedModel {
  readonly meta: OnnxModelMeta;
  readonly bytes: Uint8Array;
  /** Images [B, C, H, W], normalised → logits [B, classes]. */
  run(x: Float32Array): Promise<Float32Array>;
  /** Values per image of the model's `attention_map` output, when it has one; runWithAttention returns it. */
  readonly attentionSize?: number;
  runWithAttention?(x: Float32Array): Promise<RunWithAttention>;
  dispose(): Promise<void>;
  /** False once the model can no longer run (its thread died). */
  alive?(): boolean;
}

/** Opens an exported model (path or bytes) on an inference thread; resolves once its session is open. */
export async function startInferenceWorker(file: string | Uint8Array, session: SessionOptions = {}, source = typeof file === 'string' ? file : 'the model'): Promise<ServedModel> {
  const info = inspectOnnxModel(file, source);
  const worker = spawnModuleWorker(import.meta.url, 'inference_worker', { bytes: info.bytes, session, source } satisfies WorkerInit);
  const pending = new Map<number, { resolve(v: RunWithAttention): void; reject(e: Error): void }>();
  let nextId = 0;
  let dead: Error | undefined;
  let closing: Promise<void> | undefined;

  const failAll = (e: Error) => {
    dead ??= e;
    for (const p of pending.values()) p.reject(e);
    pending.clear();
  };
  await new Promise<void>((resolve, reject) => {
    worker.once('message', (m: WorkerReply) => ('ready' in m ? resolve() : reject(new Error('startError' in m ? m.startError : 'the inference thread did not start'))));
    worker.once('error', reject);
  });
  worker.on('message', (m: WorkerReply) => {
    if (!('id' in m)) return;
    const p = pending.get(m.id);
    pending.delete(m.id);
    if ('logits' in m) p?.resolve({ logits: m.logits, ...(m.attention ? { attention: m.attention } : {}) });
    else if ('error' in m) p?.reject(new Error(m.error));
    else p?.resolve({ logits: new Float32Array(0) }); // closed
  });
  worker.on('error', (e: Error) => failAll(new Error(`the inference thread failed: ${e.message}`)));
  worker.on('exit', (code) => failAll(new Error(`the inference thread exited (code ${code})`)));

  const request = <T>(m: Omit<WorkerRequest, 'id'> & Record<string, unknown>, transfer: ArrayBuffer[] = []) => new Promise<T>((resolve, reject) => {
    if (dead) return reject(dead);
    const id = nextId++;
    pending.set(id, { resolve: resolve as (v: RunWithAttention) => void, reject });
    worker.postMessage({ ...m, id }, transfer);
  });

  const runWithAttention = (x: Float32Array) => {
    // the buffer moves to the worker; keep the caller's array intact when it is a view of a larger one
    const own = x.byteOffset === 0 && x.byteLength === x.buffer.byteLength ? x : x.slice();
    return request<RunWithAttention>({ x: own }, [own.buffer as ArrayBuffer]);
  };
  return {
    meta: info.meta,
    bytes: info.bytes,
    ...(info.attentionSize ? { attentionSize: info.attentionSize } : {}),
    run: async (x) => (await runWithAttention(x)).logits,
    runWithAttention,
    alive: () => !dead,
    dispose() {
      closing ??= (async () => {
        if (!dead) {
          await request({ close: true }).catch(() => undefined);
        }
        await worker.terminate();
      })();
      return closing;
    },
  };
}
