/**
 * MAE step speed (issue #19 target): images/s of one MAE training step (forward + backward, mask
 * ratio 0.75) against a supervised step of the same encoder (vit_tiny_patch4_32: dim 192, depth 9)
 * and against PyTorch running the same MAE (scripts/mae_torch_step.py: eager with SDPA attention each
 * round, interleaved so contention hits all sides alike; torch.compile once after the rounds). Host optimiser updates are left out on every side; the
 * host masking (noise, argsort, feeds) is timed in tessera's MAE step, as PyTorch draws and
 * argsorts its noise inside its step. "MAE (gather)" is the same step with the token shuffle in
 * the official gather/scatter formulation (src/models/mae.ts MaeShuffle), the before of the A/B.
 *
 *   npx tsx bench/mae_step.ts [--batch 64] [--steps 5] [--rounds 3] [--threads 2]
 *   (the PyTorch peer runs with PYTHONPATH=/opt/torch2 when that folder exists)
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { machineDescription, ortVersion } from '../src/bench/timing.js';
import { MaskedAutoencoderViT } from '../src/models/mae.js';
import { createModel } from '../src/models/registry.js';
import { MaeObjective, drawMaskNoise, maskFeeds } from '../src/train/objectives/mae.js';
import { SupervisedObjective } from '../src/train/objectives/supervised.js';
import { compileTrainStep } from '../src/train/step.js';
import { Random } from '../src/random.js';

const arg = (name: string, dflt: number) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? Number(process.argv[i + 1]) : dflt; };
const [batch, steps, rounds, threads] = [arg('batch', 64), arg('steps', 5), arg('rounds', 3), arg('threads', 2)];

const mae = new MaskedAutoencoderViT({ imgSize: 32, patchSize: 4, inChans: 3, embedDim: 192, depth: 9, numHeads: 3, mlpRatio: 2, decoderEmbedDim: 128, decoderDepth: 2, decoderNumHeads: 4 });
const vit = createModel('vit_tiny_patch4_32');
const maeStep = await compileTrainStep(mae, new MaeObjective(mae, 0.75, 0), { threads });
const gatherObjective = new MaeObjective(mae, 0.75, 0);
gatherObjective.shuffle = 'gather';
const gatherStep = await compileTrainStep(mae, gatherObjective, { threads });
const supStep = await compileTrainStep(vit, new SupervisedObjective(), { threads });
const x = { data: Float32Array.from({ length: batch * 3 * 32 * 32 }, (_, i) => Math.sin(i)), shape: [batch, 3, 32, 32] };
const targets = { data: Float32Array.from({ length: batch * 10 }, (_, i) => (i % 10 === 0 ? 1 : 0)), shape: [batch, 10] };

async function rate(run: (s: number) => Promise<unknown>): Promise<number> {
  await run(-1);
  const t = performance.now();
  for (let s = 0; s < steps; s++) await run(s);
  return (batch * steps) / ((performance.now() - t) / 1000);
}
const torchRate = (flags: string[] = [], peerSteps = steps): number | undefined => {
  const base = existsSync('/opt/torch2') ? { ...process.env, PYTHONPATH: '/opt/torch2' } : process.env;
  const env = { ...base, TORCHINDUCTOR_COMPILE_THREADS: '1' };
  const r = spawnSync('/usr/bin/python3', ['scripts/mae_torch_step.py', String(batch), String(peerSteps), String(threads), ...flags], { env, encoding: 'utf8' });
  return r.status === 0 ? JSON.parse(r.stdout.trim().split('\n').pop()!).images_per_second : undefined;
};

console.log(`MAE step bench: ${machineDescription()}, onnxruntime-node ${ortVersion()}, ${threads} thread(s) every side, batch ${batch}, ` +
  `${steps} steps a round, load average ${loadavg()[0]!.toFixed(1)} at the start (other jobs on the machine: the numbers are contended unless it is ~0)`);
const maeRun = (step: typeof maeStep) => (s: number) => step.exe.run({ x, ...maskFeeds(mae, drawMaskNoise(new Random(s + 7), batch, mae.numPatches), batch, 0.75) });
const rows: { mae: number; gather: number; sup: number; torch?: number }[] = [];
for (let r = 0; r < rounds; r++) {
  // the two MAE variants swap places every round, so neither always runs on a cooler cache
  const [m, gm] = r % 2 === 0 ? [await rate(maeRun(maeStep)), await rate(maeRun(gatherStep))]
    : (([g2, m2]) => [m2, g2])([await rate(maeRun(gatherStep)), await rate(maeRun(maeStep))]);
  const s = await rate(() => supStep.exe.run({ x, targets }));
  const t = torchRate();
  rows.push({ mae: m, gather: gm, sup: s, torch: t });
  console.log(`round ${r + 1}: MAE ${m.toFixed(0)} img/s, MAE (gather) ${gm.toFixed(0)} img/s, supervised ${s.toFixed(0)} img/s, PyTorch eager MAE ${t?.toFixed(0) ?? 'n/a'} img/s, load ${loadavg()[0]!.toFixed(1)}`);
}
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const m = median(rows.map((r) => r.mae));
const t = rows.every((r) => r.torch) ? median(rows.map((r) => r.torch!)) : undefined;
// torch.compile once, after the rounds (its compile takes ~40 s): the peer's other fast path
const tc = torchRate(['--compile'], steps * rounds);
console.log(`PyTorch torch.compile MAE (one run of ${steps * rounds} steps after compiling): ${tc?.toFixed(0) ?? 'n/a'} img/s, load ${loadavg()[0]!.toFixed(1)}`);
const best = Math.max(t ?? 0, tc ?? 0) || undefined;
console.log(`median: MAE/MAE (gather) ${(m / median(rows.map((r) => r.gather))).toFixed(2)}x; MAE/supervised ${(m / median(rows.map((r) => r.sup))).toFixed(2)}x (target >= 2.5x), ` +
  `MAE/PyTorch eager ${t ? (m / t).toFixed(2) : 'n/a'}x, MAE/the faster of PyTorch eager and compiled ${best ? (m / best).toFixed(2) : 'n/a'}x (target >= 1.3x); ` +
  `batch ${batch}, ${threads} threads, ${cpus().length} cores, ${new Date().toISOString()}`);
await maeStep.exe.dispose();
await gatherStep.exe.dispose();
await supStep.exe.dispose();
