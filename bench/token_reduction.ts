/**
 * Token reduction benchmark (issue #21): a deit_small_patch16_224-sized model (224², 197 tokens,
 * dim 384, 12 blocks, 6 heads) unpruned against token merging (ToMe, tome_r=R), same weights, in
 * one run. Inference images/s at batch 32 and batch 1, the two models timed in alternating rounds
 * (so load on a shared machine hits both alike), and GFLOPs per image counted from each traced
 * graph's matmuls and convolutions (src/ir/flops.ts). DynamicViT rows (dynamic_keep=ρ, stages
 * before blocks 3, 6, 9) run the inference path (top-k); their score predictors are freshly
 * initialised, which changes which tokens are kept but not how many, so not the cost.
 *
 *   npx tsx bench/token_reduction.ts [--r 8,16] [--keep 0.7] [--threads N] [--rounds 5] [--json]
 */
import { countFlops } from '../src/ir/flops.js';
import { createModel } from '../src/models/registry.js';
import type { ImageModel } from '../src/models/model.js';
import { compileInference } from '../src/models/executables.js';
import { trace } from '../src/runtime/compile.js';
import { Random } from '../src/random.js';
import { machineDescription } from '../src/bench/timing.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
};
const rs = arg('r', '8').split(',').map(Number);
const keeps = arg('keep', '0.7').split(',').map(Number);
const threads = Number(arg('threads', '2'));
const rounds = Number(arg('rounds', '5'));
const json = process.argv.includes('--json');
const NAME = 'deit_small_patch16_224';

function gflops(model: ImageModel): number {
  const [c, h, w] = model.inputShape;
  const t = trace((x) => ({ logits: model.forward(x).logits }), [{ name: 'x', shape: ['batch', c, h, w] }]);
  return countFlops(t.graph, Object.values(t.outputs), 1) / 1e9;
}

async function main(): Promise<void> {
  const base = createModel(NAME, { seed: 0 });
  const variants: { label: string; model: ImageModel }[] = [{ label: 'unpruned', model: base }];
  for (const r of rs) {
    const m = createModel(NAME, { seed: 0, tomeR: r } as never);
    for (const [k, p] of m.namedState()) p.data.set(base.namedState().find(([kk]) => kk === k)![1].data);
    variants.push({ label: `ToMe r=${r}`, model: m });
  }
  for (const keep of keeps) {
    const m = createModel(NAME, { seed: 0, dynamicKeep: keep } as never);
    const own = new Map(base.namedState());
    for (const [k, p] of m.namedState()) if (own.has(k)) p.data.set(own.get(k)!.data);
    variants.push({ label: `DynViT ρ=${keep}`, model: m });
  }
  const rng = new Random(1);
  const rows: { model: string; batch: number; imagesPerSecond: number; speedup: number; gflopsPerImage: number }[] = [];
  for (const batch of [32, 1]) {
    const x = Float32Array.from({ length: batch * 3 * 224 * 224 }, () => rng.normal());
    const exes = await Promise.all(variants.map((v) => compileInference(v.model, { threads })));
    for (const e of exes) await e.run({ x: { data: x, shape: [batch, 3, 224, 224] } }); // warm-up
    const times: number[][] = variants.map(() => []);
    const reps = batch === 1 ? 10 : 1;
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < exes.length; i++) {
        const t0 = process.hrtime.bigint();
        for (let k = 0; k < reps; k++) await exes[i]!.run({ x: { data: x, shape: [batch, 3, 224, 224] } });
        times[i]!.push(Number(process.hrtime.bigint() - t0) / 1e9 / reps);
      }
      if (!json) process.stderr.write(`batch ${batch}: round ${round + 1}/${rounds}\n`);
    }
    const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
    const baseRate = batch / median(times[0]!);
    variants.forEach((v, i) => {
      const rate = batch / median(times[i]!);
      rows.push({ model: v.label, batch, imagesPerSecond: rate, speedup: rate / baseRate, gflopsPerImage: gflops(v.model) });
    });
    for (const e of exes) await e.dispose();
  }
  const report = { benchmark: 'token_reduction', model: NAME, threads, rounds, date: new Date().toISOString(), machine: machineDescription(), rows };
  if (json) {
    console.log(JSON.stringify(report, null, 1));
    return;
  }
  console.log(`${NAME}, ${threads} threads, ${rounds} alternating rounds, ${report.date}, ${report.machine}`);
  console.log('model        batch  img/s     speedup  GFLOPs/img');
  for (const r of rows) console.log(`${r.model.padEnd(12)} ${String(r.batch).padStart(5)}  ${r.imagesPerSecond.toFixed(2).padStart(8)}  ${r.speedup.toFixed(2).padStart(6)}x  ${r.gflopsPerImage.toFixed(2).padStart(8)}`);
}

await main();
