/**
 * Swin checkpoints: the original Microsoft / timm ≤ 0.6 key layout remapped to timm ≥ 0.9's (as
 * timm's `checkpoint_filter_fn` does), and the architecture read back from a state dict's shapes.
 */
import { StateDictError, type StateDict } from '../nn/module.js';
import type { SwinConfig } from '../models/swin.js';

/**
 * Microsoft's original checkpoints and timm ≤ 0.6 put each stage's patch merging at the end of
 * the stage before (`layers.i.downsample` → `layers.{i+1}.downsample`), call the classifier
 * `head`, and save the index and mask buffers, which are rebuilt here from the config.
 */
export function swinCheckpointFilter(sd: StateDict): StateDict {
  const oldLayout = !('head.fc.weight' in sd) && ('head.weight' in sd || Object.keys(sd).some((k) => k.endsWith('relative_position_index')));
  const out: StateDict = {};
  for (const [key, t] of Object.entries(sd)) {
    if (key.endsWith('relative_position_index') || key.endsWith('attn_mask')) continue;
    let k = key;
    if (oldLayout) {
      k = k.replace(/^layers\.(\d+)\.downsample\./, (_, i: string) => `layers.${Number(i) + 1}.downsample.`);
      k = k.replace(/^head\./, 'head.fc.');
    }
    if (k in out) throw new StateDictError(`swin checkpoint: ${key} and another key both map to ${k}`);
    out[k] = t;
  }
  return out;
}

/**
 * A Swin's architecture from its state dict (timm's or the original layout): channels and patch
 * from the patch embedding, blocks per stage by counting, heads and window from each stage's
 * bias table, classes from the head. The image size is not in the weights: 224, or 384 for
 * 12×12 windows, as the published models are.
 */
export function inferSwinConfig(sd: StateDict): Partial<SwinConfig> | undefined {
  if (!('layers.0.blocks.0.attn.relative_position_bias_table' in sd)) return undefined;
  const pe = sd['patch_embed.proj.weight'];
  if (!pe) return undefined;
  const [embedDim, inChans, patchSize] = pe.shape as number[];
  const depths: number[] = [];
  const numHeads: number[] = [];
  for (let i = 0; `layers.${i}.blocks.0.norm1.weight` in sd; i++) {
    let d = 0;
    while (`layers.${i}.blocks.${d}.norm1.weight` in sd) d++;
    depths.push(d);
    numHeads.push(sd[`layers.${i}.blocks.0.attn.relative_position_bias_table`]!.shape[1]!);
  }
  const windowSize = (Math.round(Math.sqrt(sd['layers.0.blocks.0.attn.relative_position_bias_table']!.shape[0]!)) + 1) / 2;
  const head = sd['head.fc.weight'] ?? sd['head.weight'];
  const hidden = sd['layers.0.blocks.0.mlp.fc1.weight']!.shape[0]!;
  return {
    imgSize: windowSize === 12 ? 384 : 224, inChans, patchSize, embedDim, depths, numHeads, windowSize,
    mlpRatio: hidden / embedDim!, qkvBias: 'layers.0.blocks.0.attn.qkv.bias' in sd, numClasses: head ? head.shape[0]! : 0,
  };
}
