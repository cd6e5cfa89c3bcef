/**
 * The fine-tuning demonstration of issue #6: pretrain vit_tiny_patch4_28 on Fashion-MNIST classes
 * 0–4, then learn classes 5–9 from 500 labelled images, from scratch and from the pretrained
 * weights (linear probe, full fine-tune, layer-decay fine-tune). Accuracy on all 5,000 test
 * images of classes 5–9. Run: `npx tsx bench/finetune_demo.ts [workdir]`.
 */
import { join } from 'node:path';
import { resolveTrainConfig, type TrainConfig } from '../src/train/config.js';
import { train } from '../src/train/trainer.js';

const work = process.argv[2] ?? 'runs/finetune-demo';
const threads = process.env.THREADS ? Number(process.env.THREADS) : undefined;
const log = (m: string) => process.stderr.write(`${m}\n`);

async function run(name: string, over: Partial<TrainConfig>) {
  const t0 = performance.now();
  const r = await train(resolveTrainConfig({ threads, ...over, output: join(work, name) }), { events: { log } });
  const last = r.metrics[r.metrics.length - 1]!;
  const best = Math.max(...r.metrics.map((m) => m.eval_top1 ?? 0));
  return { name, top1: last.eval_top1!, best, seconds: (performance.now() - t0) / 1000 };
}

const pre = await run('pretrain-0-4', { classes: [0, 1, 2, 3, 4], epochs: 5 });
log(`pretrained on classes 0–4: ${(100 * pre.top1).toFixed(2)}% on their test images`);
const few = { classes: [5, 6, 7, 8, 9], trainLimit: 500, epochs: 30, batchSize: 32 };
const weights = join(work, 'pretrain-0-4', 'last.safetensors');
const rows = [
  await run('scratch', { ...few }),
  await run('linear-probe', { ...few, pretrained: weights, freeze: 'backbone', lr: 3e-3 }),
  await run('full-finetune', { ...few, pretrained: weights }),
  await run('layer-decay-finetune', { ...few, pretrained: weights, layerDecay: 0.75, lr: 1e-3 }),
];
console.log(`| start (500 images of classes 5–9, ${few.epochs} epochs) | test top-1, last epoch | best epoch | seconds |`);
console.log('|---|---|---|---|');
for (const r of rows) console.log(`| ${r.name} | ${(100 * r.top1).toFixed(2)}% | ${(100 * r.best).toFixed(2)}% | ${r.seconds.toFixed(0)} |`);
