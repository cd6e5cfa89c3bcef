/**
 * The HTTP server over real HTTP on 127.0.0.1: predictions equal tessera's own computation,
 * the batch endpoint, every kind of bad request (with the server still serving afterwards),
 * dynamic batching seen in /metrics, the metadata, health, static and model-file routes.
 */
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metaFor, type CheckpointMeta } from '../../src/checkpoint/checkpoint.js';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { loadImageForModel } from '../../src/data/image/image.js';
import { exportModel } from '../../src/export/export.js';
import { evalTransformOf } from '../../src/export/metadata.js';
import { createModel } from '../../src/models/registry.js';
import type { ImageModel } from '../../src/models/model.js';
import { loadOnnxModel } from '../../src/runtime/onnx_model.js';
import { compileInference } from '../../src/models/executables.js';
import { createServer, parseByteSize, type TesseraServer } from '../../src/serve/server.js';
import { startInferenceWorker } from '../../src/serve/worker_model.js';

const BODY_LIMIT = 64 * 1024;
let model: ImageModel;
let meta: CheckpointMeta;
let server: TesseraServer;
let url: string;
let onnxBytes: Uint8Array;
/** Fashion-MNIST test images 0..7 as PNG files */
let pngs: Uint8Array<ArrayBuffer>[];

interface Top { label: string; index: number; probability: number }

async function reference(png: Uint8Array): Promise<Float32Array> {
  const x = await loadImageForModel(png, evalTransformOf(exportModel(model, meta).meta));
  const exe = await compileInference(model, {});
  const out = (await exe.run({ x })).logits!.data as Float32Array;
  await exe.dispose();
  return out;
}

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

const post = (path: string, body: BodyInit | undefined, type?: string) =>
  fetch(`${url}${path}`, { method: 'POST', body, headers: type ? { 'content-type': type } : {} });

async function startServer(opts: Partial<Parameters<typeof createServer>[0]> = {}): Promise<{ server: TesseraServer; url: string }> {
  // the model on its inference thread, as `tessera serve` runs it
  const s = await createServer({ model: await startInferenceWorker(onnxBytes), bodyLimit: BODY_LIMIT, ...opts });
  return { server: s, url: await s.listen(0) };
}

