/**
 * `tessera calibrate`: fits temperature scaling (src/metrics/temperature.ts) on a dataset's
 * held-out images for an existing checkpoint and stores T in its metadata, so that predict,
 * serve and export divide the logits by it from then on. `train` does the same at the end of a
 * run with a validation part (--calibrate).
 */
import { extname, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { saveCheckpoint } from '../checkpoint/checkpoint.js';
import { isBuiltinDataset } from '../data/datasets/builtin.js';
import { compileInference } from '../models/executables.js';
import { expectedCalibrationError } from '../metrics/calibration.js';
import { fitTemperature } from '../metrics/temperature.js';
import { softmaxRows } from '../nn/host_math.js';
import { isOnnxPath } from '../runtime/onnx_model.js';
import { evaluateWithLogits } from '../train/evaluate.js';
import { addPreprocessOptions, sharedOption } from './common_options.js';
import { builtinSource, imageSource, type EvalFlags } from './eval.js';
import { loadForInference } from './load_for_inference.js';
import { UsageError } from './output.js';
import { nonNegativeInt, positiveInt } from './parse.js';

type CalibrateFlags = EvalFlags & { output?: string };

export function registerCalibrateCommand(program: Command): void {
  const cmd = program.command('calibrate').description("fit temperature scaling on held-out images and store T in the checkpoint (predict, serve, export and eval then use it)");
  addPreprocessOptions(cmd, 'a .safetensors checkpoint (written back in place unless --output is given)')
    .option('--dataset <name>', 'built-in dataset, an image folder or a CSV/JSONL manifest: fit on its held-out part (see --split)', 'fashion-mnist')
    .addOption(new Option('--split <split>', "as eval's: test is the val/ folder or val rows, or the part training held out of the folder (recorded in the checkpoint); a built-in dataset's test split is its only held-out one (eval on it afterwards is then optimistic)")
      .choices(['train', 'test', 'all']).default('test'))
    .option('--output <file>', 'write the calibrated checkpoint here instead of over --checkpoint')
    .option('--workers <n>', 'image datasets: decoding threads (default: the core count)', nonNegativeInt('--workers'))
    .option('--strict', 'image datasets: stop at the first unreadable image instead of skipping it')
    .addOption(sharedOption('dataDir'))
    .addOption(sharedOption('batchSize', { default: 500 }))
    .option('--limit <n>', 'fit on N images only (as eval --limit picks them)', positiveInt('--limit'))
    .addOption(sharedOption('threads'))
    .addOption(sharedOption('json', { description: 'print JSON: temperature, NLL and ECE before and after' }))
    .action(async (f: CalibrateFlags) => {
      if (isOnnxPath(f.checkpoint)) throw new UsageError(`calibrate writes a checkpoint's metadata; ${f.checkpoint} is an exported graph (calibrate the .safetensors it came from, then export again)`);
      if (f.modelKwargs) throw new UsageError('--model-kwargs do not go with calibrate: the temperature is fitted to the checkpoint as it is');
      const output = f.output ?? f.checkpoint;
      if (extname(output) !== '.safetensors') throw new UsageError(`calibrate writes a .safetensors checkpoint; ${f.output ? `--output ${f.output}` : `${f.checkpoint} is not one: give --output FILE.safetensors`}`);
      if (f.split === 'all' && isBuiltinDataset(f.dataset)) throw new UsageError(`--split all is for images on disk; ${f.dataset} has a train and a test split`);
      const { model, meta, transform } = loadForInference(f, 'calibrate');
      // compiled without the stored temperature: an earlier one is replaced, not compounded
      const exe = await compileInference(model, { threads: f.threads });
      let scored;
      let part: string;
      try {
        const source = isBuiltinDataset(f.dataset) ? await builtinSource(f, transform, meta.classNames) : imageSource(f, transform, meta.classNames, meta.heldOut);
        part = source.part ?? `${f.dataset} (${f.split} split)`;
        try {
          scored = await evaluateWithLogits(exe, source.loader, meta.classNames);
        } finally {
          await source.loader.close?.();
        }
      } finally {
        await exe.dispose();
      }
      const c = meta.classNames.length;
      const fit = fitTemperature(scored.logits, scored.labels, c);
      const ece = (t: number) => expectedCalibrationError(softmaxRows(scored.logits.map((v) => v / t), c), scored.labels, c).ece;
      saveCheckpoint(output, model, { ...meta, temperature: fit.temperature });
      const result = {
        checkpoint: resolve(output), fittedOn: part, images: scored.labels.length, temperature: fit.temperature,
        previousTemperature: meta.temperature ?? null, nllBefore: fit.nllBefore, nllAfter: fit.nllAfter, eceBefore: ece(1), eceAfter: ece(fit.temperature),
      };
      if (f.json) console.log(JSON.stringify(result));
      else {
        console.log(`temperature ${fit.temperature.toFixed(4)} fitted on ${result.images} images of ${part}${meta.temperature !== undefined ? ` (replacing ${meta.temperature.toFixed(4)})` : ''}`);
        console.log(`NLL ${fit.nllBefore.toFixed(4)} → ${fit.nllAfter.toFixed(4)}   ECE (15 bins) ${result.eceBefore.toFixed(4)} → ${result.eceAfter.toFixed(4)}`);
        console.log(`wrote ${output}`);
      }
    });
}
