/**
 * Writing a model in another framework's layout, so weights trained here go back to Python:
 * - `timm`: a `.safetensors` file (timm keys plus tessera's metadata), a `.pth`/`.bin` state dict,
 *   or a directory in timm's hub layout (model.safetensors + config.json with `model_args`);
 * - `hf`: a directory with config.json, model.safetensors and preprocessor_config.json that
 *   `ViTForImageClassification.from_pretrained` (or `ViTModel` for a headless model) reads;
 * - `torchvision`: a `.pth` state dict (or `.safetensors`) for
 *   `torchvision.models.vision_transformer.VisionTransformer`.
 */
import { mkdirSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { StateDict } from '../nn/module.js';
import { writeFileAtomic } from './atomic.js';
import type { CheckpointMeta } from './checkpoint.js';
import { foreignMeta, loadForeignCheckpoint, LayoutError, type ForeignCheckpoint, type LayoutHints, type LayoutName } from './layouts.js';
import { hfConfigJson, hfPreprocessorJson, toHf } from './layout_hf.js';
import { toTorchvision, torchvisionConstructor } from './layout_torchvision.js';
import { serializeSafetensors, type SafeTensor } from './safetensors.js';
import { serializeTorchFile } from './torch_file.js';
import { timmArchitecture, type ModelConfig } from './timm_architecture.js';
import { listModels } from '../models/registry.js';

export const LAYOUTS: readonly LayoutName[] = ['timm', 'hf', 'torchvision'];

export interface ConvertResult {
  layout: LayoutName;
  /** Every file written. */
  files: string[];
  /** How to use the result from Python. */
  usage: string;
}

const PICKLE_EXT = ['.pth', '.pt', '.bin'];

const asSafeTensor = (t: StateDict[string]): SafeTensor => ({ dtype: 'F32', shape: [...t.shape], bytes: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) });
const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

/** BatchNorm's batch count, a float32 buffer here, as PyTorch's int64 scalar (what a strict torch load expects). */
const isBatchCountKey = (k: string, t: StateDict[string]) => k.endsWith('num_batches_tracked') && t.shape.length === 0;
const asInt64 = (t: StateDict[string]) => BigInt64Array.from(t.data, (v) => BigInt(Math.round(v)));

function weightsFile(path: string, sd: StateDict, metadata: Record<string, string>): string {
  const ext = extname(path).toLowerCase();
  if (PICKLE_EXT.includes(ext)) {
    const stem = path.replace(/^.*[\\/]/, '').replace(/\.[^.]*$/, '');
    const tensor = (k: string, t: StateDict[string]): SafeTensor => {
      if (!isBatchCountKey(k, t)) return asSafeTensor(t);
      const v = asInt64(t);
      return { dtype: 'I64', shape: [], bytes: new Uint8Array(v.buffer, v.byteOffset, v.byteLength) };
    };
    writeFileAtomic(path, serializeTorchFile(Object.entries(sd).map(([k, t]) => [k, tensor(k, t)]), /^\w+$/.test(stem) ? stem : 'archive'));
  } else {
    writeFileAtomic(path, serializeSafetensors(Object.fromEntries(Object.entries(sd).map(([k, t]) => [k, isBatchCountKey(k, t) ? { shape: [], data: asInt64(t) } : { shape: t.shape, data: t.data }])), metadata));
  }
  return path;
}

/** timm hub config.json: timm builds the exact architecture from `model_args` (refused for a family timm lacks). */
function timmHubConfig(meta: CheckpointMeta): Record<string, unknown> {
  const c = meta.config;
  const arch = timmArchitecture(meta.family ?? 'vit', c as ModelConfig, `--to timm (${meta.model})`);
  // an entry with timm's parameter count is one of timm's names; any other size builds from the kwargs over timm's name
  const entry = listModels().find((e) => e.name === meta.model.split('.')[0] && e.params !== undefined && e.family === (meta.family ?? 'vit'));
  return {
    architecture: entry?.name ?? arch.name,
    num_classes: c.numClasses, ...(c.embedDim !== undefined && (meta.family ?? 'vit') === 'vit' ? { num_features: c.embedDim } : {}), global_pool: c.globalPool,
    model_args: { in_chans: c.inChans, num_classes: c.numClasses, ...arch.kwargs, ...(arch.globalPool ? { global_pool: arch.globalPool } : {}) },
    pretrained_cfg: {
      input_size: meta.inputSize, interpolation: meta.interpolation, crop_pct: meta.cropPct, crop_mode: 'center',
      mean: meta.mean, std: meta.std, num_classes: c.numClasses, first_conv: arch.firstConv, classifier: arch.classifier,
      label_names: meta.classNames,
    },
  };
}

