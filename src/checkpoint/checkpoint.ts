/**
 * Model checkpoints: a .safetensors file whose keys are timm's, with tessera's metadata (model
 * name and config, class names, preprocessing, epoch and metrics) as a JSON string under
 * `__metadata__.tessera`. timm reads the tensors directly; tessera also reads plain timm files
 * when told the architecture, and foreign layouts (Hugging Face directories, torchvision and
 * other PyTorch state dicts) through `layouts.ts`.
 */
import { existsSync, statSync } from 'node:fs';
import { createFromConfig, createModel, familyOf, getModelEntry, type ModelArgs, type PretrainedConfig } from '../models/registry.js';
import { inferFamily, type ImageModel } from '../models/model.js';
import type { Interpolation } from '../models/pos_embed.js';
import type { StateDict } from '../nn/module.js';
import { toFloat32, writeSafetensors, type SafeTensor } from './safetensors.js';
import { foreignMeta, loadForeignCheckpoint, readTensorFile } from './layouts.js';
import { batchCount, isBatchCount } from './layout_common.js';

export interface CheckpointMeta {
  model: string;
  /** The model family (absent in checkpoints written before there were several: those are ViTs). */
  family?: string;
  /** The family's full config, as `createFromConfig(family, config)` takes it. */
  config: ModelArgs;
  classNames: string[];
  mean: number[];
  std: number[];
  /** [C, H, W] */
  inputSize: [number, number, number];
  interpolation: Interpolation;
  cropPct: number;
  epoch?: number;
  metrics?: Record<string, number>;
  /** Images on disk without a validation part that training split itself (eval scores the same held-out part). */
  heldOut?: HeldOutSplit;
  /** Temperature scaling fitted on held-out images (`train --calibrate`, `tessera calibrate`): predict, serve and export divide the logits by it. */
  temperature?: number;
}

/** A seeded, stratified hold-out of an image dataset (see folder_dataset.ts stratifiedSplit). */
export interface HeldOutSplit {
  /** The dataset's resolved path when training opened it. */
  dataset: string;
  valSplit: number;
  seed: number;
  /** Images the split was drawn from: another count means the folder changed since. */
  images: number;
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export function metaFor(name: string, model: ImageModel, classNames: string[], pre?: Partial<PretrainedConfig>): CheckpointMeta {
  const base = getModelEntry(name).pretrained;
  return {
    model: name,
    family: model.family,
    config: { ...model.config },
    classNames,
    mean: pre?.mean ?? base.mean,
    std: pre?.std ?? base.std,
    inputSize: model.inputShape,
    interpolation: pre?.interpolation ?? base.interpolation,
    cropPct: pre?.cropPct ?? base.cropPct,
  };
}

/** Writes parameters and persistent buffers (BatchNorm statistics…) under their timm keys. */
export function saveCheckpoint(path: string, model: ImageModel, meta: CheckpointMeta): void {
  const tensors = Object.fromEntries(model.namedState().map(([k, p]) => [k, { shape: p.shape, data: p.data }]));
  writeSafetensors(path, tensors, { format: 'pt', tessera: JSON.stringify(meta) });
}

export function readStateDict(path: string): { state: StateDict; metadata: Record<string, string> } {
  if (!existsSync(path)) throw new CheckpointError(`checkpoint ${path} does not exist`);
  const file = readTensorFile(path); // .safetensors, or a .pth/.bin state dict (keys as stored)
  return { state: floatState(file.tensors, path), metadata: file.metadata };
}

function floatState(tensors: Map<string, SafeTensor>, path: string): StateDict {
  const state: StateDict = {};
  for (const [k, t] of tensors) {
    if (k === '__proto__') throw new CheckpointError(`${path}: invalid tensor name "__proto__"`);
    state[k] = isBatchCount(k, t) ? batchCount(t) : { data: toFloat32(t, `${path}: ${k}`), shape: t.shape };
  }
  return state;
}

export interface LoadOptions {
  /** Architecture for files without tessera metadata (plain timm safetensors). */
  model?: string;
}

/**
 * Builds the model a checkpoint describes and loads its weights. Directories (Hugging Face, timm
 * hub), PyTorch state dicts and safetensors files in Hugging Face or torchvision layout are
 * converted to timm keys first.
 */
export function loadCheckpoint(path: string, opts: LoadOptions = {}): { model: ImageModel; meta: CheckpointMeta } {
  if (!existsSync(path)) throw new CheckpointError(`checkpoint ${path} does not exist`);
  if (statSync(path).isDirectory()) return loadForeign(path, opts);
  const { tensors, metadata } = readTensorFile(path);
  // Hugging Face or torchvision keys: converted; timm keys without metadata need --model below
  // keys of another family without ViT's patch embedding, named by --model: read as timm keys below
  const namedOtherFamily = opts.model !== undefined && familyOf(opts.model) !== 'vit';
  if (!metadata.tessera && !tensors.has('patch_embed.proj.weight') && !namedOtherFamily) return loadForeign(path, opts);
  const state = floatState(tensors, path);
  // a bare timm file of a family that reads its architecture from the weights (Swin…)
  if (!metadata.tessera && !opts.model && inferFamily(state)) return loadForeign(path, opts);
  let meta: CheckpointMeta;
  if (metadata.tessera) {
    try {
      meta = JSON.parse(metadata.tessera) as CheckpointMeta;
    } catch {
      throw new CheckpointError(`${path}: the tessera metadata is not valid JSON`);
    }
    if (opts.model && opts.model !== meta.model) throw new CheckpointError(`${path} holds a ${meta.model}, not the requested --model ${opts.model}`);
    if (meta.temperature !== undefined && !(typeof meta.temperature === 'number' && Number.isFinite(meta.temperature) && meta.temperature > 0)) {
      throw new CheckpointError(`${path}: the metadata's temperature is ${JSON.stringify(meta.temperature)}, expected a finite positive number`);
    }
  } else {
    if (!opts.model) throw new CheckpointError(`${path} carries no tessera metadata; pass --model NAME to say which architecture it holds`);
    // the classifier's rows give the class count (its key is the family's: head.weight, head.fc.weight…)
    const head = createModel(opts.model).headKeys().map((k) => state[k]).find((t) => t?.shape.length === 2);
    const numClasses = head ? head.shape[0]! : 0;
    const probe = createModel(opts.model, { numClasses });
    const pre = getModelEntry(opts.model).pretrained;
    meta = { ...metaFor(opts.model, probe, Array.from({ length: numClasses }, (_, i) => String(i))), mean: pre.mean, std: pre.std };
  }
  const model = modelFor(meta, path);
  try {
    model.loadStateDict(state, true);
  } catch (e) {
    throw new CheckpointError(`${path}: ${(e as Error).message}`);
  }
  return { model, meta };
}

/** The model a checkpoint's metadata describes, built through its family (ViT for older files). */
export function modelFor(meta: CheckpointMeta, source: string): ImageModel {
  const family = meta.family ?? familyOf(meta.model);
  try {
    return createFromConfig(family, meta.config);
  } catch (e) {
    throw new CheckpointError(`${source}: cannot build its ${meta.model} (${family}): ${(e as Error).message}`);
  }
}

function loadForeign(path: string, opts: LoadOptions): { model: ImageModel; meta: CheckpointMeta } {
  const fc = loadForeignCheckpoint(path, { model: opts.model });
  const meta = foreignMeta(fc);
  const model = modelFor(meta, path);
  model.loadStateDict(fc.stateDict, true);
  return { model, meta };
}
