/**
 * The server against clients that misbehave, over raw sockets on 127.0.0.1: a request aborted
 * mid-upload or while it waits for its answer ends its in-flight count (so close() does not wait
 * out the grace period), a truncated or boundary-less multipart body is the client's error (400),
 * and --body-limit caps a multipart request as a whole: 413 as soon as the total passes it, before
 * the client has sent the rest.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metaFor } from '../../src/checkpoint/checkpoint.js';
import { exportModel } from '../../src/export/export.js';
import { createModel } from '../../src/models/registry.js';
import { createServer, type TesseraServer } from '../../src/serve/server.js';
import { startInferenceWorker, type ServedModel } from '../../src/serve/worker_model.js';

const BODY_LIMIT = 1 << 20;
let onnxBytes: Uint8Array;
let png: Uint8Array<ArrayBuffer>;
let server: TesseraServer;
let url: string;
let port: number;

async function startServer(opts: Partial<Parameters<typeof createServer>[0]> = {}) {
  const s = await createServer({ bodyLimit: BODY_LIMIT, ...opts, model: opts.model ?? await startInferenceWorker(onnxBytes) });
  const u = await s.listen(0);
  return { server: s, url: u, port: Number(new URL(u).port) };
}

beforeAll(async () => {
  const model = createModel('vit_tiny_patch4_28', { seed: 11 });
  onnxBytes = exportModel(model, metaFor('vit_tiny_patch4_28', model, Array.from({ length: 10 }, (_, i) => `class ${i}`))).bytes;
  png = new Uint8Array(await sharp({ create: { width: 28, height: 28, channels: 3, background: { r: 20, g: 140, b: 60 } } }).png().toBuffer());
  ({ server, url, port } = await startServer());
});

afterAll(async () => {
  await server?.close();
});

const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
/** The in-flight gauge, less the /metrics request that reads it. */
const inFlight = async (base = url) =>
  metric(await (await fetch(`${base}/metrics`, { headers: { connection: 'close' } })).text(), 'tessera_http_requests_in_flight') - 1;

