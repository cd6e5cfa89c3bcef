/**
 * Foreign checkpoint layouts, detected from their keys and converted to timm's (tessera's own):
 * timm (with `fc_norm` / `no_embed_class` variants), Hugging Face `ViTModel` /
 * `ViTForImageClassification` (`layout_hf.ts`) and torchvision's `VisionTransformer`
 * (`layout_torchvision.ts`). The model config is inferred from the tensor shapes plus whatever
 * the layout's config file says (heads, LayerNorm eps, labels, preprocessing). Keys that do not
 * belong to a ViT tessera can build are rejected with the full list, never silently dropped;
 * the few known extras that carry no weights of the model (HF's pooler, buffers) are reported in
 * `dropped`.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { vitDefaults, type VitConfig } from '../models/vit.js';
import { familyOf, listModels, createFromConfig, getModelEntry } from '../models/registry.js';
import { getFamily, inferFamily, listFamilies } from '../models/model.js';
import type { CheckpointMeta } from './checkpoint.js';
import { fromHf } from './layout_hf.js';
import { fromTorchvision } from './layout_torchvision.js';
import { isHfCvtKeys } from '../models/cvt.js';
import { fromHfCvt } from './layout_cvt.js';
import {
  LayoutError, checkAgainstModel, inferTimmConfig, matchingEntry, readTensorFile, resolveHeads, toStateDict,
  type ForeignCheckpoint, type LayoutHints, type LayoutName, type Preprocessing, type RawTensors,
} from './layout_common.js';

export { LayoutError, readTensorFile, type ForeignCheckpoint, type LayoutHints, type LayoutName, type Preprocessing };

export function detectLayout(keys: string[], source: string): LayoutName {
  const has = (k: string) => keys.includes(k);
  if (has('patch_embed.proj.weight')) return 'timm';
  if (keys.some((k) => /^(vit\.)?embeddings\.patch_embeddings\./.test(k))) return 'hf';
  if (has('conv_proj.weight') && has('encoder.pos_embedding')) return 'torchvision';
  throw new LayoutError(`${source}: not a ViT layout tessera knows (timm: patch_embed.proj.weight, Hugging Face: vit.embeddings.*, torchvision: conv_proj.weight); its first keys are ${keys.slice(0, 5).join(', ')}`);
}

const readJson = (path: string): Record<string, any> => {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, any>;
  } catch (e) {
    throw new LayoutError(`${path}: not valid JSON (${(e as Error).message})`);
  }
};

/** The weights file of a checkpoint directory (HF or timm hub layout). */
export function weightsIn(dir: string): string {
  for (const f of ['model.safetensors', 'pytorch_model.bin', 'open_clip_pytorch_model.bin', 'model.pth', 'pytorch_model.pth']) {
    if (existsSync(join(dir, f))) return join(dir, f);
  }
  if (existsSync(join(dir, 'model.safetensors.index.json')) || existsSync(join(dir, 'pytorch_model.bin.index.json'))) {
    throw new LayoutError(`${dir}: sharded checkpoints (*.index.json) are not supported`);
  }
  throw new LayoutError(`${dir}: no model.safetensors or pytorch_model.bin in the directory`);
}

/**
 * Reads any supported checkpoint — a file (.safetensors, .pth, .bin) or a directory (Hugging Face:
 * config.json + model.safetensors | pytorch_model.bin; timm hub: config.json with `architecture`)
 * — and converts it to timm keys with an inferred config.
 */
