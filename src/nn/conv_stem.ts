/**
 * A convolutional stem in place of the patchify conv: "Early Convolutions Help Transformers See
 * Better" (Xiao et al. 2021, https://arxiv.org/abs/2106.14881). log2(patch) 3×3 stride-2 convs,
 * each doubling the channels and followed by GELU, then a 1×1 conv to the embedding; optional
 * stride-1 convs (at the resolution they follow) add depth without reducing the grid. The tokens
 * keep the patchify grid (image / patch), so everything after the embedding is unchanged; the
 * overlapping 3×3 windows give the small-data inductive bias a plain ViT lacks.
 *
 * The paper normalises with BatchNorm. By default this stem has none (the block's pre-norm LayerNorm
 * follows); `norm: 'group'` puts a GroupNorm of 8 groups between each 3×3 conv (then bias-free)
 * and its GELU, as timm's ResNetV2 hybrids do: like no norm, it keeps training and inference the
 * same graph, which BatchNorm's running statistics would not. Keys mirror timm's hybrid
 * embedding: `patch_embed.backbone.conv{i}.*`, `patch_embed.backbone.norm{i}.*` and
 * `patch_embed.proj.*`.
 */
import type { Tensor } from '../ir/tensor.js';
import { gelu, reshape, transpose } from '../ops/index.js';
import type { Random } from '../random.js';
import { Module } from './module.js';
import { Conv2d, GroupNorm } from './layers.js';

export type StemNorm = 'none' | 'group';
/** Groups of the stem's GroupNorms: every stem width the registry uses (16–64) divides into 8. */
const STEM_NORM_GROUPS = 8;

export class ConvStemEmbed extends Module {
  readonly gridSize: [number, number];
  readonly numPatches: number;
  readonly convs: Conv2d[];
  readonly norms: GroupNorm[] = [];
  readonly proj: Conv2d;

  /**
   * `width`: channels of the first conv, doubled after each stride-2 conv. `strides`: one per
   * 3×3 conv, each 1 or 2, multiplying to the patch size (default: log2(patch) stride-2 convs).
   * `norm`: 'group' normalises each 3×3 conv's output before its GELU.
   */
  constructor(readonly imgSize: number, readonly patchSize: number, readonly inChans: number, readonly embedDim: number, rng: Random,
    width = 24, strides: readonly number[] = [], readonly norm: StemNorm = 'none') {
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
      const conv = this.addChild(`backbone.conv${i}`, new Conv2d(chans, out, 3, rng, { stride, padding: 1, bias: norm === 'none' }));
      if (norm === 'group') {
        if (out % STEM_NORM_GROUPS !== 0) throw new RangeError(`ConvStemEmbed: stem width ${width} gives ${out} channels, which do not split into ${STEM_NORM_GROUPS} GroupNorm groups`);
        this.norms.push(this.addChild(`backbone.norm${i}`, new GroupNorm(STEM_NORM_GROUPS, out)));
      }
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
    this.convs.forEach((conv, i) => {
      y = this.scoped(x.graph, () => {
        const z = conv.forward(y);
        return gelu(this.norms[i] ? this.norms[i].forward(z) : z);
      });
    });
    y = this.proj.forward(y); // [B, D, gh, gw]
    return this.scoped(x.graph, () => transpose(reshape(y, [-1, this.embedDim, this.numPatches]), [0, 2, 1]));
  }
}
