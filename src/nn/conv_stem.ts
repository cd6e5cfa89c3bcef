/**
 * A convolutional stem in place of the patchify conv: "Early Convolutions Help Transformers See
 * Better" (Xiao et al. 2021, https://arxiv.org/abs/2106.14881). log2(patch) 3×3 stride-2 convs,
 * each doubling the channels and followed by GELU, then a 1×1 conv to the embedding; optional
 * stride-1 convs (at the resolution they follow) add depth without reducing the grid. The tokens
 * keep the patchify grid (image / patch), so everything after the embedding is unchanged; the
 * overlapping 3×3 windows give the small-data inductive bias a plain ViT lacks.
 *
 * The paper normalises with BatchNorm; this stem has none (the block's pre-norm LayerNorm follows),
 * which keeps training and inference the same graph. Keys mirror timm's hybrid embedding:
 * `patch_embed.backbone.conv{i}.*` and `patch_embed.proj.*`.
 */
import type { Tensor } from '../ir/tensor.js';
import { gelu, reshape, transpose } from '../ops/index.js';
import type { Random } from '../random.js';
import { Module } from './module.js';
import { Conv2d } from './layers.js';

export class ConvStemEmbed extends Module {
  readonly gridSize: [number, number];
  readonly numPatches: number;
  readonly convs: Conv2d[];
  readonly proj: Conv2d;

  /**
   * `width`: channels of the first conv, doubled after each stride-2 conv. `strides`: one per
   * 3×3 conv, each 1 or 2, multiplying to the patch size (default: log2(patch) stride-2 convs).
   */
  constructor(readonly imgSize: number, readonly patchSize: number, readonly inChans: number, readonly embedDim: number, rng: Random, width = 24, strides: readonly number[] = []) {
    super();
    const stages = Math.log2(patchSize);
    if (!Number.isInteger(stages) || stages < 1) throw new RangeError(`ConvStemEmbed: patch size ${patchSize} is not a power of two ≥ 2`);
    if (imgSize % patchSize !== 0) throw new RangeError(`ConvStemEmbed: image size ${imgSize} is not divisible by patch size ${patchSize}`);
    const plan = strides.length ? strides : Array.from({ length: stages }, () => 2);
    if (plan.some((s) => s !== 1 && s !== 2) || plan.reduce((a, b) => a * b, 1) !== patchSize) {
      throw new RangeError(`ConvStemEmbed: strides [${plan.join(', ')}] must each be 1 or 2 and multiply to the patch size ${patchSize}`);
    }
    const g = imgSize / patchSize;
    this.gridSize = [g, g];
    this.numPatches = g * g;
    let chans = inChans;
    let out = width;
    this.convs = plan.map((stride, i) => {
      const conv = this.addChild(`backbone.conv${i}`, new Conv2d(chans, out, 3, rng, { stride, padding: 1 }));
      chans = out;
      if (stride === 2) out *= 2;
      return conv;
    });
    this.proj = this.addChild('proj', new Conv2d(chans, embedDim, 1, rng));
  }

  /** [B, C, H, W] → [B, N, D]. */
  forward(x: Tensor): Tensor {
    const [, c, h, w] = x.shape as [unknown, number, number, number];
    if (c !== this.inChans || h !== this.imgSize || w !== this.imgSize) {
      throw new RangeError(`${this.path || 'patch_embed'}: expected images [B, ${this.inChans}, ${this.imgSize}, ${this.imgSize}], got [B, ${c}, ${h}, ${w}]`);
    }
    let y = x;
    for (const conv of this.convs) y = this.scoped(x.graph, () => gelu(conv.forward(y)));
    y = this.proj.forward(y); // [B, D, gh, gw]
    return this.scoped(x.graph, () => transpose(reshape(y, [-1, this.embedDim, this.numPatches]), [0, 2, 1]));
  }
}
