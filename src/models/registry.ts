/**
 * Named architectures, timm-style. Each entry is a family (see `model.ts`) plus its constructor
 * args, and a pretrained-style config that carries the preprocessing, so a checkpoint knows how
 * its inputs were made. A new family registers its entries here by importing its file once.
 */
import type { Interpolation } from './pos_embed.js';
import { getFamily, type CommonModelArgs, type ImageModel } from './model.js';
import { vitEntries } from './vit_entries.js';
import { convitEntries } from './convit.js';
import { swinEntries } from './swin.js';
import { cvtEntries } from './cvt.js';
import { mobilevitEntries } from './mobilevit.js';
import { clipEntries } from './clip.js';
import { clipContrastiveEntries } from './clip_contrastive.js';
import { maeEntries } from './mae.js';
import { dinoEntries } from './dino.js';

export interface PretrainedConfig {
  /** [C, H, W] */
  inputSize: [number, number, number];
  mean: number[];
  std: number[];
  interpolation: Interpolation;
  /** Eval transform: resize to size / cropPct, then centre-crop size. */
  cropPct: number;
  numClasses: number;
  classNames?: string[];
}

/** Constructor args of a family: its own keys (checked by the family) plus the common ones. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ModelArgs = Partial<CommonModelArgs> & Record<string, any>;

export interface ModelEntry {
  name: string;
  /** The family in the family table (`registerFamily`), e.g. 'vit'. */
  family: string;
  /** The family constructor's args for this entry. */
  config: ModelArgs;
  pretrained: PretrainedConfig;
  /** Notes for `tessera models`, e.g. the dataset a small preset is meant for. */
  description?: string;
  /** The reference implementation's parameter count for this entry (timm's, HF's…): the registry test checks it. */
  params?: number;
}

const registry = new Map<string, ModelEntry>();

export function registerModel(entry: ModelEntry): void {
  if (registry.has(entry.name)) throw new Error(`model "${entry.name}" is registered twice`);
  getFamily(entry.family); // the family must exist
  registry.set(entry.name, entry);
}

export function listModels(): ModelEntry[] {
  return [...registry.values()];
}

export function getModelEntry(name: string): ModelEntry {
  const e = registry.get(name);
  if (!e) throw new RangeError(`unknown model "${name}"; run \`tessera models\` to list them (e.g. ${[...registry.keys()].slice(0, 3).join(', ')})`);
  return e;
}

/** Builds a registered model; `overrides` change the args (e.g. numClasses, imgSize, dropPathRate). */
export function createModel(name: string, overrides: ModelArgs = {}): ImageModel {
  const e = getModelEntry(name);
  return getFamily(e.family).create({ ...e.config, ...overrides });
}

/** Builds a model from a family name and a full config, as a checkpoint stores them. */
export function createFromConfig(family: string, config: ModelArgs): ImageModel {
  return getFamily(family).create(config);
}

/** The family of a registered name; 'vit' for names this build does not know (older checkpoints held ViTs only). */
export function familyOf(modelName: string): string {
  return registry.get(modelName)?.family ?? 'vit';
}

for (const e of vitEntries) registerModel(e);
for (const e of convitEntries) registerModel(e);
for (const e of swinEntries) registerModel(e);
for (const e of cvtEntries) registerModel(e);
for (const e of mobilevitEntries) registerModel(e);
for (const e of clipEntries) registerModel(e);
for (const e of clipContrastiveEntries) registerModel(e);
for (const e of maeEntries) registerModel(e);
for (const e of dinoEntries) registerModel(e);
