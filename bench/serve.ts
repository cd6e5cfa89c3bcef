/**
 * Serving benchmarks (issue 7):
 *   server: throughput and p50/p99 latency of POST /v1/predict at concurrency 1, 8 and 32
 *           (autocannon on loopback) with dynamic batching (--max-batch 32) and batch-1 serving
 *           (--max-batch 1), same model, the server in its own process;
 *   int8:   fp32 vs dynamic-int8 exports of vit_tiny_patch16_224 at batch 1 and 32 (ORT CPU).
 *
 *   npx tsx bench/serve.ts [server|int8]… [--model vit_tiny_patch4_28] [--duration 10] [--threads N] [--max-wait-ms 5] [--repeats 20]
 *
 * Weights are the seeded initialisation: speed does not depend on their values.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import sharp from 'sharp';
import { metaFor } from '../src/checkpoint/checkpoint.js';
import { exportModel, quantizeExport } from '../src/export/export.js';
import { createModel } from '../src/models/registry.js';
import { loadOnnxModel, type OnnxModel } from '../src/runtime/onnx_model.js';
import { physicalCores } from '../src/runtime/cores.js';
import { createServer } from '../src/serve/server.js';
import { startInferenceWorker } from '../src/serve/worker_model.js';
import { machineDescription } from '../src/bench/timing.js';

const CONCURRENCY = [1, 8, 32];

interface ServerRow { maxBatch: number; concurrency: number; rps: number; p50: number; p99: number; meanBatch: number; errors: number }

/** Child mode: `bench/serve.ts --serve-child model.onnx maxBatch maxWaitMs threads` serves until SIGTERM. */
async function serveChild([file, maxBatch, maxWaitMs, threads]: string[]): Promise<void> {
  const model = await startInferenceWorker(file!, { threads: Number(threads) });
  const server = await createServer({ model, maxBatch: Number(maxBatch), maxWaitMs: Number(maxWaitMs) });
  console.log(await server.listen(0));
  process.once('SIGTERM', () => void server.close());
}

function startServer(file: string, maxBatch: number, maxWaitMs: number, threads: number): Promise<{ child: ChildProcess; url: string }> {
  const script = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, ['--import', 'tsx', script, '--serve-child', file, String(maxBatch), String(maxWaitMs), String(threads)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', (d) => resolve({ child, url: String(d).trim() }));
    child.once('exit', (code) => reject(new Error(`the server exited with ${code}`)));
  });
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);

async function load(url: string, body: Buffer, connections: number, duration: number): Promise<Omit<ServerRow, 'maxBatch' | 'concurrency' | 'meanBatch'>> {
  const r = await autocannon({
    url: `${url}/v1/predict`, method: 'POST', body, headers: { 'content-type': 'image/png' },
    connections, duration, pipelining: 1,
  });
  const ok = r['2xx'];
  return { rps: ok / r.duration, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx + r.timeouts };
}

