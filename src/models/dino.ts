/**
 * DINO — "Emerging Properties in Self-Supervised Vision Transformers" (Caron et al. 2021,
 * https://arxiv.org/abs/2104.14294) — the student/teacher network as facebookresearch/dino's
 * MultiCropWrapper holds it: a ViT `backbone` (timm keys: DINO's vision_transformer.py names its
 * tensors as timm does) and a projection `head` (`head.mlp.N.*`, `head.last_layer.weight_g`,
 * `head.last_layer.weight_v`). An official `student` / `teacher` state dict (with `module.`
 * stripped) loads with no mapping; the backbone's keys without `backbone.` fine-tune as a `vit`.
 *
 * Local crops are smaller than the model's input: the backbone then interpolates its position
 * table inside the traced graph as DINO's interpolate_pos_encoding does (bicubic with the scale
 * factor (grid + 0.1) / old grid), written as a constant matrix times the table so the gradient
 * reaches pos_embed through the same graph. Each crop size is one more branch of the same graph
 * sharing the parameters.
 */
import { z } from 'zod';
import type { Tensor } from '../ir/tensor.js';
import { add, concat, div, expand, gelu, matmul, maximum, mul, reshape, slice, sqrt, sum, transpose } from '../ops/index.js';
import { Random } from '../random.js';
import { Module, type StateDict } from '../nn/module.js';
import { LayerNorm, Linear } from '../nn/layers.js';
import { PatchEmbed } from '../nn/patch_embed.js';
import { ones, truncNormal, uniformFanIn } from '../nn/init.js';
import { VisionTransformer, vitEncoderConfig, type VitEncoderShape } from './vit.js';
import type { ModelEntry } from './registry.js';
import { ImageModel, registerFamily, type CommonModelArgs, type ForwardOptions, type LayerGrouping, type TokenGrid } from './model.js';

export interface DinoConfig extends CommonModelArgs, Required<VitEncoderShape> {
  /** Width of the head's output (the prototypes DINO's softmax runs over; 65,536 in the paper). */
  outDim: number;
  hiddenDim: number;
  bottleneckDim: number;
  /** Linear layers of the head's MLP (DINO: 3). */
  headLayers: number;
}

/** DINO's ViT-S/16 with its default head (out_dim 65,536, MLP 2048-2048-256). */
export const dinoDefaults: DinoConfig = {
  imgSize: 224, patchSize: 16, inChans: 3, numClasses: 0, embedDim: 384, depth: 12, numHeads: 6, mlpRatio: 4, qkvBias: true,
  outDim: 65536, hiddenDim: 2048, bottleneckDim: 256, headLayers: 3, dropPathRate: 0, dropRate: 0, seed: 0,
};

const count = z.number().int().positive();
export const dinoKwargsSchema = z.object({
  patchSize: count, embedDim: count, depth: count, numHeads: count, mlpRatio: z.number().positive(), qkvBias: z.boolean(),
  outDim: count, hiddenDim: count, bottleneckDim: count, headLayers: count,
}).partial().strict();

/** PyTorch's bicubic kernel (A = −0.75, no antialiasing). */
function cubic(x: number): number {
  const a = -0.75;
  const t = Math.abs(x);
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return a * (((t - 5) * t + 8) * t - 4);
  return 0;
}

/**
 * F.interpolate(mode='bicubic', align_corners=False, scale_factor=s) along one axis of `nIn`
 * samples to `nOut`, as a matrix [nOut, nIn]: the source of output i is (i + 0.5)/s − 0.5 with
 * the given s (not nIn/nOut: DINO passes a scale factor), its four neighbours clamped to the edge.
 */
export function bicubicScaleMatrix(nIn: number, nOut: number, scale: number): Float64Array {
  const m = new Float64Array(nOut * nIn);
  for (let i = 0; i < nOut; i++) {
    const src = (i + 0.5) / scale - 0.5;
    const x0 = Math.floor(src);
    const t = src - x0;
    for (let k = -1; k <= 2; k++) m[i * nIn + Math.min(Math.max(x0 + k, 0), nIn - 1)] += cubic(t - k);
  }
  return m;
}

/**
 * interpolate_pos_encoding's resampling of a g×g grid of patch positions to n×n, as one matrix
 * [n², g²] (the outer product of the row and column matrices; row-major cells on both sides).
 */
