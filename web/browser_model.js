/**
 * The in-browser mode: the server's own .onnx file (GET /v1/model.onnx) run by onnxruntime-web's
 * WebAssembly backend. The server sends cross-origin isolation headers, so ORT may use wasm
 * threads; without isolation it runs single-threaded.
 */
let runtime;

/** Loads onnxruntime-web and the model once; later calls reuse the session. */
export function loadBrowserModel() {
  runtime ??= (async () => {
    const ort = await import('/ort/ort.wasm.bundle.min.mjs');
    ort.env.wasm.numThreads = globalThis.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
    const response = await fetch('/v1/model.onnx');
    if (!response.ok) throw new Error(`could not download the model (HTTP ${response.status})`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
    return { ort, session, bytes: bytes.byteLength };
  })();
  runtime.catch(() => { runtime = undefined; });
  return runtime;
}

/**
 * Logits for one preprocessed image ({ pixels: uint8 HWC, tensor: float32 CHW }), and the
 * attention rollout over the patches when the file has the `attention_map` output.
 */
export async function runInBrowser(meta, input) {
  const { ort, session } = await loadBrowserModel();
  const [c, h, w] = meta.input_size;
  const feed = meta.input_format === 'uint8_nhwc'
    ? new ort.Tensor('uint8', input.pixels, [1, h, w, c])
    : new ort.Tensor('float32', input.tensor, [1, c, h, w]);
  const out = await session.run({ [session.inputNames[0]]: feed });
  const take = (name) => {
    const t = out[name];
    if (!t) return undefined;
    const data = Float32Array.from(t.data);
    t.dispose?.();
    return data;
  };
  return { logits: take(session.outputNames[0]), attention: take('attention_map') };
}
