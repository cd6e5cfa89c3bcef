/**
 * Fine-tuning from pretrained weights: loading them, fitting them to the new model (a fresh
 * head for other classes, timm's adapt_input_conv for other channel counts, resampled position
 * embeddings for another grid), freezing the backbone with progressive unfreezing, and
 * layer-wise LR decay with timm's grouping.
 */
import type { CheckpointMeta } from '../checkpoint/checkpoint.js';
import { loadPretrained } from '../checkpoint/pretrained.js';
import type { StateDict } from '../nn/module.js';
import type { ImageModel } from '../models/model.js';

export interface PretrainedWeights {
  source: string;
  state: StateDict;
  /** Present for tessera checkpoints: the architecture and preprocessing they were trained with. */
  meta?: CheckpointMeta;
}

/**
 * Reads pretrained weights: a local tessera/timm/Hugging Face/torchvision checkpoint (file or
 * directory), or a hub id (`timm/<name>`, `hf:<org>/<name>`), converted to timm keys.
 */
export async function loadPretrainedWeights(spec: string): Promise<PretrainedWeights> {
  const p = await loadPretrained(spec);
  return { source: p.source, state: p.state, meta: p.meta };
}

export { adaptInputConv } from '../models/adapt_input.js';

/**
 * Loads `weights` into `model`, which may differ from the source in class count (the head is
 * left freshly initialised), input channels and image size. Everything else must match.
 */
export function applyPretrained(model: ImageModel, weights: PretrainedWeights, log: (m: string) => void = () => {}): void {
  const own = new Map(model.namedState());
  let state: StateDict = { ...weights.state };
  const reset: string[] = [];
  for (const key of model.headKeys()) {
    const src = state[key];
    const dst = own.get(key);
    if (src && (!dst || src.shape.join() !== dst.shape.join())) {
      delete state[key];
      if (dst) reset.push(key);
    }
  }
  if (reset.length) log(`pretrained head has other classes: ${reset.join(', ')} re-initialised for ${model.numClasses} classes`);
  const adapted = model.adaptPretrained(state);
  state = adapted.state;
  for (const note of adapted.notes) log(note);
  model.loadStateDict(state, false, { resamplePos: true });
  // weights without a classifier (self-supervised pretraining: MAE) leave the model's head as initialised
  const heads = new Set(model.headKeys());
  const fresh = [...own.keys()].filter((k) => !(k in state) && heads.has(k) && !reset.includes(k));
  if (fresh.length) log(`${weights.source} has no ${fresh.join(', ')}: initialised fresh`);
  const missing = [...own.keys()].filter((k) => !(k in state) && !reset.includes(k) && !heads.has(k));
  if (missing.length) throw new Error(`${weights.source} lacks ${missing.join(', ')} needed by the ${model.family} model (${model.numFeatures} features)`);
}

/**
 * LR multipliers decay^(blocks + 1 − layer id), as timm's param_groups_layer_decay, with the
 * model's own grouping. After the blocks only the classifier (headKeys) has scale 1: timm's
 * group matchers put the final norm (ViT, Swin, ConViT) and final conv (MobileViT) in the last
 * block's group (MATCH_PREV_GROUP) and leave the head unmatched, in a group of its own.
 */
export function layerDecayScales(model: ImageModel, decay: number): Map<string, number> {
  const { blocks, layerOf } = model.layerGrouping();
  const numLayers = blocks + 1;
  const head = new Set(model.headKeys());
  return new Map(model.namedParameters().map(([k]) => [k, decay ** (numLayers - Math.min(layerOf(k), head.has(k) ? numLayers : blocks))]));
}

/**
 * Which parameters train in `epoch` (0-based). 'none': all. 'backbone': only what comes after the
 * blocks (head, final norms); with `unfreezeEvery` k, one more block from the top every k epochs,
 * and the embeddings once all blocks train.
 */
export function setTrainable(model: ImageModel, freeze: 'none' | 'backbone', epoch: number, unfreezeEvery?: number): string[] {
  const { blocks, layerOf } = model.layerGrouping();
  const open = freeze === 'none' ? blocks + 1 : unfreezeEvery ? Math.floor(epoch / unfreezeEvery) : 0;
  for (const [k, p] of model.namedParameters()) {
    const id = layerOf(k);
    p.requiresGrad = id > blocks || (id >= 1 ? id - 1 >= blocks - open : open > blocks);
  }
  return model.namedParameters().filter(([, p]) => p.requiresGrad).map(([k]) => k);
}
