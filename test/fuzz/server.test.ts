/**
 * Fuzzing the server's request bodies over real HTTP on 127.0.0.1, against a server created as
 * test/serve/server.test.ts creates it (the model on its inference thread): multipart bodies
 * (mutations of valid uploads, with boundaries, part headers and Content-Type parameters
 * targeted), JSON bodies for the batch endpoint (mutated valid requests, arbitrary JSON, hostile
 * base64) and raw image bodies under assorted Content-Types and query strings. Every answer is a
 * 200 with predictions or a 4xx whose JSON body is `{ error, message }` with a one-line message;
 * no 5xx, no hang, and the server answers /healthz afterwards with nothing left in flight.
 */
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metaFor } from '../../src/checkpoint/checkpoint.js';
import { exportModel } from '../../src/export/export.js';
import { createModel } from '../../src/models/registry.js';
import { createServer, type TesseraServer } from '../../src/serve/server.js';
import { startInferenceWorker } from '../../src/serve/worker_model.js';
import { concat, fc, fuzzAsync, mutatedBytes, mutatedText, peakRss, RSS_GROWTH_LIMIT, timeout, utf8 } from './helpers.js';

const BODY_LIMIT = 64 * 1024;
const MAX_IMAGES = 8;
const BOUNDARY = 'tessera-fuzz-boundary';
let server: TesseraServer;
let url: string;
let pngs: Uint8Array[] = [];
let jpeg: Uint8Array;

function multipart(files: { name?: string; filename?: string; type?: string; data: Uint8Array }[], boundary = BOUNDARY, fields: [string, string][] = []): Uint8Array {
  const parts = [
    ...fields.map(([k, v]) => utf8(`--${boundary}\r\ncontent-disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`)),
    ...files.flatMap((f) => [utf8(`--${boundary}\r\ncontent-disposition: form-data; name="${f.name ?? 'image'}"; filename="${f.filename ?? 'a.png'}"\r\ncontent-type: ${f.type ?? 'image/png'}\r\n\r\n`), f.data, utf8('\r\n')]),
  ];
  return concat(...parts, utf8(`--${boundary}--\r\n`));
}

interface Answer { status: number; body: unknown }

