/**
 * A/B timing of the benchmark's training step between two source trees, in one process.
 *
 *   npx tsx bench/ab_train_step.ts --a /tmp/tessera-base --b . [--model vit_tiny_patch16_224]
 *        [--batch-size 32] [--threads 1] [--rounds 8] [--steps 2] [--warmup 2]
 *        [--a-options JSON] [--b-options JSON]
 *
 * Each tree (a checkout of tessera, e.g. `git worktree add /tmp/tessera-base <commit>`) is
 * imported as its own set of modules, so both training steps (forward + cross-entropy +
 * backward in one ORT run, then AdamW on the host, as `tessera bench` times it) live in this
 * process with the same weights and batch. Rounds alternate which tree goes first, and each
 * round times `steps` steps of each: on a shared machine the load then falls on both sides
 * alike, and the medians of the per-round times are compared. Besides wall time it reports the
 * process's CPU time (user + system, all threads) per step: on a contended machine at one ORT
 * thread that is the steadier measure, as waiting for a core does not count. `--a-options` / `--b-options` add
 * compile options (JSON, e.g. '{"disabledOptimizers":["MatmulTransposeFusion"]}') to one side,
 * so one tree can be timed against itself with another session setting.
 */
import { resolve, join } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { machineDescription, ortVersion } from '../src/bench/timing.js';

interface Side {
  label: string;
  run(): Promise<void>;
  optimizerStep(): void;
}

const { values: o } = parseArgs({
  options: {
    a: { type: 'string' },
    b: { type: 'string', default: '.' },
    model: { type: 'string', default: 'vit_tiny_patch16_224' },
    'batch-size': { type: 'string', default: '32' },
    threads: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '8' },
    steps: { type: 'string', default: '2' },
    warmup: { type: 'string', default: '2' },
    'a-options': { type: 'string', default: '{}' },
    'b-options': { type: 'string', default: '{}' },
  },
});
if (!o.a) throw new Error('--a DIR (the baseline tree) is required');
const [batch, threads, rounds, steps, warmup] = (['batch-size', 'threads', 'rounds', 'steps', 'warmup'] as const).map((k) => {
  const v = Number(o[k]);
  if (!Number.isInteger(v) || v < (k === 'warmup' ? 0 : 1)) throw new Error(`--${k} must be a positive integer, got ${o[k]}`);
  return v;
}) as [number, number, number, number, number];

async function loadSide(label: string, tree: string, options: Record<string, unknown>): Promise<Side> {
  const dir = resolve(tree);
  const imp = (p: string) => import(pathToFileURL(join(dir, p)).href);
  const { createModel } = await imp('src/models/registry.ts');
  const { buildBenchTrainStep } = await imp('src/bench/train_step.ts');
  const { Random } = await imp('src/random.ts');
  const model = createModel(o.model!);
  const [c, h, w] = model.inputShape as number[];
  const rng = new Random(0);
  const x = Float32Array.from({ length: batch * c! * h! * w! }, () => rng.uniform() * 2 - 1);
  const y = BigInt64Array.from({ length: batch }, () => BigInt(rng.int(model.numClasses)));
  const step = await buildBenchTrainStep(model, { threads, ...options });
  let grads: Record<string, { data: Float32Array }> = {};
  return {
    label: `${label} (${dir}${Object.keys(options).length ? `, ${JSON.stringify(options)}` : ''})`,
    async run() { grads = await step.exe.run({ x, y }); },
    // a tiny lr: the weights stay where they started, so every round times the same work
    optimizerStep() { step.optimizer.step((name: string) => grads[`grad/${name}`]?.data, 1e-12); },
  };
}

const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;

const sides = [await loadSide('A', o.a, JSON.parse(o['a-options']!)), await loadSide('B', o.b!, JSON.parse(o['b-options']!))];
console.log(`A/B training step — ${o.model}, batch ${batch}, ${threads} thread(s), ${rounds} rounds × ${steps} step(s) after ${warmup} warm-up; ` +
  `${new Date().toISOString()}, ${machineDescription()}, Node ${process.version}, onnxruntime-node ${ortVersion()}`);
for (const s of sides) console.log(`  ${s.label}`);
for (let i = 0; i < warmup; i++) for (const s of sides) { await s.run(); s.optimizerStep(); }

const ortMs: number[][] = [[], []];
const hostMs: number[][] = [[], []];
const cpuMs: number[][] = [[], []];
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? [0, 1] : [1, 0];
  for (const k of order) {
    let ort = 0;
    let host = 0;
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      await sides[k]!.run();
      const t1 = performance.now();
      sides[k]!.optimizerStep();
      ort += t1 - t0;
      host += performance.now() - t1;
    }
    const cpu = process.cpuUsage(cpu0);
    cpuMs[k]!.push((cpu.user + cpu.system) / 1000 / steps);
    ortMs[k]!.push(ort / steps);
    hostMs[k]!.push(host / steps);
  }
  const wall = (k: number) => (ortMs[k]!.at(-1)! + hostMs[k]!.at(-1)!).toFixed(0);
  console.log(`round ${r + 1}: wall A ${wall(0)} ms, B ${wall(1)} ms; CPU A ${cpuMs[0]!.at(-1)!.toFixed(0)} ms, B ${cpuMs[1]!.at(-1)!.toFixed(0)} ms`);
}
const total = (k: number) => ortMs[k]!.map((v, i) => v + hostMs[k]![i]!);
const ratios = total(0).map((a, i) => a / total(1)[i]!);
const cpuRatios = cpuMs[0]!.map((a, i) => a / cpuMs[1]![i]!);
console.log('\n| tree | wall ms / step (median) | ORT run ms | host AdamW ms | img/s | CPU ms / step (median) |\n|---|---|---|---|---|---|');
for (const k of [0, 1]) {
  const t = median(total(k));
  console.log(`| ${k === 0 ? 'A' : 'B'} | ${t.toFixed(1)} | ${median(ortMs[k]!).toFixed(1)} | ${median(hostMs[k]!).toFixed(1)} | ${(batch / t * 1000).toFixed(2)} | ${median(cpuMs[k]!).toFixed(1)} |`);
}
const fmt = (xs: number[]) => `${median(xs).toFixed(3)} (rounds: ${xs.map((v) => v.toFixed(3)).join(', ')})`;
console.log(`\nB speed-up over A (A time ÷ B time), median of per-round ratios: wall ${fmt(ratios)}`);
console.log(`CPU time: ${fmt(cpuRatios)}`);