export function dinoPosInterpolation(grid: number, side: number): Float32Array {
  const m1 = bicubicScaleMatrix(grid, side, (side + 0.1) / grid);
  const out = new Float32Array(side * side * grid * grid);
  for (let r = 0; r < side; r++) {
    for (let c = 0; c < side; c++) {
      for (let i = 0; i < grid; i++) {
        for (let j = 0; j < grid; j++) out[(r * side + c) * grid * grid + i * grid + j] = m1[r * grid + i]! * m1[c * grid + j]!;
      }
    }
  }
  return out;
}

/** A timm ViT that also embeds square images of another size (a multiple of the patch), as DINO's ViT does. */
export class DinoBackbone extends VisionTransformer {
  /**
   * The class token after the final norm, [B, D], for images [B, C, s, s] of any patch-multiple
   * side s; `dropPath` [B, depth·2] scales each block's two branches per sample (stochastic depth).
   */
  classToken(x: Tensor, dropPath?: Tensor): Tensor {
    const g = x.graph;
    const c = this.config;
    const d = c.embedDim;
    const [, ch, h, w] = x.shape as [unknown, number, number, number];
    let tokens: Tensor;
    if (h === c.imgSize && w === c.imgSize) {
      tokens = this.forwardFeatures(x, dropPath ? { noise: { drop_path: dropPath } } : {});
    } else {
      const p = c.patchSize;
      if (h !== w || h % p !== 0) throw new RangeError(`${this.path || 'backbone'}: crops must be square with a side divisible by the patch size ${p}, got ${h}×${w}`);
      const side = h / p;
      const grid = this.patchEmbed.gridSize[0];
      const patches = this.scoped(g, () => reshape(transpose(reshape(x, [-1, ch, side, p, side, p]), [0, 2, 4, 1, 3, 5]), [-1, side * side, ch * p * p]));
      // DINO's backbones use the patchify conv (never a conv stem), so its weight applies to any grid
      if (!(this.patchEmbed instanceof PatchEmbed)) throw new RangeError(`${this.path || 'backbone'}: crops of another size need a patch-embedding backbone`);
      const embedded = this.patchEmbed.proj.scopedLinear(g, patches, d); // [B, n, D]
      tokens = this.scoped(g, () => {
        const pos = this.p(g, 'pos_embed'); // [1, 1 + g², D]
        const table = reshape(slice(pos, [1], [1], [1 + grid * grid]), [grid * grid, d]);
        const resampled = reshape(matmul(g.constant(dinoPosInterpolation(grid, side), [side * side, grid * grid], 'float32'), table), [1, side * side, d]);
        const cls = add(this.p(g, 'cls_token'), slice(pos, [1], [0], [1])); // [1, 1, D]
        return concat([expand(cls, [embedded.shape[0]!, 1, d]), add(embedded, resampled)], 1); // the batch may be B·N (local views)
      });
      this.blocks.forEach((block, i) => {
        const scale = dropPath && this.scoped(g, () => ({
          attn: reshape(slice(dropPath, [1], [2 * i], [2 * i + 1]), [-1, 1, 1]), // [B, 1, 1]
          mlp: reshape(slice(dropPath, [1], [2 * i + 1], [2 * i + 2]), [-1, 1, 1]),
        }));
        tokens = block.forwardWithAttention(tokens, scale, false).out;
      });
      if (this.norm instanceof LayerNorm) tokens = this.norm.forward(tokens);
    }
    return this.scoped(g, () => reshape(slice(tokens, [1], [0], [1]), [-1, d]));
  }
}

/** The weight-normalised last layer: W = g · v / ‖v‖ per output row, no bias; g is fixed at 1 (norm_last_layer). */
class WeightNormLinear extends Module {
  constructor(readonly inFeatures: number, readonly outFeatures: number, rng: Random) {
    super();
    // a buffer: DINO freezes weight_g at 1 (norm_last_layer=True), so no optimiser ever changes it
    this.addBuffer('weight_g', [outFeatures, 1], ones());
    // nn.Linear's default init: DINOHead's trunc_normal_ init runs before weight_norm wraps this layer
    this.addParam('weight_v', [outFeatures, inFeatures], uniformFanIn(inFeatures), rng);
  }

  forward(x: Tensor): Tensor {
    const g = x.graph;
    return this.scoped(g, () => {
      const v = this.p(g, 'weight_v');
      const w = mul(this.b(g, 'weight_g'), div(v, sqrt(sum(mul(v, v), 1, true)))); // [out, in]
      return matmul(x, transpose(w, [1, 0]));
    });
  }
}

/** DINOHead: MLP (GELU between layers) → L2 normalisation (F.normalize, eps 1e-12) → weight-normalised linear. */
export class DinoHead extends Module {
  readonly layers: Linear[];
  readonly lastLayer: WeightNormLinear;

