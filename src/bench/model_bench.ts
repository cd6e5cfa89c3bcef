/**
 * `tessera bench --model M --batch-size B`: inference and a full training step (forward,
 * cross-entropy, backward, AdamW) of tessera side by side with its peers, all in one run on the
 * same machine: PyTorch 1.13 eager (Debian), PyTorch 2.x eager with SDPA and torch.compile, both
 * also under bf16 autocast (when the 2.x wheel is installed), and ORT running PyTorch's own ONNX
 * export. Every engine runs at each thread count from 1 to the core count; each is reported at
 * its best, with the thread count that gave it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
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
import { machineDescription, medianSeconds, ortVersion, peakRssMb } from './timing.js';
import { peerScript, probeTorch, probeTorch2, runPeer, type PythonEnv } from './peers.js';

/** The engines of the table, in its order; `--engines` picks among the peers (tessera always runs). */
export const ENGINE_IDS = ['tessera', 'torch1', 'torch2', 'torch2-compile', 'torch2-bf16', 'torch2-compile-bf16', 'ort-export'] as const;
export type EngineId = (typeof ENGINE_IDS)[number];

export interface ModelBenchOptions {
  model: string;
  batchSize: number;
  repeats: number;
  /** Thread counts to try for every engine; default 1 … physical cores. */
  threadCounts?: number[];
  /** One fixed thread count (the same as threadCounts: [threads]). */
  threads?: number;
  /** false: tessera only. */
  peers?: boolean;
  /** Which peers to run (default all). */
  engines?: EngineId[];
}

export interface Measurement { threads: number; seconds: number; imagesPerSecond: number; peakRssMb?: number; firstCallSeconds?: number }

/** One workload of one engine over the thread sweep. */
export interface Sweep { best: Measurement; all: Measurement[] }

export interface EngineRow {
  id: EngineId;
  label: string;
  precision: 'fp32' | 'bf16';
  /** Why the row has no numbers (one line), when it has none. */
  skipped?: string;
  inference?: Sweep;
  training?: Sweep;
  /** Why one workload is empty while the other is not. */
  inferenceNote?: string;
  trainingNote?: string;
}

export interface ModelBenchResult {
  date: string;
  machine: string;
  threadCounts: number[];
  model: string;
  batchSize: number;
  repeats: number;
  versions: Record<string, string>;
  forwardGflopsPerImage: number;
  sgemmPeakGflops: number;
  sgemmPeakThreads: number;
  engines: EngineRow[];
}

interface PeerResult { seconds: number; images_per_second: number; peak_rss_mb: number; torch?: string; warmup_seconds?: number; optimizer?: string; attention?: string; source?: string; params?: number }

/** Families other than vit that bench/peers/torch_family.py builds. */
export const PEER_FAMILIES = ['swin', 'convit', 'cvt', 'mobilevit'];

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
  return { threads, seconds, imagesPerSecond: batchSize / seconds, peakRssMb: peakRssMb() };
}

/** The `tessera` CLI entry next to this module: src/cli/bin.ts under tsx, dist/src/cli/bin.js when built. */
function cliEntry(): string {
  const here = fileURLToPath(import.meta.url);
  const ext = here.endsWith('.ts') ? 'ts' : 'js';
  const bin = join(dirname(here), '..', 'cli', `bin.${ext}`);
  if (!existsSync(bin)) throw new Error(`the tessera CLI entry ${bin} is missing (needed for the training-step worker)`);
  return bin;
}

