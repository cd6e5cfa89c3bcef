/** `tessera predict`: top-k labels and probabilities for image files (PNG, JPEG, … anything sharp decodes). */
import type { Command } from 'commander';
import { loadImageForModel } from '../data/image/image.js';
import { softmaxRows } from '../nn/host_math.js';
import { addPreprocessOptions, sharedOption, type PreprocessFlags, type SharedValues } from './common_options.js';
import { openForInference } from './load_for_inference.js';
import { positiveInt } from './parse.js';

type PredictFlags = PreprocessFlags & Pick<SharedValues, 'threads' | 'json'> & { topk: number };

export function registerPredictCommand(program: Command): void {
  const cmd = program.command('predict').description('classify images with a checkpoint').argument('<images...>', 'image files');
  addPreprocessOptions(cmd)
    .option('--topk <k>', 'labels to show per image', positiveInt('--topk'), 5)
    .addOption(sharedOption('threads'))
    .addOption(sharedOption('json', { description: 'print JSON, including each image\'s raw logits' }))
    .action(async (images: string[], f: PredictFlags) => {
      const { exe, classNames, transform, close } = await openForInference(f, f.threads);
      const inputs = await Promise.all(images.map((p) => loadImageForModel(p, transform)));
      const [c, h, w] = transform.inputSize;
      const x = new Float32Array(inputs.length * c * h * w);
      inputs.forEach((t, i) => x.set(t, i * c * h * w));
      const logits = (await exe.run({ x })).logits!.data as Float32Array;
      await close();
      const classes = classNames.length;
      const probs = softmaxRows(logits, classes);
      const k = Math.min(f.topk, classes);
      const results = images.map((path, i) => {
        const p = Array.from(probs.subarray(i * classes, (i + 1) * classes));
        const order = p.map((v, j) => [v, j] as const).sort((a, b) => b[0] - a[0]).slice(0, k);
        return {
          image: path,
          top: order.map(([prob, j]) => ({ label: classNames[j] ?? String(j), index: j, probability: prob })),
          logits: Array.from(logits.subarray(i * classes, (i + 1) * classes)),
        };
      });
      if (f.json) {
        console.log(JSON.stringify(results));
        return;
      }
      for (const r of results) {
        console.log(r.image);
        for (const t of r.top) console.log(`  ${(100 * t.probability).toFixed(2).padStart(6)}%  ${t.label}`);
      }
    });
}