/** A model_args value as Python source (lists as tuples, booleans capitalised). */
const pySource = (v: unknown): string => (typeof v === 'boolean' ? (v ? 'True' : 'False')
  : Array.isArray(v) ? `(${v.map(pySource).join(', ')}${v.length === 1 ? ',' : ''})` : JSON.stringify(v));

/** Writes `ckpt` (timm keys) in `layout` at `out`; see the file comment for the formats. */
export function exportCheckpoint(ckpt: ForeignCheckpoint, layout: LayoutName, out: string): ConvertResult {
  const meta = foreignMeta(ckpt);
  const c = ckpt.config;
  const ext = extname(out).toLowerCase();
  if (layout === 'timm') {
    const hubCfg = timmHubConfig(meta); // first: a family timm cannot build leaves no file behind
    if (ext === '.safetensors' || PICKLE_EXT.includes(ext)) {
      weightsFile(out, ckpt.stateDict, { format: 'pt', tessera: JSON.stringify(meta) });
      const args = Object.entries(hubCfg.model_args as Record<string, unknown>).map(([k, v]) => `${k}=${pySource(v)}`);
      return { layout, files: [out], usage: `timm.create_model('${String(hubCfg.architecture)}', pretrained=True, pretrained_cfg_overlay=dict(file='${out}'), ${args.join(', ')})` };
    }
    mkdirSync(out, { recursive: true });
    const files = [weightsFile(join(out, 'model.safetensors'), ckpt.stateDict, { format: 'pt', tessera: JSON.stringify(meta) })];
    writeFileAtomic(join(out, 'config.json'), json(hubCfg));
    files.push(join(out, 'config.json'));
    return { layout, files, usage: `timm.create_model('local-dir:${out}', pretrained=True) (timm ≥ 1.0)` };
  }
  if (layout === 'hf') {
    if (ext === '.safetensors' || PICKLE_EXT.includes(ext)) throw new LayoutError(`--to hf writes a directory (config.json + model.safetensors), not a ${ext} file; give --out a directory name`);
    const sd = toHf(ckpt.stateDict, c);
    const configJson = hfConfigJson(c, meta.classNames);
    mkdirSync(out, { recursive: true });
    const files = [weightsFile(join(out, 'model.safetensors'), sd, { format: 'pt' })];
    writeFileAtomic(join(out, 'config.json'), json(configJson));
    writeFileAtomic(join(out, 'preprocessor_config.json'), json(hfPreprocessorJson(c, meta)));
    files.push(join(out, 'config.json'), join(out, 'preprocessor_config.json'));
    const cls = c.numClasses > 0 ? 'ViTForImageClassification' : 'ViTModel';
    return { layout, files, usage: `transformers.${cls}.from_pretrained('${out}')` };
  }
  if (ext !== '.safetensors' && !PICKLE_EXT.includes(ext)) throw new LayoutError(`--to torchvision writes a .pth (or .safetensors) state dict; got --out ${out}`);
  const sd = toTorchvision(ckpt.stateDict, c);
  const ctor = torchvisionConstructor(c);
  weightsFile(out, sd, { format: 'pt', torchvision: ctor });
  const load = ext === '.safetensors' ? `safetensors.torch.load_file('${out}')` : `torch.load('${out}')`;
  return { layout, files: [out], usage: `model = ${ctor}; model.load_state_dict(${load})` };
}

/** Reads any supported checkpoint and writes it in `layout`. */
export function convertCheckpoint(src: string, layout: LayoutName, out: string, hints: LayoutHints = {}): ConvertResult {
  if (!LAYOUTS.includes(layout)) throw new LayoutError(`unknown layout "${layout}"; expected one of ${LAYOUTS.join(', ')}`);
  return exportCheckpoint(loadForeignCheckpoint(src, hints), layout, out);
}