async function benchServer(modelName: string, duration: number, threads: number, maxWaitMs: number, dir: string): Promise<string> {
  const model = createModel(modelName, { seed: 1 });
  const [c, h, w] = model.inputShape;
  const file = join(dir, `${modelName}.onnx`);
  writeFileSync(file, exportModel(model, metaFor(modelName, model, Array.from({ length: model.numClasses }, (_, i) => `class ${i}`))).bytes);
  // an image of the model's input size, so the server's resize is a no-op and the numbers show serving and inference
  const px = Buffer.from(Array.from({ length: h * w * Math.max(c, 3) }, (_, i) => (i * 37) % 251));
  const body = await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
  const rows: ServerRow[] = [];
  for (const maxBatch of [1, 32]) {
    const { child, url } = await startServer(file, maxBatch, maxWaitMs, threads);
    try {
      await load(url, body, 8, 2); // warm-up
      for (const concurrency of CONCURRENCY) {
        const before = await (await fetch(`${url}/metrics`)).text();
        const r = await load(url, body, concurrency, duration);
        const after = await (await fetch(`${url}/metrics`)).text();
        const images = metric(after, 'tessera_batch_size_sum') - metric(before, 'tessera_batch_size_sum');
        const batches = metric(after, 'tessera_batch_size_count') - metric(before, 'tessera_batch_size_count');
        rows.push({ maxBatch, concurrency, ...r, meanBatch: images / batches });
        process.stderr.write(`… max-batch ${maxBatch}, concurrency ${concurrency}: ${r.rps.toFixed(0)} req/s\n`);
      }
    } finally {
      await stop(child);
    }
  }
  const out = [
    `Server: \`tessera serve\` of ${modelName} (${c}×${h}×${w}, PNG uploads of that size), ${threads} ORT thread(s), autocannon on loopback for ${duration} s per row`
    + ` (load generator and server share the machine: ${machineDescription()}), --max-wait-ms ${maxWaitMs}.`,
    '',
    '| serving | concurrency | requests/s | p50 latency | p99 latency | mean batch | errors |',
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.maxBatch === 1 ? 'batch-1 (--max-batch 1)' : 'dynamic batching (--max-batch 32)'} | ${r.concurrency} | ${r.rps.toFixed(0)} | ${r.p50} ms | ${r.p99} ms | ${r.meanBatch.toFixed(1)} | ${r.errors} |`),
  ];
  for (const concurrency of CONCURRENCY) {
    const [one, dyn] = [1, 32].map((b) => rows.find((r) => r.maxBatch === b && r.concurrency === concurrency)!);
    out.push(`${concurrency === CONCURRENCY[0] ? '\n' : ''}- concurrency ${concurrency}: dynamic batching ÷ batch-1 throughput = ${(dyn!.rps / one!.rps).toFixed(2)}×`);
  }
  return out.join('\n');
}

/** Median ms of fp32 and int8 runs at one batch size, alternating the two so both see the same machine load. */
async function interleaved(f: OnnxModel, q: OnnxModel, batch: number, repeats: number): Promise<[number, number]> {
  const [c, h, w] = f.meta.inputSize;
  const x = Float32Array.from({ length: batch * c * h * w }, (_, i) => Math.sin(i));
  const times: [number[], number[]] = [[], []];
  for (let r = -2; r < repeats; r++) {
    for (const [k, m] of [f, q].entries()) {
      const t0 = performance.now();
      await m.run(x);
      if (r >= 0) times[k]!.push(performance.now() - t0);
    }
  }
  const median = (a: number[]) => a.sort((u, v) => u - v)[Math.floor(a.length / 2)]!;
  return [median(times[0]), median(times[1])];
}

async function benchInt8(repeats: number, threads: number): Promise<string> {
  const name = 'vit_tiny_patch16_224';
  const model = createModel(name, { seed: 1 });
  const fp32 = exportModel(model, metaFor(name, model, Array.from({ length: 1000 }, (_, i) => String(i))));
  const int8 = quantizeExport(fp32);
  const [f, q] = [await loadOnnxModel(fp32.bytes, { threads }), await loadOnnxModel(int8.bytes, { threads })];
  const rows: string[] = [];
  for (const batch of [1, 32]) {
    const [fm, qm] = await interleaved(f, q, batch, repeats);
    const ips = (ms: number) => ((1000 * batch) / ms).toFixed(1);
    rows.push(`| ${batch} | ${fm.toFixed(2)} ms (${ips(fm)} img/s) | ${qm.toFixed(2)} ms (${ips(qm)} img/s) | ${(fm / qm).toFixed(2)}× |`);
  }
  await Promise.all([f.dispose(), q.dispose()]);
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MB`;
  return [
    `int8 vs fp32: ${name} exported by tessera (fp32 ${mb(fp32.bytes.byteLength)}, int8 ${mb(int8.bytes.byteLength)}, ${int8.quantization!.weights.length} weight matmuls per output channel),`
    + ` ORT CPU, ${threads} thread(s), median of ${repeats} alternating runs after 2 warm-ups (${machineDescription()}).`,
    '',
    '| batch | fp32 | int8 | int8 speed-up |',
    '|---|---|---|---|',
    ...rows,
  ].join('\n');
}

const argv = process.argv.slice(2);
if (argv[0] === '--serve-child') {
  await serveChild(argv.slice(1));
} else {
  const flags = new Map<string, string>();
  const sections: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i]!.startsWith('--')) flags.set(argv[i]!, argv[++i] ?? '');
    else sections.push(argv[i]!);
  }
  const flag = (name: string, dflt: string) => flags.get(name) ?? dflt;
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-serve-'));
  try {
    for (const s of sections.length ? sections : ['server', 'int8']) {
      if (s === 'server') {
        const threads = Number(flag('--threads', String(physicalCores())));
        console.log(await benchServer(flag('--model', 'vit_tiny_patch4_28'), Number(flag('--duration', '10')), threads, Number(flag('--max-wait-ms', '5')), dir));
      }
      else if (s === 'int8') console.log(await benchInt8(Number(flag('--repeats', '20')), Number(flag('--threads', String(physicalCores())))));
      else throw new Error(`unknown section "${s}"; choose server or int8`);
      console.log();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
