/**
 * Speed for accuracy of token reduction on a trained Fashion-MNIST model (issue #21): the
 * unpruned checkpoint, token merging on the same weights (`tome_r=R`, no training) and DynamicViT
 * checkpoints fine-tuned from it (`train --method dynamicvit`). Per setting, in one process:
 *   - test top-1 on the first --limit Fashion-MNIST test images (what `tessera eval --limit N` scores);
 *   - GFLOPs per image counted from the traced inference graph (src/ir/flops.ts: 2 × MACs);
 *   - inference images/s at each --batch size, the settings timed in alternating rounds so that
 *     load on a shared machine falls on all of them alike (median of the rounds).
 * The JSON it writes is what bench/speed_accuracy_plot.ts draws.
 *
 *   npx tsx bench/token_reduction_fm.ts --checkpoint RUN/best.safetensors [--r 4,8,16,32]
 *     [--dynamic 0.7=RUN07/best.safetensors,0.5=RUN05/best.safetensors] [--limit 5000]
 *     [--batch 32,1] [--rounds 5] [--threads 1] [--out results.json]
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import { loadBuiltinDataset } from '../src/data/datasets/builtin.js';
import { sliceDataset } from '../src/data/datasets/dataset.js';
import { TensorLoader } from '../src/data/loader/tensor_loader.js';
import { countFlops } from '../src/ir/flops.js';
import { compileInference } from '../src/models/executables.js';
import type { ImageModel } from '../src/models/model.js';
import { withModelKwargs } from '../src/models/model_kwargs.js';
import type { Executable } from '../src/runtime/compile.js';
import { trace } from '../src/runtime/compile.js';
import { machineDescription, ortVersion } from '../src/bench/timing.js';
import { evaluate } from '../src/train/evaluate.js';

const arg = (name: string, fallback?: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const list = (v: string | undefined) => (v ? v.split(',').filter(Boolean) : []);

const checkpoint = arg('checkpoint');
if (!checkpoint) throw new Error('--checkpoint <unpruned run>/best.safetensors is required');
const rs = list(arg('r', '4,8,16,32')).map(Number);
const dynamic = list(arg('dynamic')).map((s) => {
  const [keep, path] = s.split('=');
  if (!keep || !path) throw new Error(`--dynamic takes ρ=checkpoint pairs, got "${s}"`);
  return { keep: Number(keep), path };
});
const limit = Number(arg('limit', '5000'));
const batches = list(arg('batch', '32,1')).map(Number);
const rounds = Number(arg('rounds', '5'));
const threads = Number(arg('threads', '1'));
const out = arg('out');

interface Setting { label: string; method: 'unpruned' | 'tome' | 'dynamicvit'; value: number; model: ImageModel }

export interface SpeedAccuracyRow {
  label: string;
  method: Setting['method'];
  /** r for ToMe, ρ for DynamicViT, 0 for the unpruned model. */
  value: number;
  top1: number;
  /** Points against the unpruned model (negative: a loss). */
  deltaPoints: number;
  gflopsPerImage: number;
  /** Images/s per batch size, median of the rounds. */
  imagesPerSecond: Record<string, number>;
  speedup: Record<string, number>;
}

