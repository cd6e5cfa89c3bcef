/**
 * torchvision `VisionTransformer` (`vit_b_16` …) ↔ timm keys. torchvision's `in_proj_weight`
 * already stacks [q; k; v] rows like timm's qkv, its MLP is an nn.Sequential (`mlp.0`, `mlp.3`;
 * `linear_1`/`linear_2` in old checkpoints), LayerNorm eps is 1e-6 and pooling is the class
 * token. The number of heads is not in the weights: it comes from the hints or the standard
 * torchvision sizes.
 */
import type { VitConfig } from '../models/vit.js';
import type { StateDict } from '../nn/module.js';
import {
  LayoutError, checkAgainstModel, inferTimmConfig, renameKeys, resolveHeads, toStateDict,
  type ForeignCheckpoint, type KeyRules, type LayoutHints, type RawTensors,
} from './layout_common.js';

const L = String.raw`^encoder\.layers\.encoder_layer_(\d+)`;
const FROM_TV: KeyRules = [
  [/^class_token$/, 'cls_token'],
  [/^conv_proj\.(weight|bias)$/, 'patch_embed.proj.$1'],
  [/^encoder\.pos_embedding$/, 'pos_embed'],
  [new RegExp(`${L}\\.ln_1\\.(weight|bias)$`), 'blocks.$1.norm1.$2'],
  [new RegExp(`${L}\\.self_attention\\.in_proj_(weight|bias)$`), 'blocks.$1.attn.qkv.$2'],
  [new RegExp(`${L}\\.self_attention\\.out_proj\\.(weight|bias)$`), 'blocks.$1.attn.proj.$2'],
  [new RegExp(`${L}\\.ln_2\\.(weight|bias)$`), 'blocks.$1.norm2.$2'],
  [new RegExp(`${L}\\.mlp\\.(?:0|linear_1)\\.(weight|bias)$`), 'blocks.$1.mlp.fc1.$2'],
  [new RegExp(`${L}\\.mlp\\.(?:3|linear_2)\\.(weight|bias)$`), 'blocks.$1.mlp.fc2.$2'],
  [/^encoder\.ln\.(weight|bias)$/, 'norm.$1'],
  [/^heads\.head\.(weight|bias)$/, 'head.$1'],
];
const TO_TV: KeyRules = [
  [/^cls_token$/, 'class_token'],
  [/^patch_embed\.proj\.(weight|bias)$/, 'conv_proj.$1'],
  [/^pos_embed$/, 'encoder.pos_embedding'],
  [/^blocks\.(\d+)\.norm1\.(weight|bias)$/, 'encoder.layers.encoder_layer_$1.ln_1.$2'],
  [/^blocks\.(\d+)\.attn\.qkv\.(weight|bias)$/, 'encoder.layers.encoder_layer_$1.self_attention.in_proj_$2'],
  [/^blocks\.(\d+)\.attn\.proj\.(weight|bias)$/, 'encoder.layers.encoder_layer_$1.self_attention.out_proj.$2'],
  [/^blocks\.(\d+)\.norm2\.(weight|bias)$/, 'encoder.layers.encoder_layer_$1.ln_2.$2'],
  [/^blocks\.(\d+)\.mlp\.fc1\.(weight|bias)$/, 'encoder.layers.encoder_layer_$1.mlp.0.$2'],
  [/^blocks\.(\d+)\.mlp\.fc2\.(weight|bias)$/, 'encoder.layers.encoder_layer_$1.mlp.3.$2'],
  [/^norm\.(weight|bias)$/, 'encoder.ln.$1'],
  [/^head\.(weight|bias)$/, 'heads.head.$1'],
];
/** vit_b, vit_l, vit_h: `${dim}x${depth}` → heads. */
const TORCHVISION_HEADS: Record<string, number> = { '768x12': 12, '1024x24': 16, '1280x32': 16 };

export function fromTorchvision(raw: RawTensors, source: string, hints: LayoutHints): ForeignCheckpoint {
  const dropped: string[] = [];
  const sd = toStateDict(raw, source, [], dropped);
  const preLogits = Object.keys(sd).filter((k) => k.startsWith('heads.pre_logits'));
  if (preLogits.length) throw new LayoutError(`${source}: torchvision's representation layer (${preLogits.join(', ')}) is not supported`);
  const timm = renameKeys(sd, FROM_TV, [], dropped, `${source} (torchvision ViT)`);
  const config = inferTimmConfig(timm, source, { numHeads: (dim, depth) => resolveHeads(dim, depth, hints, source, TORCHVISION_HEADS) });
  if (config.globalPool !== 'token') throw new LayoutError(`${source}: torchvision ViTs pool the class token; this one has fc_norm`);
  checkAgainstModel(timm, config, source);
  // torchvision's ImageNet weights: resize 256, centre-crop 224, bilinear, ImageNet mean/std
  const preprocessing = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], interpolation: 'bilinear' as const, cropPct: 0.875 };
  return { layout: 'torchvision', source, stateDict: timm, config, dropped, preprocessing: config.inChans === 3 ? preprocessing : undefined };
}

/** timm keys → torchvision keys; a bias-free qkv gets zero in_proj biases (torchvision always has them). */
export function toTorchvision(sd: StateDict, c: VitConfig): StateDict {
  const bad = [
    !c.classToken && 'no class token', c.globalPool !== 'token' && `${c.globalPool} pooling`, c.distilled && 'a distillation token',
    c.noEmbedClass && 'no_embed_class position embeddings', c.numClasses === 0 && 'no head', c.imgSize % c.patchSize !== 0 && 'a partial patch grid',
  ].filter(Boolean);
  if (bad.length) throw new LayoutError(`torchvision's VisionTransformer cannot hold a model with ${bad.join(', ')}`);
  const full: StateDict = { ...sd };
  for (let i = 0; i < c.depth; i++) {
    full[`blocks.${i}.attn.qkv.bias`] ??= { data: new Float32Array(3 * c.embedDim), shape: [3 * c.embedDim] };
  }
  return renameKeys(full, TO_TV, [], [], 'torchvision export');
}

/** The Python constructor call that builds the matching torchvision model. */
export function torchvisionConstructor(c: VitConfig): string {
  const build = `torchvision.models.vision_transformer.VisionTransformer(image_size=${c.imgSize}, patch_size=${c.patchSize}, num_layers=${c.depth}, `
    + `num_heads=${c.numHeads}, hidden_dim=${c.embedDim}, mlp_dim=${Math.round(c.embedDim * c.mlpRatio)}, num_classes=${c.numClasses})`;
  // torchvision hard-codes 3 input channels
  return c.inChans === 3 ? build : `${build}; model.conv_proj = torch.nn.Conv2d(${c.inChans}, ${c.embedDim}, kernel_size=${c.patchSize}, stride=${c.patchSize})`;
}
