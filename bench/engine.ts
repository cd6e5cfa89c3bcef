/**
 * Engine benchmark: fp32 matmul GFLOP/s and a ViT-Ti-sized transformer block's forward+backward
 * (batch 32, 197 tokens, dim 192, 3 heads, MLP 768), tessera against PyTorch 1.13 eager (Debian)
 * and PyTorch 2.x eager (when installed, TESSERA_TORCH2_PATH), same run. Every engine runs at each
 * thread count from 1 to the core count (BENCH_THREADS overrides), and is reported at its best.
 */
import { Graph } from '../src/ir/graph.js';
import { BATCH } from '../src/ir/shape.js';
import { grad } from '../src/autodiff/grad.js';
import { matmul } from '../src/ops/index.js';
import { compile, compileTraced } from '../src/runtime/compile.js';
import { Block } from '../src/nn/transformer.js';
import { Random } from '../src/random.js';
import { machineDescription, medianSeconds } from '../src/bench/timing.js';
import { peerScript, probeTorch, probeTorch2, runPeer, type PythonEnv } from '../src/bench/peers.js';
import { defaultThreadCounts } from '../src/bench/model_bench.js';

interface TorchEngine { torch: string; threads: number; attention?: string; matmul: { m: number; k: number; n: number; seconds: number }[]; block_fwd_bwd_seconds: number }

const MATMUL_SHAPES: [number, number, number][] = [[6304, 192, 768], [6304, 768, 192], [1024, 1024, 1024]];

/** Seconds per workload (the matmul shapes, then the block), at one thread count. */
type Times = number[];

async function tesseraTimes(threads: number, repeats: number): Promise<Times> {
  const rng = new Random(0);
  const times: Times = [];
  for (const [m, k, n] of MATMUL_SHAPES) {
    const b = Float32Array.from({ length: k * n }, () => rng.normal());
    const a = Float32Array.from({ length: m * k }, () => rng.normal());
    const exe = await compile((x) => matmul(x, x.graph.param('b', b, [k, n])), [{ name: 'a', shape: [m, k] }], { threads, params: 'initializers' });
    times.push(await medianSeconds(() => exe.run({ a }), repeats));
    await exe.dispose();
  }
  const block = new Block(192, 3, rng, { mlpRatio: 4 });
  const graph = new Graph();
  const x = graph.input('x', [BATCH, 197, 192]);
  const cot = graph.input('cot', [BATCH, 197, 192]);
  const y = block.forward(x);
  const wrt = [x, ...graph.params().map((p) => graph.tensor(p.id))];
  const grads = grad(y, wrt, cot);
  const outputs = Object.fromEntries([['y', y], ...grads.map((g, i) => [`g${i}`, g] as const)]);
  const exe = await compileTraced({ graph, inputs: [x, cot], outputs }, { threads });
  const xs = Float32Array.from({ length: 32 * 197 * 192 }, () => rng.normal());
  const cs = Float32Array.from({ length: 32 * 197 * 192 }, () => rng.normal());
  times.push(await medianSeconds(() => exe.run({ x: xs, cot: cs }), repeats));
  await exe.dispose();
  return times;
}

const peerTimes = (r: TorchEngine): Times => [...r.matmul.map((m) => m.seconds), r.block_fwd_bwd_seconds];

/** Per workload: the fastest time over the thread counts and the count that gave it. */
const best = (byThreads: Map<number, Times>): { seconds: number; threads: number }[] =>
  [...MATMUL_SHAPES.keys(), MATMUL_SHAPES.length].map((i) => {
    let out = { seconds: Infinity, threads: 0 };
    for (const [threads, ts] of byThreads) if (ts[i]! < out.seconds) out = { seconds: ts[i]!, threads };
    return out;
  });

export async function benchEngine(repeats = 20): Promise<string> {
  const threadCounts = process.env.BENCH_THREADS?.split(',').map(Number) ?? defaultThreadCounts();
  const torch1 = probeTorch();
  const { env: torch2Env, probe: torch2 } = probeTorch2();
  const engines: { label: string; env?: PythonEnv; ok: boolean; reason?: string; times: Map<number, Times> }[] = [
    { label: 'tessera', ok: true, times: new Map() },
    { label: `PyTorch ${torch1.ok ? torch1.version : '1.13'} eager`, env: {}, ok: torch1.ok, reason: torch1.ok ? undefined : torch1.reason, times: new Map() },
    { label: `PyTorch ${torch2.ok ? torch2.version : '2.x'} eager (SDPA)`, env: torch2Env, ok: torch2.ok, reason: torch2.ok ? undefined : torch2.reason, times: new Map() },
  ];
  for (const t of threadCounts) {
    engines[0]!.times.set(t, await tesseraTimes(t, repeats));
    for (const e of engines.slice(1)) if (e.ok) e.times.set(t, peerTimes(runPeer<TorchEngine>(peerScript('torch_engine.py'), [t, repeats], t, e.env)));
  }

  const live = engines.filter((e) => e.ok);
  const bests = live.map((e) => best(e.times));
  const peers = live.slice(1);
  const rows = [
    `| workload | ${live.map((e) => `${e.label} (threads)`).join(' | ')} | ${peers.map((e) => `tessera speed ÷ ${e.label}`).join(' | ')} |`,
    `|---|${live.map(() => '---|').join('')}${peers.map(() => '---|').join('')}`,
  ];
  const names = [...MATMUL_SHAPES.map(([m, k, n]) => `matmul ${m}×${k}×${n}`), 'ViT-Ti block fwd+bwd, batch 32'];
  for (const [i, name] of names.entries()) {
    const isBlock = i === MATMUL_SHAPES.length;
    const fmt = (b: { seconds: number; threads: number }) => {
      if (isBlock) return `${(b.seconds * 1000).toFixed(1)} ms (${b.threads})`;
      const [m, k, n] = MATMUL_SHAPES[i]!;
      return `${((2 * m * k * n) / b.seconds / 1e9).toFixed(1)} GFLOP/s (${b.threads})`;
    };
    const ratios = bests.slice(1).map((b) => (b[i]!.seconds / bests[0]![i]!.seconds).toFixed(2));
    rows.push(`| ${name} | ${bests.map((b) => fmt(b[i]!)).join(' | ')} | ${ratios.join(' | ')} |`);
  }
  const skipped = engines.filter((e) => !e.ok).map((e) => `- ${e.label}: skipped: ${e.reason}`);

  const head = `Engine benchmark — ${new Date().toISOString().slice(0, 10)}, ${machineDescription()}, each engine at its best of ` +
    `${threadCounts.join(', ')} threads, median of ${repeats} runs`;
  return [head, '', ...rows, ...(skipped.length ? ['', ...skipped] : [])].join('\n');
}