  constructor(inDim: number, { outDim, hiddenDim, bottleneckDim, headLayers }: Pick<DinoConfig, 'outDim' | 'hiddenDim' | 'bottleneckDim' | 'headLayers'>, rng: Random) {
    super();
    const widths = headLayers === 1 ? [inDim, bottleneckDim] : [inDim, ...Array<number>(headLayers - 1).fill(hiddenDim), bottleneckDim];
    // nn.Sequential numbers the GELUs too: the linears are mlp.0, mlp.2, …; a single layer is `mlp` itself
    this.layers = widths.slice(1).map((w, i) => this.addChild(headLayers === 1 ? 'mlp' : `mlp.${2 * i}`, new Linear(widths[i]!, w, rng)));
    this.lastLayer = this.addChild('last_layer', new WeightNormLinear(bottleneckDim, outDim, rng));
  }

  forward(x: Tensor): Tensor {
    const g = x.graph;
    this.layers.forEach((layer, i) => {
      x = layer.forward(x);
      if (i < this.layers.length - 1) x = this.scoped(g, () => gelu(x));
    });
    const unit = this.scoped(g, () => div(x, maximum(sqrt(sum(mul(x, x), -1, true)), 1e-12)));
    return this.lastLayer.forward(unit);
  }
}

export class DinoViT extends ImageModel {
  readonly family = 'dino';
  readonly config: DinoConfig;
  readonly backbone: DinoBackbone;
  readonly head: DinoHead;

  constructor(config: Partial<DinoConfig> = {}) {
    super();
    const c = (this.config = { ...dinoDefaults, ...config, numClasses: 0 });
    // the student's stochastic depth is drawn per view by the DINO objective (each crop size is its own branch of the graph)
    if (c.dropRate > 0) throw new RangeError(`dino models have no classifier for --drop (dropout before the head), got ${c.dropRate}; give 0`);
    const rng = new Random(c.seed);
    this.backbone = this.addChild('backbone', new DinoBackbone({
      imgSize: c.imgSize, patchSize: c.patchSize, inChans: c.inChans, numClasses: 0, embedDim: c.embedDim, depth: c.depth,
      numHeads: c.numHeads, mlpRatio: c.mlpRatio, qkvBias: c.qkvBias, dropPathRate: c.dropPathRate, seed: rng.nextU32(),
    }));
    this.head = this.addChild('head', new DinoHead(c.embedDim, c, rng));
    // DINO's ViT draws its class token as trunc_normal_(std=.02); timm's (the backbone's default) is normal(1e-6)
    const cls = this.backbone.namedParameters().find(([k]) => k === 'backbone.cls_token')![1];
    cls.data = truncNormal(0.02)(cls.size, rng);
  }

  get numFeatures(): number {
    return this.config.embedDim;
  }

  /** The backbone's ids (timm's: embeddings 0, block i → i + 1); the head counts as after the blocks. */
  layerGrouping(): LayerGrouping {
    const depth = this.config.depth;
    return {
      blocks: depth,
      layerOf(key) {
        const m = /^backbone\.blocks\.(\d+)\./.exec(key);
        if (m) return Number(m[1]) + 1;
        return /^backbone\.(cls_token|pos_embed|patch_embed\.)/.test(key) ? 0 : depth + 1;
      },
    };
  }

  headKeys(): string[] {
    return [];
  }

  override tokenGrid(): TokenGrid | undefined {
    return this.backbone.tokenGrid();
  }

  /** Backbone tokens [B, 1 + N, D] after the final norm (features, k-NN, attention maps). */
  forwardFeatures(x: Tensor, opts: ForwardOptions & { attentions?: Tensor[] } = {}): Tensor {
    return this.backbone.forwardFeatures(x, opts);
  }

  /** The class token [B, D]: DINO's feature (k-NN, linear probe); a pretraining model has no classifier. */
  forwardHead(tokens: Tensor): { logits: Tensor; features: Tensor } {
    const features = this.scoped(tokens.graph, () => reshape(slice(tokens, [1], [0], [1]), [-1, this.config.embedDim]));
    return { logits: features, features };
  }

  /** MultiCropWrapper on one crop size: head(backbone(x)) → [B, out_dim]; `dropPath` as DinoBackbone.classToken's. */
  project(x: Tensor, dropPath?: Tensor): Tensor {
    return this.head.forward(this.backbone.classToken(x, dropPath));
  }

  /** The trainer draws no noise for a DINO model: the DINO objective draws the student's drop-path for every view. */
  override noiseInputs(): [] {
    return [];
  }
}

