/** Image to patch tokens: a conv with kernel = stride = patch size, as timm's PatchEmbed (`proj`). */
import type { Tensor } from '../ir/tensor.js';
import { add, matmul, reshape, transpose } from '../ops/index.js';
import type { Random } from '../random.js';
import { Module } from './module.js';
import { Conv2d } from './layers.js';

export class PatchEmbed extends Module {
  readonly gridSize: [number, number];
  readonly numPatches: number;
  readonly proj: Conv2d;

  constructor(readonly imgSize: number, readonly patchSize: number, readonly inChans: number, readonly embedDim: number, rng: Random) {
    super();
    if (imgSize % patchSize !== 0) throw new RangeError(`PatchEmbed: image size ${imgSize} is not divisible by patch size ${patchSize}`);
    const g = imgSize / patchSize;
    this.gridSize = [g, g];
    this.numPatches = g * g;
    this.proj = this.addChild('proj', new Conv2d(inChans, embedDim, patchSize, rng, { stride: patchSize }));
  }

  /**
   * [B, C, H, W] → [B, N, D]. A stride-p p×p conv equals a matmul over flattened patches; that
   * form runs and differentiates as one GEMM instead of an im2col convolution.
   */
  forward(x: Tensor): Tensor {
    return this.embedPatches(this.patches(x));
  }

  /** [B, C, H, W] → each patch's pixels [B, N, C·p·p] in the conv weight's (c, row, column) order. */
  patches(x: Tensor): Tensor {
    return this.scoped(x.graph, () => {
      const [, c, h, w] = x.shape as [unknown, number, number, number];
      if (c !== this.inChans || h !== this.imgSize || w !== this.imgSize) {
        throw new RangeError(`${this.path || 'patch_embed'}: expected images [B, ${this.inChans}, ${this.imgSize}, ${this.imgSize}], got [B, ${c}, ${h}, ${w}]`);
      }
      const p = this.patchSize;
      const [gh, gw] = this.gridSize;
      return reshape(transpose(reshape(x, [-1, c, gh, p, gw, p]), [0, 2, 4, 1, 3, 5]), [-1, gh * gw, c * p * p]); // [B, N, C·p·p]
    });
  }

  /** Pixels of any number of patches [B, L, C·p·p] (all of `patches(x)`, or some of them) → tokens [B, L, D]. */
  embedPatches(patches: Tensor): Tensor {
    const g = patches.graph;
    return this.scoped(g, () => this.proj.scopedLinear(g, patches, this.embedDim));
  }
}
