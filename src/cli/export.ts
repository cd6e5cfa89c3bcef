/**
 * `tessera export --checkpoint C --out model.onnx`: the deployment artifact. The file is checked
 * (run by ORT against tessera's own executable) before it is written, atomically; with
 * `--quantize int8` it is compared with the fp32 export for size, speed and, given a dataset,
 * accuracy.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { writeFileAtomic } from '../checkpoint/atomic.js';
import { loadBuiltinDataset } from '../data/datasets/builtin.js';
import { sliceDataset, type TensorDataset } from '../data/datasets/dataset.js';
import { exportModel, fuseAttentionExport, quantizeExport, quantizeStaticExport, type ExportedModel } from '../export/export.js';
import type { CalibrationImages } from '../export/calibration_ranges.js';
import { nchwToNhwc } from '../runtime/host_pixels.js';
import { checkAgainstTessera, compareInt8, samplePixels, accuracyOn, type ExportCheck, type Int8Comparison } from '../export/verify.js';
import { TRITON_DEFAULTS, tritonModelName, writeTritonRepository } from '../export/triton.js';
import { loadOnnxModel } from '../runtime/onnx_model.js';
import { physicalCores } from '../runtime/cores.js';
import { sharedOption } from './common_options.js';
import { applyModelKwargs, loadModelFile } from './load_for_inference.js';
import { UsageError } from './output.js';
import { positiveInt, positiveInts } from './parse.js';

interface ExportFlags {
  checkpoint: string; model?: string; modelKwargs?: Record<string, unknown>; out?: string; triton?: string; tritonName?: string; maxBatchSize: number; preferredBatchSize: number[]; opset: number; preprocess?: boolean; attentionMap?: boolean; quantize?: 'int8';
  perTensor?: boolean; fullRangeWeights?: boolean; exclude?: string[]; quantizeCalibration?: string; quantizeCalibrationLimit: number; fusedAttention?: boolean; verify?: string; calibrate?: string; dataDir?: string; verifyLimit?: number;
  samples: number; threads?: number; json?: boolean;
}

/** An fp32 export that differs from tessera by more than this is broken, not rounding. */
const MAX_FP32_DIFF = 1e-3;

const opsetArg = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 17 || n > 21) throw new InvalidArgumentError(`--opset must be an integer from 17 to 21, got "${v}"`);
  return n;
};

