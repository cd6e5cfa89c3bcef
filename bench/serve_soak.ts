/**
 * Server soak (issue 22): a bounded loopback load test of `tessera serve` under hostile clients.
 * 64 concurrent clients send a seeded mix of valid requests (raw, multipart and JSON batch),
 * malformed ones (bad image bytes, bad JSON, bad query, wrong type, truncated or boundary-less
 * multipart), oversized ones (over --body-limit: raw, chunked, multipart of many small files) and
 * aborted ones (mid-upload or while waiting for the answer) to a server in its own process. It
 * stops by itself after the duration or the request cap, whichever comes first, and reports the
 * statuses per request kind, any 5xx for a client's error (must be none), the server's RSS over
 * time (first vs last minute), p50/p99 latency of the valid requests, the in-flight gauge once
 * the load stops (must return to 0) and how long SIGTERM then takes.
 *
 *   npx tsx bench/serve_soak.ts [--duration 600] [--concurrency 64] [--max-requests 2000000]
 *     [--body-limit 1mb] [--threads N] [--seed 1]      (or SOAK_DURATION_S=600)
 *
 * Exits 1 if a client error got a 5xx, a request kind got a status it should not, or the
 * in-flight gauge does not return to 0. 127.0.0.1 only. RSS is read from /proc (Linux).
 * Weights are the seeded initialisation of vit_tiny_patch4_28: the answers do not matter here.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { createRequire } from 'node:module';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { metaFor } from '../src/checkpoint/checkpoint.js';
import { exportModel } from '../src/export/export.js';
import { createModel } from '../src/models/registry.js';
import { physicalCores } from '../src/runtime/cores.js';
import { createServer, parseByteSize } from '../src/serve/server.js';
import { startInferenceWorker } from '../src/serve/worker_model.js';
import { machineDescription, ortVersion } from '../src/bench/timing.js';

const MODEL = 'vit_tiny_patch4_28';
const fastifyVersion = (createRequire(import.meta.url)('fastify/package.json') as { version: string }).version;
const BOUNDARY = 'soak-boundary-7d1c';

type Group = 'valid' | 'malformed' | 'oversized' | 'aborted';
/** An HTTP status, 'aborted' (the client hung up on purpose) or 'conn:<code>' (the connection failed before an answer). */
type Outcome = number | 'aborted' | `conn:${string}`;

interface Kind {
  name: string;
  group: Group;
  /** Share of the mix, in percent. */
  weight: number;
  /** The outcome it must get. */
  expect: Outcome;
  send(): Promise<Outcome>;
}

/** Child mode: `--serve-child model.onnx bodyLimit threads` serves until SIGTERM, as `tessera serve` does. */
async function serveChild([file, bodyLimit, threads]: string[]): Promise<void> {
  const model = await startInferenceWorker(file!, { threads: Number(threads) });
  const server = await createServer({ model, bodyLimit: Number(bodyLimit) });
  console.log(await server.listen(0));
  process.once('SIGTERM', () => void server.close());
}

function startServer(file: string, bodyLimit: number, threads: number): Promise<{ child: ChildProcess; url: string }> {
  const script = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, ['--import', 'tsx', script, '--serve-child', file, String(bodyLimit), String(threads)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', (d) => resolve({ child, url: String(d).trim() }));
    child.once('exit', (code) => reject(new Error(`the server exited with ${code}`)));
  });
}