async function until(what: string, ok: () => Promise<boolean>, ms = 5000): Promise<void> {
  for (const t0 = Date.now(); Date.now() - t0 < ms;) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** A socket on the server whose connection is open. */
const open = (p = port) => new Promise<Socket>((resolve, reject) => {
  const s = connect(p, '127.0.0.1', () => resolve(s));
  s.once('error', reject);
});

const head = (path: string, type: string, length: number) =>
  `POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: ${type}\r\ncontent-length: ${length}\r\n\r\n`;

function multipart(files: Uint8Array[], boundary = 'tessera-test-boundary'): Buffer {
  const parts = files.flatMap((f, i) => [
    Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="images"; filename="${i}.png"\r\ncontent-type: image/png\r\n\r\n`), f, Buffer.from('\r\n')]);
  return Buffer.concat([...parts, Buffer.from(`--${boundary}--\r\n`)]);
}

interface RawResponse { status: number; body: { error?: string; message?: string }; sentWhenAnswered: number }

/**
 * Sends `body` after the headers, honouring backpressure, and resolves with the response: the
 * status, the JSON body and how many body bytes had been handed to the socket when it arrived.
 * The client stops sending once answered; a reset after the answer is not an error.
 */
function rawPost(path: string, type: string, body: Buffer, p = port): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const s = connect(p, '127.0.0.1');
    let sent = 0;
    let sentWhenAnswered = -1;
    let text = '';
    const finish = () => {
      const m = /^HTTP\/1\.1 (\d+)[^]*?\r\ncontent-length: (\d+)[^]*?\r\n\r\n([^]*)$/i.exec(text);
      if (!m || Buffer.byteLength(m[3]!) < Number(m[2])) return false;
      s.destroy();
      resolve({ status: Number(m[1]), body: JSON.parse(m[3]!), sentWhenAnswered });
      return true;
    };
    s.on('data', (d) => {
      if (sentWhenAnswered < 0) sentWhenAnswered = sent;
      text += d;
      finish();
    });
    s.on('error', (e) => { if (!finish()) reject(e); });
    s.on('close', () => { if (!finish()) reject(new Error(`the connection closed before a whole response: ${JSON.stringify(text.slice(0, 200))}`)); });
    s.write(head(path, type, body.length));
    const chunk = 64 * 1024;
    const pump = () => {
      while (sent < body.length && sentWhenAnswered < 0 && !s.destroyed) {
        const piece = body.subarray(sent, sent + chunk);
        sent += piece.length;
        if (!s.write(piece)) return void s.once('drain', pump);
      }
    };
    pump();
  });
}

describe('a client that aborts', () => {
  it('mid-upload, raw or multipart, or while waiting for its answer: in flight returns to 0 and close() does not wait for the grace period', async () => {
    // the model waits for the gate, so the complete request is still waiting for its answer when it aborts
    let openGate!: () => void;
    const gate = new Promise<void>((r) => { openGate = r; });
    const worker = await startInferenceWorker(onnxBytes);
    const gated: ServedModel = { meta: worker.meta, bytes: worker.bytes, run: async (x) => { await gate; return worker.run(x); }, dispose: () => worker.dispose() };
    const s = await startServer({ model: gated, shutdownGraceMs: 8000 });
    try {
      const raw = await open(s.port);
      raw.write(Buffer.concat([Buffer.from(head('/v1/predict', 'image/png', png.length)), png.subarray(0, png.length >> 1)]));
      const form = multipart([png]);
      const multi = await open(s.port);
      multi.write(Buffer.concat([Buffer.from(head('/v1/predict/batch', 'multipart/form-data; boundary=tessera-test-boundary', form.length)), form.subarray(0, form.length - 40)]));
      const waiting = await open(s.port);
      waiting.write(Buffer.concat([Buffer.from(head('/v1/predict', 'image/png', png.length)), png]));
      await until('3 requests in flight', async () => (await inFlight(s.url)) === 3 && s.server.batcher.busy);
      for (const c of [raw, multi, waiting]) c.destroy();
      await until('no request in flight', async () => (await inFlight(s.url)) === 0);
      // the abandoned request's answer is computed and dropped; the server still answers, and the count still balances
      openGate();
      const ok = await fetch(`${s.url}/v1/predict`, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } });
      expect(ok.status).toBe(200);
      expect(await inFlight(s.url)).toBe(0);
      const t0 = Date.now();
      await s.server.close();
      expect(Date.now() - t0).toBeLessThan(3000); // well under the grace period
    } finally {
      openGate();
      await s.server.close();
    }
  }, 20_000);
});

describe('a malformed multipart body', () => {
  const expectBadMultipart = (r: RawResponse) => {
    expect(r.status).toBe(400);
    expect(r.body.error).toBe('invalid_multipart');
    expect(r.body.message).toMatch(/^the multipart\/form-data body is malformed: /);
    expect(r.body.message).not.toContain('\n');
  };

  it('truncated (no closing boundary) or without a boundary: 400 invalid_multipart, one line', async () => {
    const form = multipart([png, png]);
    const truncated = form.subarray(0, form.length - 30);
    expectBadMultipart(await rawPost('/v1/predict/batch', 'multipart/form-data; boundary=tessera-test-boundary', truncated));
    const one = multipart([png]);
    expectBadMultipart(await rawPost('/v1/predict', 'multipart/form-data; boundary=tessera-test-boundary', one.subarray(0, one.length - 30)));
    expectBadMultipart(await rawPost('/v1/predict', 'multipart/form-data; boundary=tessera-test-boundary', one.subarray(0, 120))); // inside the part header
    expectBadMultipart(await rawPost('/v1/predict/batch', 'multipart/form-data', form));
    expectBadMultipart(await rawPost('/v1/predict/batch', 'multipart/form-data; boundary=not-the-one-used', form));
    const res = await fetch(`${url}/v1/predict`, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } });
    expect(res.status).toBe(200);
  }, 15_000);
});

describe('--body-limit on a multipart request', () => {
  it('caps the whole body: many files each under the limit get 413 before the client has sent the rest', async () => {
    // 200 files of 256 KiB (each a quarter of the limit, fewer than the 256-file cap): 50 MiB in all
    const form = multipart(Array.from({ length: 200 }, () => randomBytes(256 * 1024)));
    const r = await rawPost('/v1/predict/batch', 'multipart/form-data; boundary=tessera-test-boundary', form);
    expect(r.status).toBe(413);
    expect(r.body.error).toBe('payload_too_large');
    expect(r.body.message).toBe(`the request body is over the ${BODY_LIMIT}-byte limit (--body-limit); a multipart body counts all its files together`);
    // the server stopped reading: what was sent is the limit plus what the sockets' buffers hold
    expect(r.sentWhenAnswered).toBeGreaterThan(0);
    expect(r.sentWhenAnswered).toBeLessThan(form.length / 2);
    // a raw body over the limit says the same
    const raw = await rawPost('/v1/predict', 'image/png', form);
    expect(raw.status).toBe(413);
    expect(raw.body.message).toBe(r.body.message);
    const ok = await fetch(`${url}/v1/predict/batch`, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } });
    expect(ok.status).toBe(200);
    expect(await inFlight()).toBe(0);
  }, 15_000);

  it('after the 413 the server half-closes and stops reading, and resets the connection only ~500 ms later', async () => {
    // a reset at once can reach the client before it has read the answer (EPIPE instead of the 413)
    const form = multipart(Array.from({ length: 160 }, () => randomBytes(64 * 1024))); // 10 MiB, more than the sockets buffer
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true }); // keeps writing after the server's FIN
    const t = { answered: 0, fin: 0, reset: 0 };
    let text = '';
    s.on('data', (d) => { text += d; t.answered ||= performance.now(); });
    s.on('end', () => { t.fin = performance.now(); });
    const done = new Promise<void>((resolve) => {
      s.on('error', () => { t.reset ||= performance.now(); });
      s.on('close', () => { t.reset ||= performance.now(); resolve(); });
    });
    s.write(head('/v1/predict/batch', 'multipart/form-data; boundary=tessera-test-boundary', form.length));
    let sent = 0;
    const pump = () => {
      while (sent < form.length && !s.destroyed) {
        const piece = form.subarray(sent, sent + 64 * 1024);
        sent += piece.length;
        if (!s.write(piece)) return void s.once('drain', pump);
      }
    };
    pump();
    await Promise.race([done, new Promise((r) => setTimeout(r, 5000))]);
    expect(t.reset, `no reset 5 s after the answer ${JSON.stringify(text.slice(0, 40))}, ${sent} bytes sent`).toBeGreaterThan(0);
    expect(text).toMatch(/^HTTP\/1\.1 413 [^]*\r\nconnection: close\r\n/i);
    expect(t.fin).toBeGreaterThan(0);
    expect(sent).toBeLessThan(form.length); // the server stopped reading, so the upload stalled
    expect(t.reset - t.answered).toBeGreaterThan(300);
    expect(t.reset - t.answered).toBeLessThan(3000);
    s.destroy();
  }, 15_000);

  it('a multipart body under the limit is still read whole', async () => {
    const form = multipart(Array.from({ length: 12 }, () => png));
    const r = await rawPost('/v1/predict/batch', 'multipart/form-data; boundary=tessera-test-boundary', form);
    expect(r.status).toBe(200);
    expect((r.body as { results?: unknown[] }).results).toHaveLength(12);
  }, 15_000);
});
