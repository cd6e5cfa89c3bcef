/**
 * Attention scaling (issue #18): forward+backward time and peak memory of ONE ViT block
 * (src/nn/transformer.ts Block: dim 192, 3 heads, MLP ratio 4, batch 1) at N tokens, for each
 * attention mechanism, beside PyTorch 2.x eager (F.scaled_dot_product_attention) and
 * torch.compile on the same block (bench/peers/torch_attention_scaling.py).
 *
 *   nice -n 10 npx tsx bench/attention_scaling.ts [--n 256,1024,4096,16384] [--threads 1,2]
 *     [--mechanisms dense,chunked,performer,linear,sparse,axial] [--peers torch,torch-compile]
 *     [--repeats 5] [--warmup 1] [--rounds 1] [--mem-budget-mb 8192] [--cpu-cap-s 300] [--chunk 512]
 *   npx tsx bench/attention_scaling.ts --profile DIR --n 4096 --mechanisms dense,chunked --repeats 2
 *     (ORT's profiler on, one process: kernel time per op type of each configuration)
 *
 * Each training-style executable computes y = block(x) and, with loss = sum(y · c) for a fixed
 * random cotangent c, the gradients w.r.t. every parameter and x (grad(y, wrt, c)): one ORT run.
 * Every (engine, N, threads) configuration runs in its own child process, so its peak memory is
 * its own: VmHWM from /proc/self/status at the end (which includes compiling the session), and
 * the child's VmHWM after its imports as the baseline; both are reported. Within one round the
 * engines at one N run back to back, so a load change hits all of them; --rounds R repeats the
 * whole sweep and takes the median of the rounds' medians (peak: the largest).
 *
 * A configuration is reported, never dropped, when it cannot run: dense softmax whose N × N
 * tensors (scores, probabilities and their gradients, 4 · H · N² · 4 bytes) exceed
 * --mem-budget-mb is not started; one whose first run costs more than --cpu-cap-s CPU seconds
 * (CPU time, so a SIGSTOP pause does not count) is not timed further; a child that fails
 * (out of memory, killed) is reported with its exit.
 *
 * Token layout (axial and sparse need one): a square grid of N patch tokens, no prefix token.
 * Softmax "dense" is unchunked (query_chunk ≥ N); "chunked" is query_chunk=--chunk (default 512,
 * the automatic chunk; src/ops/attention.ts), which at N ≤ chunk is the dense graph. Performer: nb_features = round(D ln D) = 266;
 * sparse: block 16, 3 random blocks, 1 global block (the defaults).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Graph } from '../src/ir/graph.js';
import { grad } from '../src/autodiff/grad.js';
import { compileTraced } from '../src/runtime/compile.js';
import { Block, type MechanismOptions } from '../src/nn/transformer.js';
import { Random } from '../src/random.js';
import { machineDescription, ortVersion } from '../src/bench/timing.js';
import { peerScript, PYTHON, probeTorch2 } from '../src/bench/peers.js';
import { kernelTimes, opsByTime, readNewestTrace } from './ort_trace.js';

const DIM = 192;
const HEADS = 3;

const MECHANISMS: Record<string, { label: string; options: (n: number, chunk: number) => MechanismOptions }> = {
  dense: { label: 'softmax dense', options: (n) => ({ attnType: 'softmax', queryChunk: n }) },
  chunked: { label: 'softmax chunked', options: (_, chunk) => ({ attnType: 'softmax', queryChunk: chunk }) },
  performer: { label: 'performer', options: () => ({ attnType: 'performer' }) },
  linear: { label: 'linear', options: () => ({ attnType: 'linear' }) },
  sparse: { label: 'sparse', options: () => ({ attnType: 'sparse' }) },
  axial: { label: 'axial', options: () => ({ attnType: 'axial' }) },
};
const PEERS: Record<string, { label: string; flags: string[] }> = {
  torch: { label: 'PyTorch eager SDPA', flags: [] },
  'torch-compile': { label: 'torch.compile SDPA', flags: ['--compile'] },
};

/** What one child reports. */
interface ChildResult {
  ms?: number; peakMb?: number; baselineMb?: number; compileS?: number; firstCpuS?: number;
  /** Why there is no time: over the memory budget, over the CPU cap, or the child failed. */
  skipped?: string;
}