beforeAll(async () => {
  model = createModel('vit_tiny_patch4_28', { seed: 3 });
  const test = await loadBuiltinDataset('fashion-mnist', 'test');
  meta = metaFor('vit_tiny_patch4_28', model, [...test.classNames]);
  onnxBytes = exportModel(model, meta).bytes;
  pngs = await Promise.all(Array.from({ length: 8 }, async (_, i) => new Uint8Array(
    await sharp(Buffer.from(test.images.subarray(i * 784, (i + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer())));
  ({ server, url } = await startServer({ maxBatch: 32, maxWaitMs: 2 }));
});

afterAll(async () => {
  await server?.close();
});

describe('POST /v1/predict', () => {
  it('returns the top-5 labels, and with ?logits=true the logits tessera computes for the image', async () => {
    const res = await post('/v1/predict?logits=true', pngs[0], 'image/png');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const body = await res.json() as { model: string; top: Top[]; logits: number[] };
    expect(body.model).toBe('vit_tiny_patch4_28');
    expect(body.top).toHaveLength(5);
    const ref = await reference(pngs[0]!);
    body.logits.forEach((v, i) => expect(v).toBeCloseTo(ref[i]!, 4));
    const best = ref.indexOf(Math.max(...ref));
    expect(body.top[0]!).toMatchObject({ index: best, label: meta.classNames[best] });
    const probs = body.top.map((t) => t.probability);
    expect(probs).toEqual([...probs].sort((a, b) => b - a));
  });

  it('takes a multipart upload and application/octet-stream as well, and ?topk=', async () => {
    const form = new FormData();
    form.append('image', new Blob([pngs[1]!], { type: 'image/png' }), 'one.png');
    const multi = await (await fetch(`${url}/v1/predict?topk=3`, { method: 'POST', body: form })).json() as { top: Top[] };
    const raw = await (await post('/v1/predict?topk=3', pngs[1], 'application/octet-stream')).json() as { top: Top[] };
    expect(multi.top).toHaveLength(3);
    expect(multi.top).toEqual(raw.top);
    expect((await post('/v1/predict?topk=0', pngs[1], 'image/png')).status).toBe(400);
  });
});

describe('POST /v1/predict/batch', () => {
  it('classifies several multipart files in order, as single requests would', async () => {
    const form = new FormData();
    for (const i of [2, 3, 4]) form.append('images', new Blob([pngs[i]!], { type: 'image/png' }), `${i}.png`);
    const res = await fetch(`${url}/v1/predict/batch`, { method: 'POST', body: form });
    expect(res.status).toBe(200);
    const { results } = await res.json() as { results: { top: Top[] }[] };
    expect(results).toHaveLength(3);
    for (const [k, i] of [2, 3, 4].entries()) {
      const single = await (await post('/v1/predict', pngs[i], 'image/png')).json() as { top: Top[] };
      expect(results[k]!.top[0]!.index).toBe(single.top[0]!.index);
      expect(results[k]!.top[0]!.probability).toBeCloseTo(single.top[0]!.probability, 5);
    }
  });

  it('takes JSON {"images": [base64…]} and names a bad image by its position', async () => {
    const json = (images: string[]) => post('/v1/predict/batch', JSON.stringify({ images }), 'application/json');
    const ok = await json([b64(pngs[5]!), b64(pngs[6]!)]);
    expect(((await ok.json()) as { results: unknown[] }).results).toHaveLength(2);
    const bad = await json([b64(pngs[5]!), Buffer.from('not an image').toString('base64')]);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'invalid_image', message: expect.stringMatching(/^image 1: /) });
    expect((await json([])).status).toBe(400);
  });
});

describe('bad requests get a JSON error and the server keeps serving', () => {
  const expectError = async (res: Response, status: number, code: string) => {
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toMatchObject({ error: code, message: expect.any(String) });
  };

  it('corrupt or non-image bytes: 400 invalid_image', async () => {
    await expectError(await post('/v1/predict', Buffer.from('GIF89a but not really'), 'image/gif'), 400, 'invalid_image');
    await expectError(await post('/v1/predict', pngs[0]!.subarray(0, 60), 'image/png'), 400, 'invalid_image'); // truncated PNG
    await expectError(await post('/v1/predict', Buffer.from('{"hello": 1}'), 'application/octet-stream'), 400, 'invalid_image');
  });

  it('an empty body: 400 empty_body', async () => {
    await expectError(await post('/v1/predict', new Uint8Array(0), 'image/png'), 400, 'empty_body');
    await expectError(await post('/v1/predict', undefined), 400, 'empty_body');
    const form = new FormData();
    form.append('note', 'no file here');
    await expectError(await fetch(`${url}/v1/predict`, { method: 'POST', body: form }), 400, 'empty_body');
  });

  it('a body over --body-limit: 413, raw or multipart', async () => {
    const big = new Uint8Array(await sharp({ create: { width: 256, height: 256, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 60 } } }).png().toBuffer());
    expect(big.length).toBeGreaterThan(BODY_LIMIT);
    await expectError(await post('/v1/predict', big, 'image/png'), 413, 'payload_too_large');
    const form = new FormData();
    form.append('image', new Blob([big], { type: 'image/png' }), 'big.png');
    await expectError(await fetch(`${url}/v1/predict`, { method: 'POST', body: form }), 413, 'payload_too_large');
  });

  it('a content type that is not an image: 415', async () => {
    const text = await post('/v1/predict', 'hello', 'text/plain');
    expect(text.status).toBe(415);
    expect((await text.json() as { message: string }).message).toBe('Content-Type text/plain is not accepted; send image/* or application/octet-stream (the image bytes as the body), or multipart/form-data (image files)');
    await expectError(await post('/v1/predict', '<a/>', 'application/xml'), 415, 'unsupported_media_type');
    await expectError(await post('/v1/predict', '{"images": []}', 'application/json'), 415, 'unsupported_media_type');
  });

  it('unknown routes: 404 JSON', async () => {
    await expectError(await fetch(`${url}/v2/predict`), 404, 'not_found');
  });

  it('still serves after all of that', async () => {
    expect((await post('/v1/predict', pngs[7], 'image/png')).status).toBe(200);
    expect(await (await fetch(`${url}/healthz`)).json()).toMatchObject({ status: 'ok' });
  });
});

describe('dynamic batching', () => {
  it('groups 24 concurrent requests into a few model runs (from /metrics)', async () => {
    const s = await startServer({ maxBatch: 32, maxWaitMs: 150 });
    try {
      const results = await Promise.all(Array.from({ length: 24 }, (_, i) =>
        fetch(`${s.url}/v1/predict`, { method: 'POST', body: pngs[i % 8], headers: { 'content-type': 'image/png' } })));
      expect(results.map((r) => r.status)).toEqual(Array(24).fill(200));
      const m = parseMetrics(await (await fetch(`${s.url}/metrics`)).text());
      expect(m.get('tessera_batch_size_sum')).toBe(24);
      // measured: 1 to 3 model runs; the bound leaves room for a slow machine
      expect(m.get('tessera_batch_size_count')).toBeLessThanOrEqual(6);
      expect(m.get('tessera_batch_size_bucket{le="8"}')).toBeLessThan(m.get('tessera_batch_size_count')!); // some batch > 8
      expect(m.get('tessera_http_requests_total{route="/v1/predict",method="POST",status="200"}')).toBe(24);
    } finally {
      await s.server.close();
    }
  });

  it('--max-batch 1 runs every image alone', async () => {
    const s = await startServer({ maxBatch: 1, maxWaitMs: 150 });
    try {
      await Promise.all(Array.from({ length: 6 }, (_, i) =>
        fetch(`${s.url}/v1/predict`, { method: 'POST', body: pngs[i], headers: { 'content-type': 'image/png' } })));
      const m = parseMetrics(await (await fetch(`${s.url}/metrics`)).text());
      expect(m.get('tessera_batch_size_count')).toBe(6);
      expect(m.get('tessera_batch_size_bucket{le="1"}')).toBe(6);
    } finally {
      await s.server.close();
    }
  });
});

describe('GET routes', () => {
  it('/v1/model describes the model and its preprocessing', async () => {
    const info = await (await fetch(`${url}/v1/model`)).json();
    expect(info).toMatchObject({
      model: 'vit_tiny_patch4_28', labels: meta.classNames, input_size: [1, 28, 28], mean: meta.mean, std: meta.std,
      crop_pct: 1, interpolation: 'bilinear', input_format: 'float32_nchw', quantization: 'none',
      onnx: { url: '/v1/model.onnx', bytes: onnxBytes.byteLength }, batching: { max_batch: 32, max_wait_ms: 2 },
    });
  });

  it('/v1/model.onnx is the served model, byte for byte', async () => {
    const res = await fetch(`${url}/v1/model.onnx`);
    const got = Buffer.from(await res.arrayBuffer());
    expect(got.length).toBe(onnxBytes.byteLength);
    expect(got.equals(Buffer.from(onnxBytes))).toBe(true);
  });

  it('/metrics is Prometheus text: request counts by route and status, latency and batch-size histograms', async () => {
    const res = await fetch(`${url}/metrics`);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    for (const line of ['# TYPE tessera_http_requests_total counter', '# TYPE tessera_http_request_duration_seconds histogram',
      '# TYPE tessera_batch_size histogram', '# TYPE tessera_inference_duration_seconds histogram']) expect(text).toContain(line);
    const m = parseMetrics(text);
    expect(m.get('tessera_http_requests_total{route="/v1/predict",method="POST",status="415"}')).toBeGreaterThanOrEqual(3);
    expect(m.get('tessera_http_requests_total{route="/v1/predict",method="POST",status="400"}')).toBeGreaterThanOrEqual(6);
    expect(m.get('tessera_http_request_duration_seconds_count{route="/v1/predict"}')).toBeGreaterThan(10);
    expect(m.get('tessera_http_request_duration_seconds_bucket{route="/v1/predict",le="+Inf"}'))
      .toBe(m.get('tessera_http_request_duration_seconds_count{route="/v1/predict"}'));
  });

  it('/ is the web page, with onnxruntime-web\'s files and cross-origin isolation headers', async () => {
    const page = await fetch(`${url}/`);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await page.text()).toContain('<title>tessera');
    expect(page.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    expect(page.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
    for (const f of ['app.js', 'preprocess.js', 'browser_model.js', 'style.css']) expect((await fetch(`${url}/${f}`)).status, f).toBe(200);
    const ort = await fetch(`${url}/ort/ort.wasm.bundle.min.mjs`);
    expect(ort.headers.get('content-type')).toMatch(/javascript/);
    const wasm = await fetch(`${url}/ort/ort-wasm-simd-threaded.wasm`);
    expect(wasm.headers.get('content-type')).toBe('application/wasm');
    expect((await wasm.arrayBuffer()).byteLength).toBeGreaterThan(1e6);
    expect((await fetch(`${url}/ort/ort.all.js`)).status).toBe(404); // only the files the page needs
  });
});

describe('the inference thread', () => {
  it('computes what the model computes on the main thread, and stops cleanly', async () => {
    const worker = await startInferenceWorker(onnxBytes);
    const main = await loadOnnxModel(onnxBytes);
    const x = Float32Array.from({ length: 3 * 784 }, (_, i) => Math.sin(i));
    const [a, b] = [await worker.run(x.slice()), await main.run(x)];
    expect(Array.from(a)).toEqual(Array.from(b));
    // a view into a larger buffer is copied before the transfer, so the caller's data survives
    const view = x.subarray(784, 2 * 784);
    expect(Array.from(await worker.run(view))).toEqual(Array.from(b.subarray(10, 20)));
    expect(view.length).toBe(784);
    expect(worker.alive!()).toBe(true);
    await worker.dispose();
    expect(worker.alive!()).toBe(false);
    await expect(worker.run(x)).rejects.toThrow(/the inference thread exited/);
    await main.dispose();
  });

  it('reports a model that cannot start as one error', async () => {
    await expect(startInferenceWorker(new Uint8Array([1, 2, 3]), {}, 'junk.onnx')).rejects.toThrow(/junk\.onnx is not an ONNX model/);
  });
});

describe('parseByteSize', () => {
  it('reads sizes like fastify does (binary units)', () => {
    expect(parseByteSize('10mb')).toBe(10 * 2 ** 20);
    expect(parseByteSize('512KB')).toBe(512 * 1024);
    expect(parseByteSize('1048576')).toBe(1048576);
    expect(() => parseByteSize('ten')).toThrow(/expected a size such as 10mb/);
  });
});

/** Prometheus text → sample name with labels → value. */
function parseMetrics(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    m.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return m;
}

describe('attention overlay', () => {
  it('a model exported with --attention-map adds attention { grid, values } to each prediction, batched per image', async () => {
    const bytes = exportModel(model, meta, { attentionMap: true }).bytes;
    const s = await createServer({ model: await startInferenceWorker(bytes), maxBatch: 8, maxWaitMs: 50 });
    const base = await s.listen(0);
    const direct = await loadOnnxModel(bytes);
    try {
      expect(await (await fetch(`${base}/v1/model`)).json()).toMatchObject({ attention_map: { grid: [7, 7] } });
      const form = new FormData();
      for (const i of [0, 1, 2]) form.append('images', new Blob([pngs[i]!], { type: 'image/png' }), `${i}.png`);
      const res = await fetch(`${base}/v1/predict/batch`, { method: 'POST', body: form });
      expect(res.status).toBe(200);
      const { results } = await res.json() as { results: { top: Top[]; attention: { grid: [number, number]; values: number[] } }[] };
      expect(results).toHaveLength(3);
      for (const [k, i] of [0, 1, 2].entries()) {
        const { grid, values } = results[k]!.attention;
        expect(grid).toEqual([7, 7]);
        expect(values).toHaveLength(49);
        expect(values.every((v) => v >= 0 && v <= 1)).toBe(true);
        expect(Math.min(...values)).toBe(0);
        expect(Math.max(...values)).toBe(1);
        // each image gets its own row of the batch's [B, N] output
        const x = await loadImageForModel(pngs[i]!, evalTransformOf(direct.meta));
        const map = (await direct.runWithAttention(x)).attention!;
        const lo = Math.min(...map);
        const hi = Math.max(...map);
        values.forEach((v, j) => expect(Math.abs(v - (map[j]! - lo) / (hi - lo))).toBeLessThanOrEqual(1e-4));
      }
      const single = await (await fetch(`${base}/v1/predict`, { method: 'POST', body: pngs[0], headers: { 'content-type': 'image/png' } })).json() as { attention: { values: number[] } };
      expect(single.attention.values).toEqual(results[0]!.attention.values);
    } finally {
      await direct.dispose();
      await s.close();
    }
  });

  it('a model without the map gives predictions without attention', async () => {
    const body = await (await post('/v1/predict', pngs[0], 'image/png')).json() as Record<string, unknown>;
    expect(body.attention).toBeUndefined();
    expect(await (await fetch(`${url}/v1/model`)).json()).toMatchObject({ attention_map: null });
  });
});
