/**
 * Per-op profile of tessera's training step (or inference) from ONNX Runtime's profiler
 * (`enableProfiling`, through the session option `profilePrefix`).
 *
 *   npx tsx bench/profile_step.ts [--model vit_tiny_patch16_224] [--batch-size 32] [--steps 5]
 *                                 [--warmup 2] [--threads N] [--inference] [--top 15] [--keep DIR]
 *   npx tsx bench/profile_step.ts --mae [--model mae_vit_tiny_patch4_32] [--mask-ratio 0.75] …
 *
 * Runs `warmup` untimed steps and `steps` profiled ones (the same step as `tessera bench`:
 * forward + cross-entropy + backward in one ORT run, then AdamW on the host), and prints, per
 * step: ORT's run time, the host AdamW time, and a Markdown table of kernel time by op type
 * (sum of ORT's per-node `kernel_time` events), followed by the most expensive single nodes.
 * `--keep DIR` keeps ORT's chrome-trace JSON there (open it in chrome://tracing or Perfetto).
 * `--mae` profiles the MAE pretraining step instead (the step `tessera pretrain` compiles:
 * src/train/step.ts with the MAE objective, no optimiser); its host time is the per-step masking
 * (noise, argsort, feeds).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createModel } from '../src/models/registry.js';
import { compile, type Executable } from '../src/runtime/compile.js';
import { physicalCores } from '../src/runtime/cores.js';
import { Random } from '../src/random.js';
import { buildBenchTrainStep } from '../src/bench/train_step.js';
import { machineDescription, ortVersion } from '../src/bench/timing.js';
import { compileTrainStep } from '../src/train/step.js';
import { kernelTimes, opsByTime, readNewestTrace } from './ort_trace.js';
import { MaeObjective, asMae, drawMaskNoise, maskFeeds } from '../src/train/objectives/mae.js';


const { values: o } = parseArgs({
  options: {
    model: { type: 'string', default: 'vit_tiny_patch16_224' },
    'batch-size': { type: 'string', default: '32' },
    steps: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '2' },
    threads: { type: 'string' },
    inference: { type: 'boolean', default: false },
    mae: { type: 'boolean', default: false },
    'mask-ratio': { type: 'string', default: '0.75' },
    top: { type: 'string', default: '15' },
    keep: { type: 'string' },
  },
});
const batch = Number(o['batch-size']);
const steps = Number(o.steps);
const warmup = Number(o.warmup);
const threads = o.threads ? Number(o.threads) : physicalCores();
const top = Number(o.top);
for (const [k, v] of Object.entries({ 'batch-size': batch, steps, threads, top })) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} must be a positive integer, got ${v}`);
}
if (!Number.isInteger(warmup) || warmup < 0) throw new Error(`--warmup must be a whole number, got ${warmup}`);

const dir = o.keep ? resolve(o.keep) : mkdtempSync(join(tmpdir(), 'tessera-profile-'));
mkdirSync(dir, { recursive: true });
const modelName = o.mae && o.model === 'vit_tiny_patch16_224' ? 'mae_vit_tiny_patch4_32' : o.model!;
const prefix = join(dir, `${o.inference ? 'infer' : o.mae ? 'mae' : 'train'}_${modelName}_b${batch}_t${threads}`);

const model = createModel(modelName);
const [c, h, w] = model.inputShape;
const rng = new Random(0);
const x = Float32Array.from({ length: batch * c * h * w }, () => rng.uniform() * 2 - 1);

let exe: Executable;
let runOnce: () => Promise<{ hostMs: number }>;
if (o.inference) {
  exe = await compile((t) => model.forward(t).logits, [{ name: 'x', shape: ['batch', c, h, w] }], { threads, params: 'initializers', profilePrefix: prefix });
  runOnce = async () => {
    await exe.run({ x });
    return { hostMs: 0 };
  };
} else if (o.mae) {
  const mae = asMae(model);
  const ratio = Number(o['mask-ratio']);
  exe = (await compileTrainStep(mae, new MaeObjective(mae, ratio, 0), { threads, profilePrefix: prefix })).exe;
  let s = 0;
  runOnce = async () => {
    const t0 = performance.now();
    const masks = maskFeeds(mae, drawMaskNoise(new Random(s++), batch, mae.numPatches), batch, ratio);
    const hostMs = performance.now() - t0;
    await exe.run({ x: { data: x, shape: [batch, c, h, w] }, ...masks });
    return { hostMs };
  };
} else {
  const y = BigInt64Array.from({ length: batch }, () => BigInt(rng.int(model.numClasses)));
  const step = await buildBenchTrainStep(model, { threads, profilePrefix: prefix });
  exe = step.exe;
  runOnce = async () => {
    const out = await exe.run({ x, y });
    const t0 = performance.now();
    step.optimizer.step((name) => out[`grad/${name}`]!.data as Float32Array, 1e-4);
    return { hostMs: performance.now() - t0 };
  };
}

for (let i = 0; i < warmup; i++) await runOnce();
const wall: number[] = [];
const host: number[] = [];
for (let i = 0; i < steps; i++) {
  const t0 = performance.now();
  const r = await runOnce();
  wall.push(performance.now() - t0);
  host.push(r.hostMs);
}
exe.endProfiling();
await exe.dispose();

// the profiled steps only: from the start of the (warmup+1)-th model_run on
const trace = readNewestTrace(prefix);
const { runs: measured, byOp, byNode, totalUs } = kernelTimes(trace.events, warmup);
const n = measured.length || steps;

const ms = (us: number) => (us / n / 1000).toFixed(2);
const mean = (xs: number[]) => xs.reduce((s, v) => s + v, 0) / Math.max(1, xs.length);
const runMs = mean(measured.map((e) => (e.dur ?? 0) / 1000));
const lines = [
  `${o.inference ? 'Inference' : o.mae ? 'MAE pretraining step' : 'Training step'} profile — ${modelName}, batch ${batch}, ${threads} thread(s), ${n} profiled step(s) after ${warmup} warm-up; ` +
    `${new Date().toISOString().slice(0, 10)}, ${machineDescription()}, onnxruntime-node ${ortVersion()}`,
  '',
  `- wall time per step ${mean(wall).toFixed(1)} ms (profiling on, so a little slower than unprofiled)`,
  `- ORT model_run ${runMs.toFixed(1)} ms; sum of kernel times ${(totalUs / n / 1000).toFixed(1)} ms (the rest is ORT's own overhead, feeds and fetches)`,
  ...(o.inference ? [] : [`- host ${o.mae ? 'masking (noise, argsort, feeds)' : 'AdamW'} ${mean(host).toFixed(1)} ms`]),
  '',
  '| op type | ms / step | % of kernel time | nodes run / step |',
  '|---|---|---|---|',
  ...opsByTime({ runs: measured, byOp, byNode, totalUs })
    .map(([op, a]) => `| ${op} | ${ms(a.us)} | ${((a.us / totalUs) * 100).toFixed(1)}% | ${(a.count / n).toFixed(0)} |`),
  '',
  `Top ${top} nodes:`,
  '',
  '| node | op type | ms / step |',
  '|---|---|---|',
  ...[...byNode.entries()].sort((a, b) => b[1].us - a[1].us).slice(0, top).map(([node, b]) => `| ${node} | ${b.op} | ${ms(b.us)} |`),
];
console.log(lines.join('\n'));
if (o.keep) console.log(`\nORT profile: ${trace.file}`);
else rmSync(dir, { recursive: true, force: true });
