/**
 * Fine-tuning from pretrained weights: loading them, fitting them to the new model (a fresh
 * head for other classes, timm's adapt_input_conv for other channel counts, resampled position
 * embeddings for another grid), freezing the backbone with progressive unfreezing, and
 * layer-wise LR decay with timm's grouping.
 */
import type { CheckpointMeta } from '../checkpoint/checkpoint.js';
import { loadPretrained } from '../checkpoint/pretrained.js';
import type { StateDict } from '../nn/module.js';
import type { VisionTransformer } from '../models/vit.js';

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

/** timm's adapt_input_conv: a 3-channel patch embedding summed to 1 channel, or tiled and rescaled to others. */
export function adaptInputConv(weight: Float32Array, shape: readonly number[], inChans: number): { data: Float32Array; shape: number[] } {
  const [o, c, kh, kw] = shape as [number, number, number, number];
  if (c === inChans) return { data: weight, shape: [...shape] };
  const k = kh * kw;
  const out = new Float32Array(o * inChans * k);
  for (let oc = 0; oc < o; oc++) {
    for (let ic = 0; ic < inChans; ic++) {
      for (let j = 0; j < k; j++) {
        if (inChans === 1) {
          let s = 0;
          for (let src = 0; src < c; src++) s += weight[(oc * c + src) * k + j]!;
          out[(oc * inChans + ic) * k + j] = s;
        } else {
          out[(oc * inChans + ic) * k + j] = (weight[(oc * c + (ic % c)) * k + j]! * c) / inChans;
        }
      }
    }
  }
  return { data: out, shape: [o, inChans, kh, kw] };
}

/**
 * Loads `weights` into `model`, which may differ from the source in class count (the head is
 * left freshly initialised), input channels and image size. Everything else must match.
 */
export function applyPretrained(model: VisionTransformer, weights: PretrainedWeights, log: (m: string) => void = () => {}): void {
  const own = new Map(model.namedParameters());
  const state: StateDict = { ...weights.state };
  const reset: string[] = [];
  for (const key of ['head.weight', 'head.bias', 'head_dist.weight', 'head_dist.bias']) {
    const src = state[key];
    const dst = own.get(key);
    if (src && (!dst || src.shape.join() !== dst.shape.join())) {
      delete state[key];
      if (dst) reset.push(key);
    }
  }
  if (reset.length) log(`pretrained head has other classes: ${reset.join(', ')} re-initialised for ${model.config.numClasses} classes`);
  const pe = state['patch_embed.proj.weight'];
  if (pe && pe.shape[1] !== model.config.inChans) {
    state['patch_embed.proj.weight'] = adaptInputConv(pe.data, pe.shape, model.config.inChans);
    log(`patch embedding adapted from ${pe.shape[1]} to ${model.config.inChans} input channels`);
  }
  model.loadStateDict(state, false, { resamplePos: true });
  const missing = [...own.keys()].filter((k) => !(k in state) && !reset.includes(k));
  if (missing.length) throw new Error(`${weights.source} lacks ${missing.join(', ')} needed by ${model.config.embedDim}-dim model`);
}

type Group = 'embed' | number | 'head';

/** timm's layer ids: embeddings 0, block i → i + 1, everything after the blocks → depth + 1. */
function layerOf(name: string): Group {
  const m = /^blocks\.(\d+)\./.exec(name);
  if (m) return Number(m[1]);
  if (/^(cls_token|dist_token|pos_embed|patch_embed\.)/.test(name)) return 'embed';
  return 'head';
}

/** LR multipliers decay^(depth + 1 − layer id), as timm's param_groups_layer_decay. */
export function layerDecayScales(model: VisionTransformer, decay: number): Map<string, number> {
  const depth = model.config.depth;
  const numLayers = depth + 1;
  const id = (g: Group) => (g === 'embed' ? 0 : g === 'head' ? numLayers : g + 1);
  return new Map(model.namedParameters().map(([k]) => [k, decay ** (numLayers - id(layerOf(k)))]));
}

/**
 * Which parameters train in `epoch` (0-based). 'none': all. 'backbone': only the head and the
 * final norms; with `unfreezeEvery` k, one more block from the top every k epochs, and the
 * embeddings once all blocks train.
 */
export function setTrainable(model: VisionTransformer, freeze: 'none' | 'backbone', epoch: number, unfreezeEvery?: number): string[] {
  const depth = model.config.depth;
  const open = freeze === 'none' ? depth + 1 : unfreezeEvery ? Math.floor(epoch / unfreezeEvery) : 0;
  for (const [k, p] of model.namedParameters()) {
    const g = layerOf(k);
    p.requiresGrad = g === 'head' || (typeof g === 'number' ? g >= depth - open : open > depth);
  }
  return model.namedParameters().filter(([, p]) => p.requiresGrad).map(([k]) => k);
}

