/**
 * Pieces several families share as timm does: the training noise of stochastic depth and head
 * dropout, the block-wise layer grouping, and adapt_input_conv on `patch_embed.proj`.
 */
import type { StateDict } from '../nn/module.js';
import { dropPathScales, dropoutScales } from '../nn/drop_path.js';
import { adaptInputConv } from './adapt_input.js';
import type { LayerGrouping, NoiseInput } from './model.js';

/** Salts of the training step's noise streams (kept from the first trainer, so old seeds reproduce). */
const DROP_PATH_SALT = 0xd209;
const HEAD_DROP_SALT = 0xd20b;

/**
 * drop_path [B, blocks·2] (the attention and MLP branch of each block, timm's rate rising linearly
 * over all blocks) and head_drop [B, width] on the pooled features, each only when its rate is set.
 */
export function dropNoiseInputs({ dropPathRate, dropRate }: { dropPathRate: number; dropRate: number }, blocks: number, width: number): NoiseInput[] {
  const out: NoiseInput[] = [];
  if (dropPathRate > 0) out.push({ name: 'drop_path', perSample: blocks * 2, salt: DROP_PATH_SALT, draw: (rng, batch) => dropPathScales(rng, dropPathRate, blocks, batch) });
  if (dropRate > 0) out.push({ name: 'head_drop', perSample: width, salt: HEAD_DROP_SALT, draw: (rng, batch) => dropoutScales(rng, dropRate, batch * width) });
  return out;
}

/** timm's layer ids for a flat `blocks.N` stack: keys matching `embed` 0, block i → i + 1, everything else depth + 1. */
export function blockLayerGrouping(depth: number, embed: RegExp): LayerGrouping {
  return {
    blocks: depth,
    layerOf(key) {
      const m = /^blocks\.(\d+)\./.exec(key);
      if (m) return Number(m[1]) + 1;
      return embed.test(key) ? 0 : depth + 1;
    },
  };
}

/** timm's adapt_input_conv applied to `patch_embed.proj.weight` for a model of `inChans` channels. */
export function adaptPatchEmbed(sd: StateDict, inChans: number): { state: StateDict; notes: string[] } {
  const pe = sd['patch_embed.proj.weight'];
  if (!pe || pe.shape[1] === inChans) return { state: sd, notes: [] };
  return {
    state: { ...sd, 'patch_embed.proj.weight': adaptInputConv(pe.data, pe.shape, inChans) },
    notes: [`patch embedding adapted from ${pe.shape[1]} to ${inChans} input channels`],
  };
}