const vmHwmMb = (): number => {
  const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('VmHWM:'));
  return line ? Number(line.split(/\s+/)[1]) / 1024 : NaN;
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The child: one tessera configuration, timed; prints one JSON line. */
async function child(spec: { mechanism: string; n: number; threads: number; repeats: number; warmup: number; cpuCapS: number; chunk: number; profile?: string }): Promise<void> {
  const baselineMb = vmHwmMb();
  if (process.env.PAUSABLE_PID_FILE) writeFileSync(process.env.PAUSABLE_PID_FILE, `${process.pid}\n`);
  const { n } = spec;
  const side = Math.round(Math.sqrt(n));
  if (side * side !== n) throw new RangeError(`N = ${n} is not a square grid`);
  const rng = new Random(0);
  const block = new Block(DIM, HEADS, rng, { mlpRatio: 4, attention: { ...MECHANISMS[spec.mechanism]!.options(n, spec.chunk), layout: { prefix: 0, grid: [side, side] } } });
  const graph = new Graph();
  const x = graph.input('x', [1, n, DIM]);
  const cot = graph.input('cot', [1, n, DIM]);
  const y = block.forward(x); // [1, N, C]
  const wrt = [x, ...graph.params().map((p) => graph.tensor(p.id))];
  const grads = grad(y, wrt, cot); // d sum(y · cot) / d wrt
  const outputs = Object.fromEntries([['y', y], ...grads.map((g, i) => [`g${i}`, g] as const)]);
  const t0 = performance.now();
  const exe = await compileTraced({ graph, inputs: [x, cot], outputs }, { threads: spec.threads, profilePrefix: spec.profile });
  const compileS = (performance.now() - t0) / 1000;
  const feeds = { x: Float32Array.from({ length: n * DIM }, () => rng.normal()), cot: Float32Array.from({ length: n * DIM }, () => rng.normal()) };
  const c0 = process.cpuUsage();
  await exe.run(feeds);
  const cpu = process.cpuUsage(c0);
  const firstCpuS = (cpu.user + cpu.system) / 1e6;
  const out: ChildResult = { baselineMb, compileS, firstCpuS };
  if (firstCpuS > spec.cpuCapS) {
    out.skipped = `first run ${firstCpuS.toFixed(0)} CPU s > cap ${spec.cpuCapS} s`;
  } else {
    for (let i = 1; i < spec.warmup; i++) await exe.run(feeds);
    const times: number[] = [];
    for (let i = 0; i < spec.repeats; i++) {
      const t = performance.now();
      await exe.run(feeds);
      times.push(performance.now() - t);
    }
    out.ms = median(times);
  }
  out.peakMb = vmHwmMb();
  if (spec.profile) exe.endProfiling();
  await exe.dispose();
  if (spec.profile) console.error(kernelTable(spec.profile, spec.warmup + spec.repeats));
  console.log(JSON.stringify(out));
}

/** ORT profile → Markdown table of kernel time per op type, per run (every run, warm-up included). */
function kernelTable(prefix: string, runs: number): string {
  const { file, events } = readNewestTrace(prefix);
  const t = kernelTimes(events);
  const rows = opsByTime(t).map(([op, a]) => `| ${op} | ${(a.us / runs / 1000).toFixed(2)} | ${((a.us / t.totalUs) * 100).toFixed(1)}% | ${(a.count / runs).toFixed(0)} |`);
  return [`kernel sum ${(t.totalUs / runs / 1000).toFixed(1)} ms/run (${file})`, '', '| op type | ms / run | % | nodes run |', '|---|---|---|---|', ...rows].join('\n');
}

const lastJson = (stdout: string): unknown => JSON.parse(stdout.trim().split('\n').pop()!);
const failure = (r: ReturnType<typeof spawnSync>): string =>
  `child failed (${r.signal ? `signal ${r.signal}` : `exit ${r.status}`}${r.signal === 'SIGKILL' ? ', likely out of memory' : ''}): ${String(r.stderr).trim().split('\n').pop() ?? ''}`.slice(0, 200);

const childEnv = (threads: number): NodeJS.ProcessEnv => ({
  ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads),
  PAUSABLE_PID_FILE: process.env.PAUSABLE_CHILD_PID_FILE ?? '',
});

function runTessera(mechanism: string, n: number, threads: number, o: Opts): ChildResult {
  if (mechanism === 'dense' || (mechanism === 'chunked' && n <= o.chunk)) {
    const mb = (4 * HEADS * n * n * 4) / 2 ** 20;
    if (mb > o.memBudgetMb) return { skipped: `not run: its N×N tensors need ≈ ${(mb / 1024).toFixed(1)} GB > --mem-budget-mb ${o.memBudgetMb}` };
  }
  const spec = JSON.stringify({ mechanism, n, threads, repeats: o.repeats, warmup: o.warmup, cpuCapS: o.cpuCapS, chunk: o.chunk });
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child', spec],
    { encoding: 'utf8', maxBuffer: 1 << 24, env: childEnv(threads) });
  if (r.status !== 0) return { skipped: failure(r) };
  return lastJson(r.stdout) as ChildResult;
}

interface PeerJson { seconds?: number; peak_mb: number; baseline_mb: number; capped: boolean; first_cpu_seconds: number; compile_seconds: number }

