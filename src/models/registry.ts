/**
 * Named architectures, timm-style. Each entry is a model config plus a pretrained-style config
 * that carries the preprocessing, so a checkpoint knows how its inputs were made.
 */
import { VisionTransformer, type VitConfig } from './vit.js';
import type { Interpolation } from './pos_embed.js';
import { vitEntries } from './vit_entries.js';

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

export interface ModelEntry {
  name: string;
  family: 'vit' | 'deit';
  config: Partial<VitConfig>;
  pretrained: PretrainedConfig;
  /** Notes for `tessera models`, e.g. the dataset a small preset is meant for. */
  description?: string;
}

const registry = new Map<string, ModelEntry>();

export function registerModel(entry: ModelEntry): void {
  if (registry.has(entry.name)) throw new Error(`model "${entry.name}" is registered twice`);
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

/** Builds a registered model; `overrides` change the config (e.g. numClasses, imgSize, dropPathRate). */
export function createModel(name: string, overrides: Partial<VitConfig> = {}): VisionTransformer {
  const e = getModelEntry(name);
  return new VisionTransformer({ ...e.config, ...overrides });
}

for (const e of vitEntries) registerModel(e);
