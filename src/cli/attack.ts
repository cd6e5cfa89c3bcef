/**
 * `tessera attack`: clean and robust accuracy of a checkpoint on a dataset under FGSM or PGD
 * (L∞ or L2) in pixel space [0, 1], and optionally PNGs of adversarial examples.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { writeFileAtomic } from '../checkpoint/atomic.js';
import { loadBuiltinDataset } from '../data/datasets/builtin.js';
import { sliceDataset } from '../data/datasets/dataset.js';
import { imagePng } from '../data/image/image_overlay.js';
import {
  compileAttackModel, defaultEps, evaluateRobustness, resolveAttack, type AdversarialExample, type AttackMethod, type Norm, type RobustnessReport,
} from '../robust/index.js';
import { checkClasses } from './eval.js';
import { addPreprocessOptions, rebuiltOnnxCheckpointHelp, sharedOption, type PreprocessFlags } from './common_options.js';
import { loadForInference } from './load_for_inference.js';
import { nonNegativeNumber, positiveInt } from './parse.js';

interface AttackFlags extends PreprocessFlags {
  dataset: string;
  split: 'train' | 'test';
  dataDir?: string;
  method: AttackMethod;
  norm: Norm;
  eps?: number;
  alpha?: number;
  steps: number;
  randomStart?: boolean;
  limit?: number;
  batchSize: number;
  seed: number;
  saveExamples?: string;
  saveCount: number;
  threads?: number;
  json?: boolean;
}

export function registerAttackCommand(program: Command): void {
  const cmd = program.command('attack').description('clean and robust accuracy under FGSM/PGD attacks in pixel space [0, 1]');
  addPreprocessOptions(cmd, rebuiltOnnxCheckpointHelp)
    .option('--dataset <name>', 'built-in dataset (fashion-mnist, mnist, cifar10, cifar100)', 'fashion-mnist')
    .addOption(new Option('--split <split>', 'dataset split').choices(['train', 'test']).default('test'))
    .addOption(sharedOption('dataDir'))
    .addOption(new Option('--method <m>', 'fgsm (one step) or pgd (iterated, projected)').choices(['fgsm', 'pgd']).default('pgd'))
    .addOption(new Option('--norm <n>', 'threat model').choices(['linf', 'l2']).default('linf'))
    .option('--eps <e>', 'perturbation budget in pixel units (default: L∞ 0.1 for grayscale, 8/255 for RGB; L2 1.5 / 0.5)', nonNegativeNumber('--eps'))
    .option('--alpha <a>', 'step size (default: PGD 2.5·eps/steps, i.e. 2/255 at eps 8/255 and 10 steps; FGSM with --random-start 1.25·eps)', nonNegativeNumber('--alpha'))
    .option('--steps <n>', 'PGD steps', positiveInt('--steps'), 10)
    .option('--random-start', 'start from a random point of the eps-ball (default for PGD)')
    .option('--no-random-start', 'start PGD from the clean image')
    .option('--limit <n>', 'attack the first N images only', positiveInt('--limit'))
    .addOption(sharedOption('batchSize', { default: 100 }))
    .option('--seed <n>', 'seed of the random starts', positiveIntOrZero, 0)
    .option('--save-examples <dir>', 'write original, perturbation and adversarial PNGs of the first images')
    .option('--save-count <n>', 'how many examples --save-examples writes', positiveInt('--save-count'), 16)
    .addOption(sharedOption('threads'))
    .addOption(sharedOption('json', { description: 'print JSON (accuracies as numbers in [0, 1])' }))
    .action(async (f: AttackFlags) => {
      const { model, meta, transform } = loadForInference(f, 'attack');
      const [c, h, w] = transform.inputSize;
      const attack = resolveAttack({
        method: f.method, norm: f.norm, eps: f.eps ?? defaultEps(c, f.norm), alpha: f.alpha, steps: f.steps, randomStart: f.randomStart,
      });
      let ds = await loadBuiltinDataset(f.dataset, f.split, { dataDir: f.dataDir });
      if (f.limit) ds = sliceDataset(ds, 0, f.limit);
      if (ds.imageShape.join() !== [c, h, w].join()) {
        throw new Error(`${f.checkpoint} expects ${c}×${h}×${w} images but ${f.dataset} has ${ds.imageShape.join('×')}`);
      }
      checkClasses(f.checkpoint, meta.classNames, f.dataset, ds.classNames);
      const bound = await compileAttackModel(model, { mean: transform.mean, std: transform.std, session: { threads: f.threads } });
      let report: RobustnessReport;
      try {
        report = await evaluateRobustness(bound, ds, { attack, batchSize: f.batchSize, seed: f.seed, keepExamples: f.saveExamples ? f.saveCount : 0 });
      } finally {
        await bound.dispose();
      }
      const examples = f.saveExamples ? await saveExamples(f.saveExamples, report.examples, meta.classNames, [c, h, w], attack.eps) : undefined;
      const { examples: _, ...numbers } = report;
      if (f.json) {
        console.log(JSON.stringify({ checkpoint: f.checkpoint, dataset: f.dataset, split: f.split, ...numbers, ...(examples ? { examplesDir: f.saveExamples, examples } : {}) }));
        return;
      }
      const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
      const a = report.attack;
      const budget = `${a.norm === 'linf' ? 'L∞' : 'L2'} eps ${fmt(a.eps)}`;
      const how = a.method === 'pgd' ? `PGD-${a.steps} (alpha ${fmt(a.alpha)}${a.randomStart ? ', random start' : ''})` : `FGSM${a.randomStart ? ` (random start, alpha ${fmt(a.alpha)})` : ''}`;
      console.log(`${how}, ${budget}, on ${report.count} images of ${f.dataset} ${f.split}`);
      console.log(`clean accuracy   ${pct(report.cleanAccuracy)}   (loss ${report.cleanLoss.toFixed(4)})`);
      console.log(`robust accuracy  ${pct(report.robustAccuracy)}   (loss ${report.adversarialLoss.toFixed(4)})`);
      console.log(`attack success   ${pct(report.attackSuccessRate)} of the correctly classified images`);
      if (examples) console.log(`examples: ${examples.length} in ${f.saveExamples} (index.json)`);
    });
}

function positiveIntOrZero(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || v.trim() === '') throw new InvalidArgumentError(`--seed must be a non-negative integer, got "${v}"`);
  return n;
}

const fmt = (v: number) => (Math.abs(v * 255 - Math.round(v * 255)) < 1e-9 && v < 1 && v > 0 ? `${Math.round(v * 255)}/255` : String(+v.toPrecision(6)));

/** Per example: original, perturbation (scaled to fill [0, 1] around mid-gray) and adversarial PNGs, plus index.json. */
async function saveExamples(dir: string, examples: readonly AdversarialExample[], classNames: readonly string[], [c, h, w]: readonly [number, number, number], eps: number) {
  const safe = (k: number) => (classNames[k] ?? String(k)).replace(/[^\w.-]+/g, '-');
  const rendered = await Promise.all(examples.map(async (e) => {
    const delta = e.adversarial.map((v, i) => v - e.original[i]!);
    const scale = Math.max(1e-12, ...delta.map(Math.abs));
    const stem = `${String(e.index).padStart(5, '0')}_true-${safe(e.label)}_clean-${safe(e.cleanPrediction)}_adv-${safe(e.adversarialPrediction)}`;
    const img = (data: Float32Array) => imagePng({ data, channels: c, height: h, width: w });
    const files = {
      original: `${stem}_original.png`,
      perturbation: `${stem}_perturbation.png`,
      adversarial: `${stem}_adversarial.png`,
    };
    const bytes = [await img(e.original), await img(delta.map((d) => 0.5 + d / (2 * scale))), await img(e.adversarial)];
    return {
      entry: {
        index: e.index, label: classNames[e.label] ?? String(e.label), cleanPrediction: classNames[e.cleanPrediction] ?? String(e.cleanPrediction),
        adversarialPrediction: classNames[e.adversarialPrediction] ?? String(e.adversarialPrediction), fooled: e.cleanPrediction === e.label && e.adversarialPrediction !== e.label,
        perturbationScale: `gray 0.5 ± ${+scale.toPrecision(4)} (eps ${+eps.toPrecision(4)})`, files,
      },
      writes: [[files.original, bytes[0]!], [files.perturbation, bytes[1]!], [files.adversarial, bytes[2]!]] as const,
    };
  }));
  mkdirSync(dir, { recursive: true });
  for (const r of rendered) for (const [name, data] of r.writes) writeFileAtomic(join(dir, name), data);
  const index = rendered.map((r) => r.entry);
  writeFileAtomic(join(dir, 'index.json'), `${JSON.stringify(index, null, 1)}\n`);
  return index;
}