function runPeer(peer: string, n: number, threads: number, o: Opts, pythonPath: string): ChildResult {
  const r = spawnSync(PYTHON, [peerScript('torch_attention_scaling.py'), n, threads, o.repeats, o.warmup, o.cpuCapS, ...PEERS[peer]!.flags].map(String),
    { encoding: 'utf8', maxBuffer: 1 << 24, env: { ...childEnv(threads), PYTHONPATH: pythonPath } });
  if (r.status !== 0) return { skipped: failure(r) };
  const j = lastJson(r.stdout) as PeerJson;
  return {
    ms: j.seconds !== undefined ? j.seconds * 1000 : undefined, peakMb: j.peak_mb, baselineMb: j.baseline_mb, compileS: j.compile_seconds,
    firstCpuS: j.first_cpu_seconds, skipped: j.capped ? `first run ${j.first_cpu_seconds.toFixed(0)} CPU s > cap ${o.cpuCapS} s` : undefined,
  };
}

interface Opts { chunk: number; ns: number[]; threads: number[]; mechanisms: string[]; peers: string[]; repeats: number; warmup: number; rounds: number; memBudgetMb: number; cpuCapS: number }

/** The rounds of one configuration merged: median of the times, largest peak. */
function merge(rs: ChildResult[]): ChildResult {
  const timed = rs.filter((r) => r.ms !== undefined);
  if (!timed.length) return rs[0]!;
  return {
    ms: median(timed.map((r) => r.ms!)), peakMb: Math.max(...timed.map((r) => r.peakMb!)),
    baselineMb: median(timed.map((r) => r.baselineMb!)), compileS: median(timed.map((r) => r.compileS ?? 0)),
  };
}

async function parent(o: Opts): Promise<void> {
  const started = new Date();
  const { env: torchEnv, probe } = probeTorch2();
  const peers = probe.ok ? o.peers : [];
  const engines = [...o.mechanisms.map((m) => ({ id: m, label: MECHANISMS[m]!.label, tessera: true })), ...peers.map((p) => ({ id: p, label: PEERS[p]!.label, tessera: false }))];
  const results = new Map<string, ChildResult[]>();
  const key = (e: string, n: number, t: number) => `${e}|${n}|${t}`;
  for (let round = 0; round < o.rounds; round++) {
    for (const n of o.ns) {
      for (const t of o.threads) {
        for (const e of engines) {
          const r = e.tessera ? runTessera(e.id, n, t, o) : runPeer(e.id, n, t, o, torchEnv.pythonPath!);
          process.stderr.write(`… round ${round + 1} N=${n} threads=${t} ${e.label}: ${r.ms !== undefined ? `${r.ms.toFixed(1)} ms, peak ${r.peakMb!.toFixed(0)} MB` : r.skipped}\n`);
          results.set(key(e.id, n, t), [...(results.get(key(e.id, n, t)) ?? []), r]);
        }
      }
    }
  }
  // each cell at its best thread count
  const best = (e: string, n: number): ChildResult & { threads?: number } => {
    let out: ChildResult & { threads?: number } = { skipped: 'not run' };
    for (const t of o.threads) {
      const r = merge(results.get(key(e, n, t)) ?? []);
      if (r.ms !== undefined && (out.ms === undefined || r.ms < out.ms)) out = { ...r, threads: t };
      else if (out.ms === undefined && r.skipped) out = r;
    }
    return out;
  };
  const cells = new Map(engines.map((e) => [e.id, new Map(o.ns.map((n) => [n, best(e.id, n)]))]));
  const cell = (r: ChildResult & { threads?: number }) => r.ms === undefined ? `— (${r.skipped})`
    : `${r.ms.toFixed(1)} ms (${r.threads}t) / ${(r.peakMb! - r.baselineMb!).toFixed(0)} MB (${r.peakMb!.toFixed(0)})`;

  const lines: string[] = [];
  lines.push(`Attention scaling — started ${started.toISOString().slice(0, 16)}Z, ${machineDescription()}, Node ${process.versions.node}, ` +
    `onnxruntime-node ${ortVersion()}, ${probe.ok ? `PyTorch ${probe.version}` : `no PyTorch 2.x (${probe.reason})`}; ` +
    `one ViT block (dim ${DIM}, ${HEADS} heads, MLP ${4 * DIM}, batch 1) fwd+bwd; threads ${o.threads.join(',')} (best shown); ` +
    `softmax chunked: query_chunk=${o.chunk}; ${o.warmup} warm-up + median of ${o.repeats} runs, ${o.rounds} round(s); memory budget ${o.memBudgetMb} MB, CPU cap ${o.cpuCapS} s/run`);
  lines.push('', 'Cells: median ms fwd+bwd (threads) / peak MB above the child\'s baseline after import (absolute VmHWM).', '');
  lines.push(`| engine | ${o.ns.map((n) => `N = ${n}`).join(' | ')} |`, `|---|${o.ns.map(() => '---|').join('')}`);
  for (const e of engines) lines.push(`| ${e.label} | ${o.ns.map((n) => cell(cells.get(e.id)!.get(n)!)).join(' | ')} |`);

  const ref = cells.get('dense');
  const ms = (e: string, n: number) => cells.get(e)?.get(n)?.ms;
  if (ref) {
    lines.push('', 'Speed relative to tessera softmax dense (dense ms ÷ engine ms; > 1: faster than dense):', '');
    lines.push(`| engine | ${o.ns.map((n) => `N = ${n}`).join(' | ')} |`, `|---|${o.ns.map(() => '---|').join('')}`);
    for (const e of engines.filter((x) => x.id !== 'dense')) {
      lines.push(`| ${e.label} | ${o.ns.map((n) => { const a = ms('dense', n), b = ms(e.id, n); return a && b ? (a / b).toFixed(2) : '—'; }).join(' | ')} |`);
    }
  }
  for (const p of peers) {
    lines.push('', `tessera softmax ÷ ${PEERS[p]!.label} speed (peer ms ÷ tessera ms; ≥ 1: tessera at least as fast): ` + o.ns.map((n) => {
      const peer = ms(p, n);
      const d = ms('dense', n), c = ms('chunked', n);
      const f = (t?: number) => (peer && t ? (peer / t).toFixed(2) : '—');
      return `N=${n}: dense ${f(d)}, chunked ${f(c)}`;
    }).join('; '));
  }
  lines.push('');
  for (const m of o.mechanisms.filter((x) => x !== 'dense' && x !== 'chunked')) {
    const faster = o.ns.filter((n) => { const a = ms('dense', n) ?? ms('chunked', n), b = ms(m, n); return b !== undefined && (a === undefined || b < a); });
    const crossover = o.ns.find((n, i) => o.ns.slice(i).every((k) => faster.includes(k)));
    const t4 = ms(m, 4096), t16 = ms(m, 16384);
    const lin = t4 && t16 ? `time@16384 / time@4096 = ${(t16 / t4).toFixed(2)} (${t16 / t4 <= 4.5 ? 'linear: ≤ 4.5' : 'NOT ≤ 4.5'})` : 'linearity: not measured at both 4096 and 16384';
    lines.push(`- ${MECHANISMS[m]!.label}: faster than softmax (dense, or chunked where dense did not run) from N = ${crossover ?? '— (not within the Ns run)'} on; ${lin}`);
  }
  console.log(lines.join('\n'));
}