/** POSTs and checks the allowed outcome; returns the answer for further checks. */
async function expectAnswer(path: string, body: Uint8Array, contentType: string | undefined): Promise<Answer> {
  const res = await fetch(`${url}${path}`, {
    method: 'POST', body: new Uint8Array(body), headers: contentType === undefined ? {} : { 'content-type': contentType }, signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  const what = `POST ${path} (${contentType ?? 'no Content-Type'}, ${body.length} bytes) answered ${res.status}`;
  if (res.status >= 500) throw new Error(`${what}: ${text.slice(0, 300)}`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${what} with a body that is not JSON: ${JSON.stringify(text.slice(0, 200))}`);
  }
  if (res.status === 200) {
    const b = json as { model?: unknown; top?: unknown; results?: unknown[] };
    if (typeof b.model !== 'string' || !(Array.isArray(b.top) || Array.isArray(b.results))) throw new Error(`${what} without predictions: ${text.slice(0, 200)}`);
  } else {
    if (res.status < 400) throw new Error(`${what}: ${text.slice(0, 200)}`);
    const e = json as { error?: unknown; message?: unknown };
    if (typeof e.error !== 'string' || typeof e.message !== 'string' || !e.message) throw new Error(`${what}: not { error, message }: ${text.slice(0, 200)}`);
    if (/[\r\n]/.test(e.message) || e.message.length > 2000) throw new Error(`${what}: the message is not one short line: ${JSON.stringify(e.message.slice(0, 300))}`);
  }
  return { status: res.status, body: json };
}

const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);

let rss0 = 0;
beforeAll(async () => {
  rss0 = peakRss();
  const model = createModel('vit_tiny_patch4_28', { seed: 9, depth: 1, embedDim: 16, numHeads: 1 });
  const onnxBytes = exportModel(model, metaFor('vit_tiny_patch4_28', model, Array.from({ length: 10 }, (_, i) => `class ${i}`))).bytes;
  pngs = await Promise.all([
    sharp(Buffer.from(Array.from({ length: 28 * 28 }, (_, i) => (i * 7) & 0xff)), { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer(),
    sharp({ create: { width: 40, height: 20, channels: 3, background: { r: 200, g: 10, b: 60 } } }).png().toBuffer(),
  ]).then((l) => l.map((b) => new Uint8Array(b)));
  jpeg = new Uint8Array(await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 1, g: 2, b: 3 } } }).jpeg().toBuffer());
  server = await createServer({ model: await startInferenceWorker(onnxBytes), bodyLimit: BODY_LIMIT, maxImagesPerRequest: MAX_IMAGES, maxBatch: 8, maxWaitMs: 1 });
  url = await server.listen(0);
});

afterAll(async () => {
  await server?.close();
  expect(peakRss() - rss0).toBeLessThan(RSS_GROWTH_LIMIT);
});

const PATHS = ['/v1/predict', '/v1/predict/batch', '/v1/predict?topk=3', '/v1/predict/batch?logits=true', '/v1/predict?topk=0', '/v1/predict?topk=abc&logits=maybe', '/v1/predict?x=1'];

describe('fuzz: the server\'s request bodies', () => {
  it('valid requests are answered 200 (the seeds)', async () => {
    expect((await expectAnswer('/v1/predict', pngs[0]!, 'image/png')).status).toBe(200);
    expect((await expectAnswer('/v1/predict/batch', multipart(pngs.map((data) => ({ data }))), `multipart/form-data; boundary=${BOUNDARY}`)).status).toBe(200);
    expect((await expectAnswer('/v1/predict/batch', utf8(JSON.stringify({ images: pngs.map((b) => Buffer.from(b).toString('base64')) })), 'application/json')).status).toBe(200);
  });

  it('multipart bodies: mutated uploads, boundaries and part headers', async () => {
    const seeds = [
      multipart([{ data: pngs[0]! }]),
      multipart(pngs.map((data, i) => ({ data, filename: `${i}.png` })), BOUNDARY, [['note', 'x']]),
      multipart([{ data: jpeg, type: 'image/jpeg', filename: 'a.jpg' }, { data: new Uint8Array(0) }]),
    ];
    const dictionary = [`--${BOUNDARY}`, `--${BOUNDARY}--`, '\r\n', '\r\n\r\n', 'content-disposition: form-data; name="x"', 'filename="', 'content-type: ', '; charset=utf-8', '"', '--'].map(utf8);
    const contentType = fc.oneof(
      { weight: 6, arbitrary: fc.constant(`multipart/form-data; boundary=${BOUNDARY}`) },
      { weight: 1, arbitrary: fc.constantFrom('multipart/form-data', 'multipart/form-data; boundary=', 'multipart/form-data; boundary="tessera-fuzz-boundary"', 'multipart/form-data; boundary=other',
        `multipart/form-data; boundary=${'b'.repeat(300)}`, 'multipart/mixed; boundary=tessera-fuzz-boundary', `MULTIPART/FORM-DATA; BOUNDARY=${BOUNDARY}`, 'multipart/form-data; boundary=a; boundary=b') },
      { weight: 1, arbitrary: fc.string({ maxLength: 40 }).map((s) => `multipart/form-data; ${s}`) },
    );
    await fuzzAsync('server-multipart', [fc.constantFrom(...PATHS), mutatedBytes(seeds, { dictionary, maxMutations: 3 }), contentType], async (path, body, type) => {
      await expectAnswer(path, body, type);
    }, 300);
  }, timeout(90_000));

  it('JSON bodies for the batch endpoint: mutated requests, arbitrary JSON, hostile base64', async () => {
    const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
    const seeds = [JSON.stringify({ images: [b64(pngs[0]!)] }), JSON.stringify({ images: [b64(pngs[1]!), b64(jpeg)] }), '{"images": []}'];
    const body = fc.oneof(
      { weight: 4, arbitrary: mutatedText(seeds, { dictionary: ['"images"', '[', ']', '"', 'null', '"===="', '"\\u0000"', '{"images": '].map(utf8) }) },
      { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => utf8(JSON.stringify(v) ?? 'null')) },
      {
        weight: 2, arbitrary: fc.array(fc.oneof(fc.string({ maxLength: 60 }), fc.base64String({ maxLength: 200 }), fc.constantFrom('', '====', '!!!', b64(jpeg), b64(pngs[0]!).slice(0, 100)), fc.integer(), fc.constant(null)), { maxLength: MAX_IMAGES + 3 })
          .map((images) => utf8(JSON.stringify({ images }))),
      },
      { weight: 1, arbitrary: fc.integer({ min: 1, max: 20_000 }).map((n) => utf8(`{"images": ${'['.repeat(n)}${']'.repeat(n)}}`)) },
    );
    const type = fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/JSON', 'application/json; charset=latin1', 'text/json');
    await fuzzAsync('server-json', [fc.constantFrom('/v1/predict/batch', '/v1/predict/batch?topk=2', '/v1/predict'), body, type], async (path, b, t) => {
      await expectAnswer(path, b, t);
    }, 400);
  }, timeout(90_000));

  it('raw image bodies (mutated PNG and JPEG, random bytes) under assorted Content-Types and query strings', async () => {
    const type = fc.oneof(fc.constantFrom('image/png', 'image/jpeg', 'image/webp', 'image/svg+xml', 'application/octet-stream', 'text/plain', 'image/', 'image/png; charset=utf-8', ''),
      fc.string({ maxLength: 30 }), fc.constant(undefined));
    await fuzzAsync('server-raw', [fc.constantFrom(...PATHS), mutatedBytes([...pngs, jpeg], { maxMutations: 3 }), type], async (path, body, t) => {
      await expectAnswer(path, body, t);
    }, 300);
  }, timeout(90_000));

  it('regression: a corrupt JPEG is a 400 with a one-line message (libvips\' warnings came joined by newlines)', async () => {
    // found by the raw-body fuzz: bytes inserted before a marker, the frame header lost
    const at = (m: number) => jpeg.findIndex((b, i) => b === 0xff && jpeg[i + 1] === m);
    const bad = concat(jpeg.subarray(0, at(0xc0)), new Uint8Array(7), jpeg.subarray(at(0xda)));
    for (const [path, body, type] of [['/v1/predict', bad, 'image/jpeg'], ['/v1/predict/batch', multipart([{ data: bad, type: 'image/jpeg' }]), `multipart/form-data; boundary=${BOUNDARY}`]] as const) {
      const a = await expectAnswer(path, body, type);
      expect(a.status).toBe(400);
      expect((a.body as { message: string }).message).toMatch(/not a readable image \(.*7 extraneous bytes before marker 0xda VipsJpeg: Invalid JPEG file structure: SOS before SOF\)$/);
    }
  });

  it('afterwards the server is healthy and nothing is left in flight', async () => {
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const text = await (await fetch(`${url}/metrics`, { headers: { connection: 'close' } })).text();
    expect(metric(text, 'tessera_http_requests_in_flight') - 1).toBe(0); // less the /metrics request itself
  });
});
