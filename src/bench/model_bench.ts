/**
 * `tessera bench --model M --batch-size B`: inference and a full training step (forward,
 * backward, AdamW) against PyTorch eager on the same model, and inference against ORT running
 * PyTorch's own ONNX export — all in one run, same machine, same thread count.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createModel, getModelEntry } from '../models/registry.js';
import { compile } from '../runtime/compile.js';
import { openSession } from '../runtime/session.js';
import { physicalCores } from '../runtime/cores.js';
import { Graph } from '../ir/graph.js';
import { BATCH } from '../ir/shape.js';
import { countFlops } from '../ir/flops.js';
import { matmul } from '../ops/index.js';
import { Random } from '../random.js';
import { buildBenchTrainStep } from './train_step.js';
import { machineDescription, medianSeconds, peakRssMb } from './timing.js';
import { peerScript, runPeer, torchAvailable } from './peers.js';

export interface ModelBenchOptions { model: string; batchSize: number; repeats: number; threads?: number; peers?: boolean }

export interface Measurement { seconds: number; imagesPerSecond: number; peakRssMb?: number }

export interface ModelBenchResult {
  date: string;
  machine: string;
  threads: number;
  model: string;
  batchSize: number;
  forwardGflopsPerImage: number;
  sgemmPeakGflops: number;
  tessera: { inference: Measurement; training: Measurement };
  pytorch?: { version: string; inference: Measurement; training: Measurement };
  ortOnPytorchExport?: { inference: Measurement };
}

interface PeerResult { seconds: number; images_per_second: number; peak_rss_mb: number; torch?: string }

const randomImages = (n: number, rng: Random) => {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.uniform() * 2 - 1;
  return x;
};

/** The engine's sgemm throughput on a large square product: the machine peak for MFU. */
async function sgemmPeak(threads: number, repeats: number): Promise<number> {
  const n = 2048;
  const rng = new Random(1);
  const b = randomImages(n * n, rng);
  const exe = await compile((a) => matmul(a, a.graph.param('b', b, [n, n])), [{ name: 'a', shape: [n, n] }], { threads, params: 'initializers' });
  const a = randomImages(n * n, rng);
  const s = await medianSeconds(() => exe.run({ a }), repeats);
  await exe.dispose();
  return (2 * n ** 3) / s / 1e9;
}

/** Runs in a child process so that its peak RSS is the training step's alone. */
export async function trainWorker(model: string, batchSize: number, repeats: number, threads: number): Promise<Measurement> {
  const m = createModel(model);
  const step = await buildBenchTrainStep(m, { threads });
  const rng = new Random(0);
  const [c, h, w] = m.inputShape;
  const x = randomImages(batchSize * c * h * w, rng);
  const y = BigInt64Array.from({ length: batchSize }, () => BigInt(rng.int(m.numClasses)));
  const seconds = await medianSeconds(() => step.step(x, y, 1e-4), repeats);
  await step.exe.dispose();
  return { seconds, imagesPerSecond: batchSize / seconds, peakRssMb: peakRssMb() };
}