export function registerExportCommand(program: Command): void {
  program.command('export')
    .description('export a checkpoint as a self-contained .onnx file (dynamic batch, labels and preprocessing in its metadata)')
    .addOption(sharedOption('checkpoint', { required: true, description: 'a checkpoint (tessera/timm .safetensors, .pth, a Hugging Face directory) or a float32 .onnx file tessera exported (re-exported, e.g. with --quantize)' }))
    .addOption(sharedOption('model'))
    .addOption(sharedOption('modelKwargs'))
    .option('--out <file>', 'the .onnx file to write (required unless --triton is given)')
    .option('--triton <dir>', 'write a Triton model repository: DIR/<name>/config.pbtxt, labels.txt, 1/model.onnx (fp32) and, with --quantize int8, 2/model.onnx')
    .option('--triton-name <name>', 'with --triton: the model name (default: the model\'s, e.g. vit_tiny_patch4_28)')
    .option('--max-batch-size <n>', 'with --triton: max_batch_size', positiveInt('--max-batch-size'), TRITON_DEFAULTS.maxBatchSize)
    .option('--preferred-batch-size <list>', 'with --triton: dynamic batching\'s preferred sizes, comma-separated (default: 8,16,32 up to --max-batch-size)', positiveInts('--preferred-batch-size'))
    .option('--opset <n>', 'ONNX opset, 17 to 21', opsetArg, 17)
    .option('--preprocess', 'take raw pixels uint8 [B, H, W, C] and normalise inside the graph')
    .option('--attention-map', 'add a second output, attention_map float32[batch, patches]: the attention rollout that `serve` draws over the image (models with a token grid)')
    .addOption(new Option('--quantize <kind>', 'int8 quantisation of the weight matmuls (dynamic, or static with --quantize-calibration)').choices(['int8']))
    .option('--quantize-calibration <dataset>', 'with --quantize int8: static quantisation (QDQ), activation scales fixed from this built-in dataset\'s training images (e.g. fashion-mnist)')
    .option('--quantize-calibration-limit <n>', 'with --quantize-calibration: how many training images calibrate', positiveInt('--quantize-calibration-limit'), 256)
    .option('--fused-attention', 'attention as ONNX Runtime\'s fused com.microsoft.MultiHeadAttention kernel (faster in ORT; the file then needs ORT\'s contrib ops)')
    .option('--per-tensor', 'with --quantize: one scale per weight matrix instead of per output channel')
    .option('--full-range-weights', 'with --quantize: int8 weights in [-127, 127] instead of 7 bits, [-64, 64] (the default, safe everywhere); only for CPUs with VNNI/AMX or ARM: x86 CPUs without VNNI (AVX2, AVX-512F) saturate u8 x s8 products at the full range and lose accuracy')
    .option('--exclude <names>', 'with --quantize: weights to keep in float32, comma-separated (e.g. head.weight)', (v: string) => v.split(',').filter(Boolean))
    .option('--verify <dataset>', 'built-in dataset (test split) for the accuracy check, e.g. fashion-mnist')
    // once an alias of --verify; "calibrate" means temperature scaling everywhere else, so the name is refused with directions
    .addOption(new Option('--calibrate <dataset>').hideHelp())
    .addOption(sharedOption('dataDir'))
    .option('--verify-limit <n>', 'use the first N test images only', positiveInt('--verify-limit'))
    .option('--samples <n>', 'images for the ORT-vs-tessera check', positiveInt('--samples'), 8)
    .addOption(sharedOption('threads'))
    .addOption(sharedOption('json'))
    .action(async (f: ExportFlags) => {
      if (f.calibrate !== undefined) {
        throw new UsageError(`export has no --calibrate: --quantize-calibration ${f.calibrate} calibrates static int8 on the set, --verify ${f.calibrate} measures accuracy on it, and \`tessera calibrate\` fits temperature scaling into the checkpoint before export`);
      }
      if ((f.perTensor || f.exclude || f.fullRangeWeights) && !f.quantize) throw new UsageError('--per-tensor, --full-range-weights and --exclude only apply with --quantize int8');
      if (f.quantizeCalibration !== undefined && !f.quantize) throw new UsageError('--quantize-calibration only applies with --quantize int8');
      if (!f.out && !f.triton) throw new UsageError('give --out model.onnx, --triton DIR, or both');
      if (f.preferredBatchSize?.some((b) => b > f.maxBatchSize)) throw new UsageError(`--preferred-batch-size ${f.preferredBatchSize.join(',')} exceeds --max-batch-size ${f.maxBatchSize}`);
      const { model, meta } = applyModelKwargs(loadModelFile(f.checkpoint, { model: f.model }, 'export'), f.modelKwargs);
      const datasetName = f.verify;
      let dataset: TensorDataset | undefined;
      if (datasetName) {
        dataset = await loadBuiltinDataset(datasetName, 'test', { dataDir: f.dataDir });
        if (f.verifyLimit) dataset = sliceDataset(dataset, 0, f.verifyLimit);
        if (dataset.imageShape.join() !== meta.inputSize.join()) {
          throw new Error(`${f.checkpoint} expects ${meta.inputSize.join('×')} images but ${datasetName} has ${dataset.imageShape.join('×')}`);
        }
      }
      const session = { threads: f.threads };
      let fp32 = exportModel(model, meta, { opset: f.opset, preprocess: f.preprocess, attentionMap: f.attentionMap });
      if (f.fusedAttention) {
        const fused = fuseAttentionExport(fp32);
        if (fused.fusedAttention === 0) throw new UsageError(`--fused-attention: ${meta.model} has no attention block in the form it rewrites (ViT-style multi-head self-attention)`);
        fp32 = fused;
      }
      const samples = samplePixels(meta.inputSize, f.samples, dataset);
      const fp32Model = await loadOnnxModel(fp32.bytes, session, f.out);
      const check = await checkAgainstTessera(model, fp32Model, samples, session);
      if (!(check.maxAbsDiff <= MAX_FP32_DIFF)) {
        throw new Error(`the exported model differs from tessera by ${check.maxAbsDiff.toExponential(2)} (max |Δlogit| on ${check.samples} images, limit ${MAX_FP32_DIFF}); nothing was written`);
      }
      let written: ExportedModel = fp32;
      let int8: Int8Comparison | undefined;
      let calibration: { dataset: string; images: number } | undefined;
      let accuracy: Awaited<ReturnType<typeof accuracyOn>> | undefined;
      if (f.quantize) {
        const qopts = { perChannel: !f.perTensor, fullRangeWeights: f.fullRangeWeights, exclude: f.exclude };
        if (f.quantizeCalibration) {
          const images = await calibrationImages(f.quantizeCalibration, f.quantizeCalibrationLimit, meta.inputSize, f.dataDir);
          calibration = { dataset: `${f.quantizeCalibration}/train[0:${images.count}]`, images: images.count };
          written = await quantizeStaticExport(fp32, images, { ...qopts, session });
        } else {
          written = quantizeExport(fp32, qopts);
        }
        const int8Model = await loadOnnxModel(written.bytes, session, f.out);
        int8 = await compareInt8(model, fp32Model, int8Model, { samples, dataset, session });
        await int8Model.dispose();
      } else if (dataset) {
        accuracy = await accuracyOn(fp32Model, dataset);
      }
      await fp32Model.dispose();
      const out = f.out ? resolve(f.out) : undefined;
      if (out) {
        mkdirSync(dirname(out), { recursive: true });
        writeFileAtomic(out, written.bytes);
      }
      const triton = f.triton ? writeTritonRepository(resolve(f.triton), fp32, f.quantize ? written : undefined, {
        ...TRITON_DEFAULTS,
        name: f.tritonName ?? tritonModelName(meta.model),
        maxBatchSize: f.maxBatchSize,
        preferredBatchSizes: f.preferredBatchSize ?? TRITON_DEFAULTS.preferredBatchSizes.filter((b) => b <= f.maxBatchSize),
      }) : undefined;
      const summary = {
        out, ...(triton ? { triton: { dir: triton.dir, model: triton.modelDir, files: triton.files } } : {}), model: meta.model, bytes: written.bytes.byteLength, opset: written.opset, input: written.inputName,
        inputFormat: written.meta.inputFormat, labels: written.meta.classNames.length, quantization: written.meta.quantization,
        attentionMap: Boolean(written.attentionMapName), check, ...(accuracy && dataset ? { accuracy: { dataset: dataset.name, ...accuracy } } : {}),
        ...(int8 ? { int8: { ...int8, weights: written.quantization!.weights.length, perChannel: written.quantization!.perChannel, weightQmax: written.quantization!.weightQmax, ...(calibration ? { calibration } : {}) } } : {}),
        ...(f.fusedAttention ? { fusedAttention: (fp32 as { fusedAttention?: number }).fusedAttention } : {}),
      };
      if (f.json) console.log(JSON.stringify(summary));
      else printSummary(summary, check, summary.int8, f.threads ?? physicalCores());
    });
}