const multipart = (files: Uint8Array[], boundary = BOUNDARY) => Buffer.concat([
  ...files.flatMap((f, i) => [Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="images"; filename="${i}.png"\r\ncontent-type: image/png\r\n\r\n`), f, Buffer.from('\r\n')]),
  Buffer.from(`--${boundary}--\r\n`)]);
const multipartType = `multipart/form-data; boundary=${BOUNDARY}`;

/** The kinds of request in the mix; `port` is the server's, `bodyLimit` its --body-limit. */
async function requestKinds(port: number, bodyLimit: number, agent: Agent): Promise<Kind[]> {
  const pngs = await Promise.all(Array.from({ length: 8 }, (_, i) => sharp(randomBytes(28 * 28 * 3), { raw: { width: 28, height: 28, channels: 3 } })
    .png({ compressionLevel: i % 10 }).toBuffer()));
  let turn = 0;
  const png = () => pngs[turn++ % pngs.length]!;
  const json = (v: unknown) => Buffer.from(JSON.stringify(v));
  const oversizedMultipart = multipart(Array.from({ length: Math.min(200, Math.ceil((4 * bodyLimit) / (64 * 1024))) }, () => randomBytes(64 * 1024)));
  const oversizedRaw = randomBytes(2 * bodyLimit);
  const fullMultipart = multipart([pngs[0]!]);

  /** One request over the keep-alive pool; the body as one buffer (content-length) or as chunks (chunked). */
  const http = (path: string, type: string | undefined, body: Buffer | Buffer[]) => new Promise<Outcome>((resolve) => {
    let outcome: Outcome | undefined;
    const headers: Record<string, string> = type ? { 'content-type': type } : {};
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', agent, headers });
    req.setTimeout(30_000, () => req.destroy(Object.assign(new Error('no answer in 30 s'), { code: 'timeout' })));
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(outcome ??= res.statusCode!));
      res.on('error', () => resolve(outcome ??= res.statusCode!));
    });
    // an early answer (413) closes the connection under the upload: that write error comes after the answer
    req.on('error', (e: NodeJS.ErrnoException) => setTimeout(() => resolve(outcome ??= `conn:${e.code ?? e.message}`), 50));
    if (Buffer.isBuffer(body)) req.end(body);
    else {
      for (const c of body) req.write(c);
      req.end();
    }
  });

  /** A raw connection that sends `bytes` and hangs up `afterMs` later, before (or regardless of) the answer. */
  const abort = (bytes: Buffer, afterMs: number) => new Promise<Outcome>((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.write(bytes);
      setTimeout(() => { s.destroy(); resolve('aborted'); }, afterMs);
    });
    s.on('error', () => { s.destroy(); resolve('aborted'); });
  });
  const head = (path: string, type: string, length: number) =>
    Buffer.from(`POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: ${type}\r\ncontent-length: ${length}\r\n\r\n`);

  const kinds: Kind[] = [
    { name: 'raw PNG', group: 'valid', weight: 40, expect: 200, send: () => http('/v1/predict', 'image/png', png()) },
    { name: 'multipart batch of 4', group: 'valid', weight: 10, expect: 200, send: () => http('/v1/predict/batch', multipartType, multipart([png(), png(), png(), png()])) },
    { name: 'JSON batch of 2', group: 'valid', weight: 8, expect: 200, send: () => http('/v1/predict/batch', 'application/json', json({ images: [png().toString('base64'), png().toString('base64')] })) },
    { name: 'bad image bytes', group: 'malformed', weight: 5, expect: 400, send: () => http('/v1/predict', 'image/png', randomBytes(2048)) },
    { name: 'truncated PNG', group: 'malformed', weight: 3, expect: 400, send: () => http('/v1/predict', 'image/png', png().subarray(0, 60)) },
    { name: 'bad JSON', group: 'malformed', weight: 4, expect: 400, send: () => http('/v1/predict/batch', 'application/json', Buffer.from('{"images": ["iVBOR')) },
    { name: 'JSON of the wrong shape', group: 'malformed', weight: 2, expect: 400, send: () => http('/v1/predict/batch', 'application/json', json({ images: 5 })) },
    { name: 'bad query (?topk=0, topk=abc, logits=maybe)', group: 'malformed', weight: 5, expect: 400, send: () => http(`/v1/predict?${['topk=0', 'topk=abc', 'logits=maybe'][turn % 3]}`, 'image/png', png()) },
    { name: 'text/plain body', group: 'malformed', weight: 3, expect: 415, send: () => http('/v1/predict', 'text/plain', Buffer.from('a cat')) },
    { name: 'empty body', group: 'malformed', weight: 2, expect: 400, send: () => http('/v1/predict', 'image/png', Buffer.alloc(0)) },
    { name: 'truncated multipart', group: 'malformed', weight: 3, expect: 400, send: () => http('/v1/predict', multipartType, fullMultipart.subarray(0, fullMultipart.length - 30)) },
    { name: 'multipart without boundary', group: 'malformed', weight: 2, expect: 400, send: () => http('/v1/predict', 'multipart/form-data', fullMultipart) },
    { name: 'two files to /v1/predict', group: 'malformed', weight: 2, expect: 413, send: () => http('/v1/predict', multipartType, multipart([png(), png()])) },
    { name: `raw body of 2× the limit`, group: 'oversized', weight: 2, expect: 413, send: () => http('/v1/predict', 'image/png', oversizedRaw) },
    { name: 'chunked raw body of 2× the limit', group: 'oversized', weight: 1, expect: 413, send: () => http('/v1/predict', 'image/png', [oversizedRaw.subarray(0, bodyLimit), oversizedRaw.subarray(bodyLimit)]) },
    { name: `multipart of 64 KiB files, 4× the limit`, group: 'oversized', weight: 2, expect: 413, send: () => http('/v1/predict/batch', multipartType, oversizedMultipart) },
    { name: 'aborted mid-upload', group: 'aborted', weight: 3, expect: 'aborted', send: () => { const b = png(); return abort(Buffer.concat([head('/v1/predict', 'image/png', b.length), b.subarray(0, b.length >> 1)]), 5); } },
    { name: 'aborted mid-multipart', group: 'aborted', weight: 1, expect: 'aborted', send: () => { const b = multipart([png(), png()]); return abort(Buffer.concat([head('/v1/predict/batch', multipartType, b.length), b.subarray(0, b.length - 100)]), 5); } },
    { name: 'aborted while waiting for the answer', group: 'aborted', weight: 2, expect: 'aborted', send: () => { const b = png(); return abort(Buffer.concat([head('/v1/predict', 'image/png', b.length), b]), 1); } },
  ];
  const total = kinds.reduce((s, k) => s + k.weight, 0);
  if (total !== 100) throw new Error(`the mix's weights add up to ${total}, not 100`);
  return kinds;
}

/** mulberry32: a seeded uniform [0, 1) stream, so the mix is the same run to run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function rssMb(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
  } catch {
    return NaN; // the server has exited; its requests' outcomes say so
  }
}
const quantile = (sorted: Float64Array, q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);

interface SoakOptions { durationS: number; concurrency: number; maxRequests: number; bodyLimit: number; threads: number; seed: number }

async function soak(o: SoakOptions): Promise<{ report: string; ok: boolean }> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-soak-'));
  const model = createModel(MODEL, { seed: 1 });
  const file = join(dir, `${MODEL}.onnx`);
  writeFileSync(file, exportModel(model, metaFor(MODEL, model, Array.from({ length: model.config.numClasses }, (_, i) => `class ${i}`))).bytes);
  const { child, url } = await startServer(file, o.bodyLimit, o.threads);
  const port = Number(new URL(url).port);
  const agent = new Agent({ keepAlive: true, maxSockets: o.concurrency });
  try {
    const kinds = await requestKinds(port, o.bodyLimit, agent);
    const counts = new Map(kinds.map((k) => [k, new Map<Outcome, number>()]));
    const latencies: number[] = [];
    const rss: { t: number; mb: number }[] = [];
    const random = seeded(o.seed);
    const pick = () => {
      let r = random() * 100;
      for (const k of kinds) if ((r -= k.weight) < 0) return k;
      return kinds[kinds.length - 1]!;
    };
    const loadBefore = loadavg();
    const t0 = performance.now();
    const elapsedS = () => (performance.now() - t0) / 1000;
    let sent = 0;
    const sample = () => rss.push({ t: elapsedS(), mb: rssMb(child.pid!) });
    sample();
    const sampler = setInterval(sample, 5000);
    const progress = setInterval(() => process.stderr.write(`… ${elapsedS().toFixed(0)} s: ${sent} requests, server RSS ${rss.at(-1)!.mb.toFixed(0)} MB\n`), 60_000);
    const client = async () => {
      while (elapsedS() < o.durationS && sent < o.maxRequests) {
        sent++;
        const k = pick();
        const start = performance.now();
        const outcome = await k.send();
        if (k.group === 'valid' && outcome === 200) latencies.push(performance.now() - start);
        const m = counts.get(k)!;
        m.set(outcome, (m.get(outcome) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: o.concurrency }, client));
    const wallS = elapsedS();
    const loadAfter = loadavg();
    clearInterval(sampler);
    clearInterval(progress);
    sample();
    agent.destroy();

    // the aborted requests' answers are computed and dropped; then nothing may be left in flight
    let inFlight = NaN;
    for (let i = 0; i < 100; i++) {
      const text = await (await fetch(`${url}/metrics`, { headers: { connection: 'close' } })).text();
      inFlight = metric(text, 'tessera_http_requests_in_flight') - 1; // less this request
      if (inFlight === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const stopT0 = performance.now();
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    const stopMs = performance.now() - stopT0;

    // the report
    const clientErrors5xx = kinds.filter((k) => k.group !== 'valid')
      .reduce((s, k) => s + [...counts.get(k)!].filter(([st]) => typeof st === 'number' && st >= 500).reduce((a, [, n]) => a + n, 0), 0);
    const unexpected = kinds.flatMap((k) => [...counts.get(k)!].filter(([st]) => st !== k.expect).map(([st, n]) => `${k.name}: ${n}× ${st}`));
    const sorted = Float64Array.from(latencies).sort();
    const minute = (from: number, to: number) => rss.filter((s) => s.t >= from && s.t <= to).map((s) => s.mb);
    const first = minute(0, 60);
    const last = minute(wallS - 60, wallS + 1);
    const range = (a: number[]) => `${Math.min(...a).toFixed(0)}–${Math.max(...a).toFixed(0)} MB`;
    const perMinute = Array.from({ length: Math.ceil(wallS / 60) }, (_, m) => Math.max(...minute(m * 60, (m + 1) * 60))).map((v) => v.toFixed(0));
    const total = [...counts.values()].reduce((s, m) => s + [...m.values()].reduce((a, n) => a + n, 0), 0);
    const rows = kinds.map((k) => {
      const m = counts.get(k)!;
      const cells = [...m].sort(([a], [b]) => String(a).localeCompare(String(b))).map(([st, n]) => `${st}: ${n}`).join(', ');
      return `| ${k.name} | ${k.group} | ${k.weight}% | ${k.expect} | ${cells} |`;
    });
    const ok = clientErrors5xx === 0 && unexpected.length === 0 && inFlight === 0;
    const report = [
      `Server soak: \`tessera serve\`-equivalent server of ${MODEL} (random weights) in its own process, ${o.threads} ORT thread(s), --body-limit ${o.bodyLimit} bytes;`
      + ` ${o.concurrency} concurrent loopback clients for ${wallS.toFixed(0)} s (${machineDescription()}), seed ${o.seed};`
      + ` Node ${process.version}, onnxruntime-node ${ortVersion()}, fastify ${fastifyVersion}.`,
      `Load average (1, 5, 15 min) at the start ${loadBefore.map((v) => v.toFixed(2)).join(', ')}, at the end ${loadAfter.map((v) => v.toFixed(2)).join(', ')}.`,
      '',
      `- requests: ${total} (${(total / wallS).toFixed(0)}/s)`,
      `- 5xx for a client error: ${clientErrors5xx}`,
      `- outcomes other than expected: ${unexpected.length ? unexpected.join('; ') : 'none'}`,
      `- valid requests answered 200: ${latencies.length}; latency p50 ${quantile(sorted, 0.5).toFixed(1)} ms, p99 ${quantile(sorted, 0.99).toFixed(1)} ms`,
      `- server RSS: first minute ${range(first)}, last minute ${range(last)}; the highest each minute: ${perMinute.join(', ')} MB`,
      `- in flight once the load stopped: ${inFlight}; SIGTERM to exit: ${stopMs.toFixed(0)} ms`,
      '',
      '| request | group | share | expected | outcomes |',
      '|---|---|---|---|---|',
      ...rows,
    ].join('\n');
    return { report, ok };
  } finally {
    agent.destroy();
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

const argv = process.argv.slice(2);
if (argv[0] === '--serve-child') {
  await serveChild(argv.slice(1));
} else {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i]!.startsWith('--') || argv[i + 1] === undefined) throw new Error(`expected --flag value pairs, got "${argv.slice(i).join(' ')}"`);
    flags.set(argv[i]!, argv[i + 1]!);
  }
  const known = ['--duration', '--concurrency', '--max-requests', '--body-limit', '--threads', '--seed'];
  for (const f of flags.keys()) if (!known.includes(f)) throw new Error(`unknown flag ${f}; choose from ${known.join(', ')}`);
  const num = (name: string, dflt: string) => {
    const v = Number(flags.get(name) ?? dflt);
    if (!(Number.isFinite(v) && v > 0)) throw new Error(`${name} must be a positive number, got "${flags.get(name)}"`);
    return v;
  };
  const { report, ok } = await soak({
    durationS: num('--duration', process.env.SOAK_DURATION_S ?? '600'),
    concurrency: num('--concurrency', '64'),
    maxRequests: num('--max-requests', '2000000'),
    bodyLimit: parseByteSize(flags.get('--body-limit') ?? '1mb'),
    threads: num('--threads', String(physicalCores())),
    seed: num('--seed', '1'),
  });
  console.log(report);
  if (!ok) process.exitCode = 1;
}