function spawnTrainWorker(model: string, batchSize: number, repeats: number, threads: number): Measurement {
  const r = spawnSync(process.execPath, [...process.execArgv, cliEntry(), 'bench', '--worker', 'train',
    '--model', model, '--batch-size', String(batchSize), '--repeats', String(repeats), '--threads', String(threads)], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`training benchmark worker failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Measurement;
}

const fromPeer = (p: PeerResult, threads: number): Measurement => ({
  threads, seconds: p.seconds, imagesPerSecond: p.images_per_second, peakRssMb: p.peak_rss_mb, firstCallSeconds: p.warmup_seconds,
});

/** The best (highest img/s) of a sweep over thread counts. */
export function bestOf(all: Measurement[]): Sweep {
  if (all.length === 0) throw new Error('an empty thread sweep has no best');
  return { best: all.reduce((a, b) => (b.imagesPerSecond > a.imagesPerSecond ? b : a)), all };
}

async function sweep(threadCounts: number[], measure: (threads: number) => Promise<Measurement> | Measurement): Promise<Sweep> {
  const all: Measurement[] = [];
  for (const t of threadCounts) all.push(await measure(t));
  return bestOf(all);
}

const firstLine = (e: unknown): string => {
  const msg = e instanceof Error ? e.message : String(e);
  const lines = msg.split('\n').map((l) => l.trim()).filter(Boolean);
  // a Python traceback's last line says what went wrong
  return (lines.length > 1 ? `${lines[0]} … ${lines[lines.length - 1]}` : lines[0] ?? 'failed').slice(0, 300);
};

export function defaultThreadCounts(): number[] {
  return Array.from({ length: physicalCores() }, (_, i) => i + 1);
}

export async function benchModel(opts: ModelBenchOptions, log: (msg: string) => void = () => {}): Promise<ModelBenchResult> {
  const threadCounts = opts.threadCounts ?? (opts.threads ? [opts.threads] : defaultThreadCounts());
  const maxThreads = Math.max(...threadCounts);
  const { model: name, batchSize, repeats } = opts;
  const entry = getModelEntry(name);
  const model = createModel(name);
  const [c, h, w] = model.inputShape;
  const rng = new Random(0);
  const x = randomImages(batchSize * c * h * w, rng);
  const wanted = (id: EngineId) => id === 'tessera' || (opts.peers !== false && (!opts.engines || opts.engines.includes(id)));

  const g = new Graph();
  const forwardFlops = countFlops(g, [model.forward(g.input('x', [BATCH, c, h, w])).logits]);

  log(`measuring the machine sgemm peak (${maxThreads} threads)`);
  const sgemmPeakGflops = await sgemmPeak(maxThreads, repeats);

  const engines: EngineRow[] = [];
  const versions: Record<string, string> = { node: process.versions.node, 'onnxruntime-node': ortVersion() };

  // tessera
  const tessera: EngineRow = { id: 'tessera', label: 'tessera', precision: 'fp32' };
  tessera.inference = await sweep(threadCounts, async (threads) => {
    log(`tessera inference, ${threads} thread(s)`);
    const infer = await compile((t) => model.forward(t).logits, [{ name: 'x', shape: ['batch', c, h, w] }], { threads, params: 'initializers' });
    const seconds = await medianSeconds(() => infer.run({ x }), repeats);
    await infer.dispose();
    return { threads, seconds, imagesPerSecond: batchSize / seconds };
  });
  tessera.training = await sweep(threadCounts, (threads) => {
    log(`tessera training step, ${threads} thread(s) (separate process, for its peak memory)`);
    return spawnTrainWorker(name, batchSize, repeats, threads);
  });
  engines.push(tessera);

  const peersWanted = ENGINE_IDS.filter((id) => id !== 'tessera' && wanted(id));
  if (peersWanted.length === 0) return finish();
  // torch_vit.py builds timm-style ViTs from the entry's args; torch_family.py builds the other
  // families (timm's model where the environment can import timm, else the repo's port)
  const isVit = entry.family === 'vit';
  if (!isVit && !PEER_FAMILIES.includes(entry.family)) {
    for (const id of peersWanted) engines.push({ id, label: id, precision: id.endsWith('bf16') ? 'bf16' : 'fp32', skipped: `no PyTorch peer for the ${entry.family} family` });
    return finish();
  }

  const script = peerScript(isVit ? 'torch_vit.py' : 'torch_family.py');
  const config = JSON.stringify(entry.config);
  // torch_family.py: the family, timm's name and the full input/head config after PATH
  const modelArgs = isVit ? [config] : [entry.family, name, JSON.stringify({ ...entry.config, inChans: c, imgSize: h, numClasses: model.numClasses })];
  const tesseraParams = model.numParams();
  /** A peer must build the same architecture: its parameter count is the registry's. */
  const checked = (p: PeerResult): PeerResult => {
    if (p.params !== undefined && p.params !== tesseraParams) {
      throw new Error(`peer model (${p.source}) has ${p.params} parameters, the registry's ${name} has ${tesseraParams}: not the same architecture`);
    }
    if (p.source) peerSources.add(`${p.source}${p.torch ? ` (PyTorch ${p.torch.split('+')[0]})` : ''}`);
    return p;
  };
  const peerSources = new Set<string>();
  const torch1 = probeTorch();
  const torch1Env: PythonEnv = {};
  const { env: torch2Env, probe: torch2 } = probeTorch2();
  if (torch1.ok) versions['PyTorch (Debian)'] = torch1.version;
  if (torch2.ok) versions['PyTorch 2.x'] = `${torch2.version} (${torch2Env.pythonPath})`;

  const torchRow = async (id: EngineId, label: string, env: PythonEnv, probe: typeof torch1, flags: string[]): Promise<EngineRow> => {
    const row: EngineRow = { id, label, precision: flags.includes('--bf16') ? 'bf16' : 'fp32' };
    if (!probe.ok) return { ...row, skipped: probe.reason };
    try {
      for (const mode of ['infer', 'train'] as const) {
        const s = await sweep(threadCounts, (threads) => {
          log(`${label} ${mode === 'infer' ? 'inference' : 'training step'}, ${threads} thread(s)`);
          return fromPeer(checked(runPeer<PeerResult>(script, [mode, threads, batchSize, repeats, '-', ...modelArgs, ...flags], threads, env)), threads);
        });
        if (mode === 'infer') row.inference = s;
        else row.training = s;
      }
    } catch (e) {
      if (!row.inference && !row.training) return { ...row, skipped: `failed: ${firstLine(e)}` };
      row.trainingNote = `failed: ${firstLine(e)}`;
    }
    return row;
  };

  // --attn sdpa reaches the peer's attention for ViT, Swin (timm's fused path) and MobileViT;
  // ConViT's and CvT's references compute it as written (bench/peers/torch_family.py)
  const sdpa = ['vit', 'swin', 'mobilevit'].includes(entry.family) ? ' (SDPA)' : '';
  const v2 = torch2.ok ? torch2.version.split('+')[0] : '2.x';
  const rows: [EngineId, string, PythonEnv, typeof torch1, string[]][] = [
    ['torch1', `PyTorch ${torch1.ok ? torch1.version : '1.13'} eager (Debian, OpenBLAS)`, torch1Env, torch1, ['--attn', 'math']],
    ['torch2', `PyTorch ${v2} eager${sdpa}`, torch2Env, torch2, ['--attn', 'sdpa']],
    ['torch2-compile', `PyTorch ${v2} torch.compile${sdpa}`, torch2Env, torch2, ['--attn', 'sdpa', '--compile']],
    ['torch2-bf16', `PyTorch ${v2} eager${sdpa}, bf16 autocast`, torch2Env, torch2, ['--attn', 'sdpa', '--bf16']],
    ['torch2-compile-bf16', `PyTorch ${v2} torch.compile${sdpa}, bf16 autocast`, torch2Env, torch2, ['--attn', 'sdpa', '--compile', '--bf16']],
  ];
  for (const [id, label, env, probe, flags] of rows) if (wanted(id)) engines.push(await torchRow(id, label, env, probe, flags));

  if (wanted('ort-export')) {
    // export with the newest PyTorch there is (its TorchScript exporter, opset 17)
    const [env, probe] = torch2.ok ? [torch2Env, torch2] : [torch1Env, torch1];
    const row: EngineRow = { id: 'ort-export', label: `ORT on torch.onnx.export (PyTorch ${probe.ok ? probe.version.split('+')[0] : '?'})`, precision: 'fp32',
      trainingNote: 'n/a: onnxruntime-node has no training API' };
    if (!probe.ok) row.skipped = probe.reason;
    else {
      const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-'));
      try {
        log(`ORT on the torch.onnx.export model (PyTorch ${probe.version})`);
        const path = join(dir, 'torch_export.onnx');
        checked(runPeer<PeerResult>(script, ['export', maxThreads, 1, 1, path, ...modelArgs], maxThreads, env));
        const bytes = readFileSync(path);
        row.inference = await sweep(threadCounts, async (threads) => {
          log(`ORT on torch export inference, ${threads} thread(s)`);
          const session = await openSession(bytes, { threads });
          const feedName = session.inputNames[0]!;
          const s = await medianSeconds(() => session.run({ [feedName]: { dtype: 'float32', data: x, shape: [batchSize, c, h, w] } }), repeats);
          await session.release();
          return { threads, seconds: s, imagesPerSecond: batchSize / s };
        });
      } catch (e) {
        row.skipped = `failed: ${firstLine(e)}`;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    engines.push(row);
  }
  if (peerSources.size) versions['peer model'] = [...peerSources].join('; ');
  return finish();

  function finish(): ModelBenchResult {
    return {
      date: new Date().toISOString().slice(0, 10),
      machine: machineDescription(),
      threadCounts,
      model: name,
      batchSize,
      repeats,
      versions,
      forwardGflopsPerImage: forwardFlops / 1e9,
      sgemmPeakGflops,
      sgemmPeakThreads: maxThreads,
      engines,
    };
  }
}

const fastest = (rows: EngineRow[], pick: (r: EngineRow) => Sweep | undefined): { row: EngineRow; m: Measurement } | undefined => {
  let out: { row: EngineRow; m: Measurement } | undefined;
  for (const row of rows) {
    const m = pick(row)?.best;
    if (m && (!out || m.imagesPerSecond > out.m.imagesPerSecond)) out = { row, m };
  }
  return out;
};

export function formatModelBench(r: ModelBenchResult): string {
  const trainFlops = 3 * r.forwardGflopsPerImage; // backward ≈ 2× forward
  const tessera = r.engines.find((e) => e.id === 'tessera')!;
  const mfu = (m: Measurement | undefined, flopsPerImage: number) => (m ? `${((m.imagesPerSecond * flopsPerImage) / r.sgemmPeakGflops * 100).toFixed(0)}%` : 'n/a');
  const ratio = (a?: Measurement, b?: Measurement) => (a && b ? (a.imagesPerSecond / b.imagesPerSecond).toFixed(2) : '');
  const cell = (s: Sweep | undefined, note: string | undefined) => (s ? `${s.best.imagesPerSecond.toFixed(1)} (${s.best.threads})` : note ?? '');
  const mem = (s?: Sweep) => (s?.best.peakRssMb ? `${s.best.peakRssMb.toFixed(0)} MB` : '');
  const range = r.threadCounts.length > 1 ? `best of ${r.threadCounts.join(', ')} threads` : `${r.threadCounts[0]} thread(s)`;
  const lines = [
    `${r.model}, batch ${r.batchSize} — ${r.date}, ${r.machine}; every engine at its ${range} (median of ${r.repeats} timed runs)`,
    `versions: ${Object.entries(r.versions).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    `forward ${r.forwardGflopsPerImage.toFixed(2)} GFLOPs/image; measured sgemm peak ${r.sgemmPeakGflops.toFixed(0)} GFLOP/s at ${r.sgemmPeakThreads} threads; ` +
      `tessera MFU (training counts 3× forward): inference ${mfu(tessera.inference?.best, r.forwardGflopsPerImage)}, training ${mfu(tessera.training?.best, trainFlops)}`,
    '',
    '| engine | precision | inference img/s (threads) | training step img/s (threads) | tessera ÷ it, inference | tessera ÷ it, training | training peak RSS |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const e of r.engines) {
    if (e.skipped) {
      lines.push(`| ${e.label} | ${e.precision} | skipped: ${e.skipped} | | | | |`);
      continue;
    }
    lines.push(`| ${e.label} | ${e.precision} | ${cell(e.inference, e.inferenceNote)} | ${cell(e.training, e.trainingNote)} | ` +
      `${e.id === 'tessera' ? '' : ratio(tessera.inference?.best, e.inference?.best)} | ${e.id === 'tessera' ? '' : ratio(tessera.training?.best, e.training?.best)} | ${mem(e.training)} |`);
  }

  // issue #23's headline ratios, fp32 against fp32
  const fp32Torch2Train = fastest(r.engines.filter((e) => e.id === 'torch2' || e.id === 'torch2-compile'), (e) => e.training);
  const fp32Infer = fastest(r.engines.filter((e) => e.id === 'torch2-compile' || e.id === 'ort-export'), (e) => e.inference);
  const headline: string[] = [];
  if (fp32Torch2Train) headline.push(`training ÷ the faster of PyTorch 2.x eager and compiled (fp32): ${ratio(tessera.training?.best, fp32Torch2Train.m)} (${fp32Torch2Train.row.label})`);
  if (fp32Infer) headline.push(`inference ÷ the fastest of PyTorch 2.x compiled and ORT-export (fp32): ${ratio(tessera.inference?.best, fp32Infer.m)} (${fp32Infer.row.label})`);
  if (headline.length) lines.push('', ...headline.map((h) => `- ${h}`));

  const compiled = r.engines.filter((e) => !e.skipped && (e.inference?.best.firstCallSeconds !== undefined || e.training?.best.firstCallSeconds !== undefined) && e.id.includes('compile'));
  for (const e of compiled) {
    lines.push(`- ${e.label}: first call (compilation) ${e.inference?.best.firstCallSeconds?.toFixed(0) ?? '?'} s inference, ${e.training?.best.firstCallSeconds?.toFixed(0) ?? '?'} s training (not timed)`);
  }

  if (r.threadCounts.length > 1) {
    const per = (s?: Sweep) => (s ? r.threadCounts.map((t) => s.all.find((m) => m.threads === t)?.imagesPerSecond.toFixed(1) ?? '–').join(' / ') : '');
    lines.push('', `img/s at ${r.threadCounts.join(' / ')} threads:`, '', '| engine | inference | training step |', '|---|---|---|');
    for (const e of r.engines) if (!e.skipped) lines.push(`| ${e.label} | ${per(e.inference)} | ${per(e.training)} |`);
  }
  return lines.join('\n');
}