function spawnTrainWorker(model: string, batchSize: number, repeats: number, threads: number): Measurement {
  const r = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, 'bench', '--worker', 'train',
    '--model', model, '--batch-size', String(batchSize), '--repeats', String(repeats), '--threads', String(threads)], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`training benchmark worker failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Measurement;
}

const fromPeer = (p: PeerResult): Measurement => ({ seconds: p.seconds, imagesPerSecond: p.images_per_second, peakRssMb: p.peak_rss_mb });

export async function benchModel(opts: ModelBenchOptions, log: (msg: string) => void = () => {}): Promise<ModelBenchResult> {
  const threads = opts.threads ?? physicalCores();
  const { model: name, batchSize, repeats } = opts;
  const entry = getModelEntry(name);
  const model = createModel(name);
  const [c, h, w] = model.inputShape;
  const rng = new Random(0);
  const x = randomImages(batchSize * c * h * w, rng);

  const g = new Graph();
  const forwardFlops = countFlops(g, [model.forward(g.input('x', [BATCH, c, h, w])).logits]);

  log('measuring the machine sgemm peak');
  const sgemmPeakGflops = await sgemmPeak(threads, repeats);

  log('tessera inference');
  const infer = await compile((t) => model.forward(t).logits, [{ name: 'x', shape: ['batch', c, h, w] }], { threads, params: 'initializers' });
  const inferSeconds = await medianSeconds(() => infer.run({ x }), repeats);
  await infer.dispose();

  log('tessera training step (separate process, for its peak memory)');
  const training = spawnTrainWorker(name, batchSize, repeats, threads);

  const result: ModelBenchResult = {
    date: new Date().toISOString().slice(0, 10),
    machine: machineDescription(),
    threads,
    model: name,
    batchSize,
    forwardGflopsPerImage: forwardFlops / 1e9,
    sgemmPeakGflops,
    tessera: { inference: { seconds: inferSeconds, imagesPerSecond: batchSize / inferSeconds }, training },
  };

  // the PyTorch peer script builds timm-style ViTs from the entry's args
  if (entry.family !== 'vit' && opts.peers !== false) log(`no PyTorch peer for the ${entry.family} family: peer columns empty`);
  if (entry.family === 'vit' && opts.peers !== false && torchAvailable()) {
    const script = peerScript('torch_vit.py');
    const config = JSON.stringify(entry.config);
    log('PyTorch eager inference and training (separate processes)');
    const pInfer = runPeer<PeerResult>(script, ['infer', threads, batchSize, repeats, '-', config], threads);
    const pTrain = runPeer<PeerResult>(script, ['train', threads, batchSize, repeats, '-', config], threads);
    result.pytorch = { version: pInfer.torch ?? 'unknown', inference: fromPeer(pInfer), training: fromPeer(pTrain) };

    log('ORT on the torch.onnx.export model');
    const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-'));
    try {
      const path = join(dir, 'torch_export.onnx');
      runPeer(script, ['export', threads, 1, 1, path, config], threads);
      const session = await openSession(readFileSync(path), { threads });
      const feedName = session.inputNames[0]!;
      const s = await medianSeconds(() => session.run({ [feedName]: { dtype: 'float32', data: x, shape: [batchSize, c, h, w] } }), repeats);
      await session.release();
      result.ortOnPytorchExport = { inference: { seconds: s, imagesPerSecond: batchSize / s } };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return result;
}

export function formatModelBench(r: ModelBenchResult): string {
  const trainFlops = 3 * r.forwardGflopsPerImage; // backward ≈ 2× forward
  const mfu = (m: Measurement, flopsPerImage: number) => `${((m.imagesPerSecond * flopsPerImage) / r.sgemmPeakGflops * 100).toFixed(0)}%`;
  const ratio = (a?: Measurement, b?: Measurement) => (a && b ? (a.imagesPerSecond / b.imagesPerSecond).toFixed(2) : 'n/a');
  const img = (m?: Measurement) => (m ? m.imagesPerSecond.toFixed(1) : 'n/a');
  const mem = (m?: Measurement) => (m?.peakRssMb ? `${m.peakRssMb.toFixed(0)} MB` : '');
  const lines = [
    `${r.model}, batch ${r.batchSize} — ${r.date}, ${r.machine}, ${r.threads} threads each` +
      (r.pytorch ? `, PyTorch ${r.pytorch.version}` : ', PyTorch not available: peer columns empty'),
    `forward ${r.forwardGflopsPerImage.toFixed(2)} GFLOPs/image; measured sgemm peak ${r.sgemmPeakGflops.toFixed(0)} GFLOP/s (MFU is against it)`,
    '',
    '| workload | tessera img/s | PyTorch eager img/s | ORT on torch export img/s | tessera ÷ PyTorch | tessera ÷ ORT-export | tessera MFU | peak RSS tessera / PyTorch |',
    '|---|---|---|---|---|---|---|---|',
    `| inference | ${img(r.tessera.inference)} | ${img(r.pytorch?.inference)} | ${img(r.ortOnPytorchExport?.inference)} | ${ratio(r.tessera.inference, r.pytorch?.inference)} | ${ratio(r.tessera.inference, r.ortOnPytorchExport?.inference)} | ${mfu(r.tessera.inference, r.forwardGflopsPerImage)} | |`,
    `| training step (fwd+bwd+AdamW) | ${img(r.tessera.training)} | ${img(r.pytorch?.training)} | | ${ratio(r.tessera.training, r.pytorch?.training)} | | ${mfu(r.tessera.training, trainFlops)} | ${mem(r.tessera.training)} / ${mem(r.pytorch?.training)} |`,
  ];
  return lines.join('\n');
}