export function loadForeignCheckpoint(path: string, hints: LayoutHints = {}): ForeignCheckpoint {
  if (!existsSync(path)) throw new LayoutError(`checkpoint ${path} does not exist`);
  let file = path;
  let config: Record<string, any> | undefined;
  let preprocessor: Record<string, any> | undefined;
  if (statSync(path).isDirectory()) {
    file = weightsIn(path);
    if (existsSync(join(path, 'config.json'))) config = readJson(join(path, 'config.json'));
    if (existsSync(join(path, 'preprocessor_config.json'))) preprocessor = readJson(join(path, 'preprocessor_config.json'));
  }
  const { tensors, metadata } = readTensorFile(file, hints.stateDictKey);
  if (!metadata.tessera && isHfCvtKeys(tensors.keys())) return fromHfCvt(tensors, file, config, preprocessor, hints);
  const layout = otherFamilyInTimmLayout(tensors, hints) ? 'timm' : detectLayout([...tensors.keys()], file);
  if (layout === 'hf') return fromHf(tensors, file, config ?? {}, preprocessor, hints);
  // tessera's torchvision .safetensors export records the constructor call
  const tvHeads = /num_heads=(\d+)/.exec(metadata.torchvision ?? '')?.[1];
  if (layout === 'torchvision') return fromTorchvision(tensors, file, { numHeads: tvHeads ? Number(tvHeads) : undefined, ...hints });
  return fromTimm(tensors, file, metadata, config, hints);
}

/** timm keys of a family without ViT's patch embedding (MobileViT's stem…): named by --model, or recognised by its family. */
function otherFamilyInTimmLayout(raw: RawTensors, hints: LayoutHints): boolean {
  if (raw.has('patch_embed.proj.weight')) return false;
  if (hints.model && listModels().some((e) => e.name === hints.model)) return familyOf(hints.model) !== 'vit';
  // a family's inference reads key names and shapes only: no tensor is decoded for it
  const shapes = Object.fromEntries([...raw].map(([k, t]) => [k, { shape: t.shape, data: new Float32Array(0) }]));
  return inferFamily(shapes) !== undefined;
}

/** timm keys as they are: a tessera checkpoint (config in its metadata), a timm hub directory or a bare file. */
export function fromTimm(raw: RawTensors, source: string, metadata: Record<string, string>, hubConfig: Record<string, any> | undefined, hints: LayoutHints): ForeignCheckpoint {
  const dropped: string[] = [];
  // the original Swin layout saves its int64 relative_position_index; the family rebuilds it
  const sd = toStateDict(raw, source, [/\.relative_position_index$/], dropped);
  let tessera: Record<string, any> | undefined;
  if (metadata.tessera) {
    try {
      tessera = JSON.parse(metadata.tessera) as Record<string, any>;
    } catch {
      throw new LayoutError(`${source}: the tessera metadata is not valid JSON`);
    }
    // checkpoints before families hold ViTs; another registered family's loads through fromTimmFamily below
    if (tessera && !listFamilies().includes(tessera.family ?? 'vit')) {
      throw new LayoutError(`${source} holds a ${tessera.model} (${tessera.family} family), which this build does not know; known families: ${listFamilies().join(', ')}`);
    }
  }
  const args = (hubConfig?.model_args ?? {}) as Record<string, any>;
  const arch = typeof hubConfig?.architecture === 'string' ? (hubConfig.architecture as string) : undefined;
  const registered = [hints.model, arch?.split('.')[0]].find((n) => n && listModels().some((e) => e.name === n));
  // another family's weights: its registered config (a hub id names it), its own inference, or
  // the tessera metadata; its own loader then checks every key (and remaps older layouts)
  const otherFamily = tessera ? (tessera.family as string | undefined ?? familyOf(String(tessera.model))) : registered ? getModelEntry(registered).family : inferFamily(sd)?.family;
  if (otherFamily && otherFamily !== 'vit') return fromTimmFamily(otherFamily, sd, source, tessera, registered, arch, hubConfig, dropped);
  let config: VitConfig;
  if (tessera?.config) {
    config = { ...vitDefaults, ...(tessera.config as Partial<VitConfig>) };
  } else {
    const heads = hints.numHeads ?? args.num_heads;
    config = inferTimmConfig(sd, source, { numHeads: (d, depth) => resolveHeads(d, depth, { numHeads: heads, model: registered }, source) });
  }
  checkAgainstModel(sd, config, source);
  return { layout: 'timm', source, stateDict: sd, config, dropped, tessera, ...timmDescription(tessera, hubConfig, arch, registered, config.numClasses) };
}