function gflopsPerImage(model: ImageModel): number {
  const [c, h, w] = model.inputShape;
  const t = trace((x) => ({ logits: model.forward(x).logits }), [{ name: 'x', shape: ['batch', c, h, w] }]);
  return countFlops(t.graph, Object.values(t.outputs), 1) / 1e9;
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

async function main(): Promise<void> {
  const loadStart = loadavg();
  const base = loadCheckpoint(checkpoint!);
  const settings: Setting[] = [{ label: 'unpruned', method: 'unpruned', value: 0, model: base.model }];
  for (const r of rs) settings.push({ label: `ToMe r=${r}`, method: 'tome', value: r, model: withModelKwargs(base.model, base.meta, { tome_r: r }).model });
  for (const d of dynamic) {
    const loaded = loadCheckpoint(d.path);
    const keep = (loaded.model.config as { dynamicKeep?: number }).dynamicKeep;
    if (keep !== d.keep) throw new Error(`${d.path} has dynamic_keep ${keep}, not the ${d.keep} given`);
    settings.push({ label: `DynamicViT ρ=${d.keep}`, method: 'dynamicvit', value: d.keep, model: loaded.model });
  }
  const { mean, std, classNames } = base.meta;
  const test = sliceDataset(await loadBuiltinDataset('fashion-mnist', 'test'), 0, limit);
    const exes: Executable[] = [];
  const top1: number[] = [];
  for (const s of settings) {
    const exe = await compileInference(s.model, { threads });
    exes.push(exe);
    const loader = new TensorLoader(test, { batchSize: 500, shuffle: false, seed: 0, mean, std });
    top1.push((await evaluate(exe, loader, classNames)).top1);
    process.stderr.write(`${s.label}: top-1 ${(100 * top1[top1.length - 1]!).toFixed(2)}% on ${test.length} test images\n`);
  }
  const speed: Record<string, number>[] = settings.map(() => ({}));
  for (const batch of batches) {
    const first = await new TensorLoader(sliceDataset(test, 0, batch), { batchSize: batch, shuffle: false, seed: 0, mean, std }).batch(0, 0);
    const x = first.x;
    for (const e of exes) await e.run({ x }); // warm-up
    // batch 1 runs are short: several per round, so each round's time is not one timer tick
    const reps = Math.max(1, Math.round(32 / batch));
    const times: number[][] = settings.map(() => []);
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < exes.length; i++) {
        const t0 = process.hrtime.bigint();
        for (let k = 0; k < reps; k++) await exes[i]!.run({ x });
        times[i]!.push(Number(process.hrtime.bigint() - t0) / 1e9 / reps);
      }
      process.stderr.write(`batch ${batch}: round ${round + 1}/${rounds}\n`);
    }
    settings.forEach((_, i) => { speed[i]![String(batch)] = batch / median(times[i]!); });
  }
  for (const e of exes) await e.dispose();
  const rows: SpeedAccuracyRow[] = settings.map((s, i) => ({
    label: s.label, method: s.method, value: s.value, top1: top1[i]!, deltaPoints: 100 * (top1[i]! - top1[0]!),
    gflopsPerImage: gflopsPerImage(s.model), imagesPerSecond: speed[i]!,
    speedup: Object.fromEntries(Object.entries(speed[i]!).map(([b, v]) => [b, v / speed[0]![b]!])),
  }));
  const report = {
    benchmark: 'token_reduction_fm', checkpoint, dataset: 'fashion-mnist (test)', images: test.length, model: base.meta.model,
    config: { patchSize: (base.model.config as { patchSize?: number }).patchSize, tokens: base.model.inputShape },
    threads, rounds, batches, date: new Date().toISOString(), machine: machineDescription(), node: process.version,
    onnxruntime: ortVersion(), loadAverage: { start: loadStart[0], end: loadavg()[0] }, rows,
  };
  if (out) writeFileSync(out, JSON.stringify(report, null, 1) + '\n');
  console.log(`${report.model} on ${report.images} Fashion-MNIST test images; ${threads} ORT thread(s), ${rounds} alternating rounds; ${report.date}; ${report.machine}; node ${report.node}, onnxruntime-node ${report.onnxruntime}; load average ${loadStart[0].toFixed(2)} → ${report.loadAverage.end.toFixed(2)}`);
  console.log(`| setting | top-1 | Δ (points) | GFLOPs/img | ${batches.map((b) => `img/s (batch ${b}) | speedup`).join(' | ')} |`);
  console.log(`|---|---|---|---|${batches.map(() => '---|---|').join('')}`);
  for (const r of rows) {
    const cells = batches.map((b) => `${r.imagesPerSecond[b]!.toFixed(1)} | ${r.speedup[b]!.toFixed(2)}×`).join(' | ');
    console.log(`| ${r.label} | ${(100 * r.top1).toFixed(2)}% | ${r.method === 'unpruned' ? '—' : r.deltaPoints.toFixed(2)} | ${r.gflopsPerImage.toFixed(4)} | ${cells} |`);
  }
}

await main();