/** The first `limit` training images of a built-in dataset, as NHWC pixels for calibration. */
async function calibrationImages(name: string, limit: number, inputSize: [number, number, number], dataDir?: string): Promise<CalibrationImages> {
  const train = sliceDataset(await loadBuiltinDataset(name, 'train', { dataDir }), 0, limit);
  if (train.imageShape.join() !== inputSize.join()) throw new UsageError(`--quantize-calibration ${name}: its images are ${train.imageShape.join('×')}, the model takes ${inputSize.join('×')}`);
  const per = inputSize[0] * inputSize[1] * inputSize[2];
  return { pixels: nchwToNhwc(train.images.subarray(0, train.length * per), inputSize), count: train.length };
}

const mb = (b: number) => `${(b / 2 ** 20).toFixed(2)} MB`;
const pct = (v: number) => `${(100 * v).toFixed(2)}%`;

type Summary = { out?: string; triton?: { model: string; files: string[] }; model: string; bytes: number; opset: number; input: string; inputFormat: string; labels: number; attentionMap: boolean; accuracy?: { dataset: string; images: number; top1: number } };

function printSummary(s: Summary, check: ExportCheck, int8: (Int8Comparison & { weights: number; perChannel: boolean; weightQmax: number; calibration?: { dataset: string } }) | undefined, threads: number): void {
  const input = s.inputFormat === 'uint8_nhwc' ? 'uint8 pixels [batch, H, W, C]' : 'float32 [batch, C, H, W]';
  if (s.triton) console.log(`wrote Triton model repository ${s.triton.model}: ${s.triton.files.map((p) => p.slice(s.triton!.model.length + 1)).join(', ')}`);
  console.log(`${s.out ? `wrote ${s.out}` : 'exported'}: ${s.model}, ${mb(s.bytes)}, opset ${s.opset}, input "${s.input}" ${input}, ${s.labels} labels${s.attentionMap ? ', with attention_map' : ''}`);
  console.log(`check: fp32 export in ORT vs tessera on ${check.samples} images: max |Δlogit| ${check.maxAbsDiff.toExponential(2)}, top-1 agrees on ${Math.round(check.top1Agreement * check.samples)}/${check.samples}`);
  if (s.accuracy) console.log(`accuracy on ${s.accuracy.dataset} (${s.accuracy.images} images): top-1 ${pct(s.accuracy.top1)}`);
  if (!int8) return;
  console.log(`int8${int8.calibration ? ` static, calibrated on ${int8.calibration.dataset}` : ' dynamic'}: ${int8.weights} weight matmuls, ${int8.perChannel ? 'per output channel' : 'per tensor'}, weights in ±${int8.weightQmax}; ${mb(int8.int8Bytes)} vs fp32 ${mb(int8.fp32Bytes)} (${(int8.fp32Bytes / int8.int8Bytes).toFixed(1)}× smaller)`);
  console.log(`int8 vs tessera fp32 on ${int8.check.samples} images: max |Δlogit| ${int8.check.maxAbsDiff.toExponential(2)}, top-1 agrees on ${Math.round(int8.check.top1Agreement * int8.check.samples)}/${int8.check.samples}`);
  for (const r of int8.speed) {
    console.log(`speed at batch ${r.batchSize} (${threads} threads): fp32 ${r.fp32Ms.toFixed(2)} ms, int8 ${r.int8Ms.toFixed(2)} ms (${r.speedup.toFixed(2)}×)`);
  }
  const a = int8.accuracy;
  if (a) console.log(`accuracy on ${a.dataset} (${a.images} images): fp32 ${pct(a.fp32Top1)}, int8 ${pct(a.int8Top1)} (${a.dropPoints >= 0 ? '−' : '+'}${Math.abs(a.dropPoints).toFixed(2)} points)`);
}