/** What the files say besides the weights: the model name, class names and preprocessing (tessera metadata, else timm's hub config). */
function timmDescription(tessera: Record<string, any> | undefined, hubConfig: Record<string, any> | undefined, arch: string | undefined,
  registered: string | undefined, numClasses: number): Pick<ForeignCheckpoint, 'modelName' | 'classNames' | 'preprocessing'> {
  const pc = (hubConfig?.pretrained_cfg ?? {}) as Record<string, any>;
  const preprocessing: Partial<Preprocessing> = tessera
    ? { inputSize: tessera.inputSize, mean: tessera.mean, std: tessera.std, interpolation: tessera.interpolation, cropPct: tessera.cropPct }
    : {
      inputSize: pc.input_size, mean: pc.mean, std: pc.std, cropPct: pc.crop_pct,
      interpolation: pc.interpolation === 'bicubic' || pc.interpolation === 'bilinear' ? pc.interpolation : undefined,
    };
  const classNames = (tessera?.classNames ?? pc.label_names ?? hubConfig?.label_names) as string[] | undefined;
  return {
    modelName: (tessera?.model as string | undefined) ?? arch ?? registered,
    classNames: Array.isArray(classNames) && classNames.length === numClasses ? classNames : undefined,
    preprocessing: Object.fromEntries(Object.entries(preprocessing).filter(([, v]) => v !== undefined)),
  };
}

/** timm keys of a family other than ViT: the config from the metadata, the registered entry or the family's inference. */
function fromTimmFamily(family: string, sd: ReturnType<typeof toStateDict>, source: string, tessera: Record<string, any> | undefined,
  registered: string | undefined, arch: string | undefined, hubConfig: Record<string, any> | undefined, dropped: string[]): ForeignCheckpoint {
  const f = getFamily(family);
  const head = sd['head.fc.weight'] ?? sd['head.weight'];
  const config = tessera?.config
    ? { ...f.defaults, ...(tessera.config as object) }
    : { ...f.defaults, ...(f.inferConfig?.(sd) ?? {}), ...(registered ? getModelEntry(registered).config : {}), ...(head ? { numClasses: head.shape[0] } : {}) };
  const model = createFromConfig(family, config);
  try {
    model.loadStateDict(sd, true);
  } catch (e) {
    throw new LayoutError(`${source}: not a ${family} tessera can build: ${(e as Error).message}`);
  }
  return {
    layout: 'timm', source, stateDict: model.stateDict(), family, config: model.config as unknown as VitConfig, dropped, tessera,
    ...timmDescription(tessera, hubConfig, arch, registered, model.numClasses),
  };
}

/**
 * tessera checkpoint metadata for a converted checkpoint. Preprocessing the files do not state
 * falls back to the registered architecture's, then to timm's ViT defaults (mean/std 0.5,
 * bicubic, crop 1).
 */
export function foreignMeta(fc: ForeignCheckpoint): CheckpointMeta {
  const c = fc.config;
  const base = fc.modelName ? listModels().find((e) => e.name === fc.modelName?.split('.')[0])?.pretrained : undefined;
  const p = fc.preprocessing ?? {};
  const fit = (v: number[] | undefined) => (v && (v.length === c.inChans || v.length === 1) ? v : undefined);
  return {
    model: fc.modelName ?? matchingEntry(fc) ?? `${fc.family ?? 'vit'}_${c.embedDim}d_patch${c.patchSize}_${c.imgSize}`,
    family: fc.family ?? 'vit',
    config: c,
    classNames: fc.classNames ?? Array.from({ length: c.numClasses }, (_, i) => String(i)),
    mean: fit(p.mean) ?? fit(base?.mean) ?? Array(c.inChans).fill(0.5),
    std: fit(p.std) ?? fit(base?.std) ?? Array(c.inChans).fill(0.5),
    inputSize: [c.inChans, c.imgSize, c.imgSize],
    interpolation: p.interpolation ?? base?.interpolation ?? 'bicubic',
    cropPct: p.cropPct ?? base?.cropPct ?? 1,
  };
}
