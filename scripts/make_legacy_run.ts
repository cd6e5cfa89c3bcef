/**
 * Writes test/fixtures/legacy/: a run directory made by tessera BEFORE the model-interface
 * redesign (issue #16), so tests can check that checkpoints and resumable states written then
 * still load and resume. It must run against that old code, not this tree:
 *
 *   git worktree add /tmp/old 7060a9a          # main before the redesign (2026-11-29)
 *   ln -s "$PWD/node_modules" /tmp/old/node_modules
 *   cp scripts/make_legacy_run.ts /tmp/old/scripts/ && (cd /tmp/old && npx tsx scripts/make_legacy_run.ts "$PWD/test/fixtures/legacy")
 *
 * What it writes: `run/` (config.json, last/best.safetensors, state.safetensors, metrics.jsonl of
 * a 2-epoch run of a tiny ViT on Fashion-MNIST interrupted at epoch 2, batch 2), `full.safetensors`
 * (the final weights of the same run uninterrupted) and `expected.json` (the interrupted
 * checkpoint's logits on four test images, computed by the old code).
 */
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { resolveTrainConfig } from '../src/train/config.js';
import { train } from '../src/train/trainer.js';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import { compileEval } from '../src/train/step.js';
import { loadBuiltinDataset } from '../src/data/builtin.js';

const out = resolve(process.argv[2] ?? 'test/fixtures/legacy');
const runDir = join(out, 'run');
rmSync(runDir, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const options = {
  model: 'vit_tiny_patch4_28', modelKwargs: { embedDim: 24, depth: 1, numHeads: 2 }, epochs: 2, batchSize: 64,
  trainLimit: 256, evalLimit: 64, seed: 5, threads: 1, dropPath: 0.1,
};
const fullDir = join(out, 'full-run');
rmSync(fullDir, { recursive: true, force: true });
await train(resolveTrainConfig({ ...options, output: fullDir }));
copyFileSync(join(fullDir, 'last.safetensors'), join(out, 'full.safetensors'));
rmSync(fullDir, { recursive: true, force: true });

const cfg = resolveTrainConfig({ ...options, output: runDir });
const controller = new AbortController();
const result = await train(cfg, {
  signal: controller.signal,
  events: { onStep: (s) => { if (s.epoch === 2 && s.batch === 1) controller.abort(); } },
});
if (result.status !== 'interrupted') throw new Error('expected the run to be interrupted');

const { model, meta } = loadCheckpoint(join(runDir, 'last.safetensors'));
const test = await loadBuiltinDataset('fashion-mnist', 'test');
const n = 4;
const x = new Float32Array(n * 28 * 28);
for (let i = 0; i < x.length; i++) x[i] = (test.images[i]! / 255 - meta.mean[0]!) / meta.std[0]!;
const exe = await compileEval(model, { threads: 1 });
const logits = Array.from((await exe.run({ x })).logits!.data as Float32Array);
await exe.dispose();
writeFileSync(join(out, 'expected.json'), `${JSON.stringify({ commit: '7060a9a', images: n, mean: meta.mean, std: meta.std, logits }, null, 1)}\n`);
for (const f of ['report.html', 'loss.png', 'accuracy.png', 'confusion.png']) rmSync(join(runDir, f), { force: true });
console.log(`wrote ${out}`);