/** The backbone of a DINO state dict under timm's keys (the head dropped), for fine-tuning as a `vit`. */
export function dinoBackboneState(sd: StateDict): StateDict {
  return Object.fromEntries(Object.entries(sd).filter(([k]) => k.startsWith('backbone.')).map(([k, t]) => [k.slice('backbone.'.length), t]));
}

registerFamily<DinoConfig>({
  name: 'dino',
  defaults: dinoDefaults,
  kwargsSchema: dinoKwargsSchema,
  create: (config) => new DinoViT(config),
  tinyArgs: { imgSize: 16, patchSize: 4, inChans: 3, embedDim: 24, depth: 2, numHeads: 2, mlpRatio: 2, outDim: 32, hiddenDim: 32, bottleneckDim: 16 },
  encoder: {
    family: 'vit',
    config: vitEncoderConfig,
    state: dinoBackboneState,
  },
  // MultiCropWrapper keys: backbone.* (a timm ViT) and the DINO head
  inferConfig(sd) {
    const proj = sd['backbone.patch_embed.proj.weight'];
    const v = sd['head.last_layer.weight_v'];
    if (!proj || !v) return undefined;
    const count = (prefix: string) => new Set(Object.keys(sd).filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length).split('.')[0])).size;
    const [embedDim, inChans, patchSize] = proj.shape as number[];
    const n = (sd['backbone.pos_embed']!.shape[1] as number) - 1;
    const linears = Object.keys(sd).filter((k) => /^head\.mlp(\.\d+)?\.weight$/.test(k)).length;
    return {
      // the head count is not in the shapes: DINO's ViTs (S/16, B/16, S/8, B/8) all have 64-wide heads
      ...(embedDim! % 64 === 0 ? { numHeads: embedDim! / 64 } : {}),
      embedDim: embedDim!, inChans: inChans!, patchSize: patchSize!, imgSize: Math.round(Math.sqrt(n)) * patchSize!, depth: count('backbone.blocks.'),
      mlpRatio: (sd['backbone.blocks.0.mlp.fc1.weight']!.shape[0] as number) / embedDim!, qkvBias: sd['backbone.blocks.0.attn.qkv.bias'] !== undefined,
      outDim: v.shape[0] as number, bottleneckDim: v.shape[1] as number, headLayers: linears,
      hiddenDim: linears > 1 ? (sd['head.mlp.0.weight']!.shape[0] as number) : dinoDefaults.hiddenDim,
    };
  },
});

/** The official ViT-S/16 and ViT-B/16 (DINO's head) and small-image presets whose backbones are the vit presets, with a small head. */
const IMAGENET = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
const imagenet224 = { inputSize: [3, 224, 224] as [number, number, number], ...IMAGENET, interpolation: 'bicubic' as const, cropPct: 0.875, numClasses: 0 };
/** Small presets: 1,024 prototypes and an MLP 512-512-128 (65,536 × 256 would dwarf a 96-wide backbone). */
const smallHead = { outDim: 1024, hiddenDim: 512, bottleneckDim: 128 };
export const dinoEntries: ModelEntry[] = [
  { name: 'dino_vit_small_patch16', family: 'dino', config: { patchSize: 16, embedDim: 384, depth: 12, numHeads: 6 }, pretrained: imagenet224, description: 'DINO student/teacher of vit_small_patch16_224 (official ViT-S/16, head out_dim 65536)' },
  { name: 'dino_vit_base_patch16', family: 'dino', config: { patchSize: 16, embedDim: 768, depth: 12, numHeads: 12 }, pretrained: imagenet224, description: 'DINO student/teacher of vit_base_patch16_224 (official ViT-B/16)' },
  { name: 'dino_vit_tiny_patch4_28', family: 'dino', config: { imgSize: 28, patchSize: 4, inChans: 1, embedDim: 96, depth: 6, numHeads: 3, mlpRatio: 2, ...smallHead },
    pretrained: { inputSize: [1, 28, 28], mean: [0.286], std: [0.353], interpolation: 'bilinear', cropPct: 1, numClasses: 0 }, description: 'DINO pretraining of vit_tiny_patch4_28 (28×28 grayscale; head out_dim 1024)' },
  { name: 'dino_vit_tiny_patch4_32', family: 'dino', config: { imgSize: 32, patchSize: 4, inChans: 3, embedDim: 192, depth: 9, numHeads: 3, mlpRatio: 2, ...smallHead },
    pretrained: { inputSize: [3, 32, 32], mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616], interpolation: 'bilinear', cropPct: 1, numClasses: 0 }, description: 'DINO pretraining of vit_tiny_patch4_32 (32×32 RGB; head out_dim 1024)' },
];