const { values: v } = parseArgs({
  options: {
    child: { type: 'string' },
    n: { type: 'string', default: '256,1024,4096,16384' },
    threads: { type: 'string', default: '1' },
    mechanisms: { type: 'string', default: Object.keys(MECHANISMS).join(',') },
    peers: { type: 'string', default: Object.keys(PEERS).join(',') },
    repeats: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '1' },
    'mem-budget-mb': { type: 'string', default: '8192' },
    'cpu-cap-s': { type: 'string', default: '300' },
    profile: { type: 'string' },
    chunk: { type: 'string', default: '512' },
  },
});
const nums = (s: string) => s.split(',').filter(Boolean).map(Number);
const names = (s: string, known: object, what: string) => {
  const xs = s.split(',').filter(Boolean);
  const bad = xs.filter((x) => !(x in known));
  if (bad.length) throw new RangeError(`unknown ${what} ${bad.join(', ')}; choose from ${Object.keys(known).join(', ')}`);
  return xs;
};
if (v.child) await child(JSON.parse(v.child));
else if (v.profile) {
  // --profile DIR: each tessera configuration once, in this process, with ORT's profiler on; kernel time by op type
  for (const n of nums(v.n!)) {
    for (const mechanism of names(v.mechanisms!, MECHANISMS, 'mechanism')) {
      console.error(`### ${MECHANISMS[mechanism]!.label}, N = ${n}, ${nums(v.threads!)[0]} thread(s)`);
      await child({ mechanism, n, threads: nums(v.threads!)[0]!, repeats: Number(v.repeats), warmup: Number(v.warmup), cpuCapS: Infinity, chunk: Number(v.chunk), profile: `${v.profile}/${mechanism}_${n}` });
    }
  }
} else {
  await parent({
    chunk: Number(v.chunk), ns: nums(v.n!), threads: nums(v.threads!), mechanisms: names(v.mechanisms!, MECHANISMS, 'mechanism'), peers: names(v.peers!, PEERS, 'peer'),
    repeats: Number(v.repeats), warmup: Number(v.warmup), rounds: Number(v.rounds), memBudgetMb: Number(v['mem-budget-mb']), cpuCapS: Number(v['cpu-cap-s']),
  });
}
