/**
 * CvT — "CvT: Introducing Convolutions to Vision Transformers" (Wu et al. 2021,
 * https://arxiv.org/abs/2103.15808).
 *
 * Three stages, each a convolutional token embedding (an overlapping strided Conv2d, then
 * LayerNorm over channels) followed by transformer layers whose q, k and v come from a
 * depthwise conv + BatchNorm over the token map (k and v at stride 2, so attention is over a
 * quarter of the tokens). No position embedding: the convolutions carry position. A class token
 * joins in the last stage only.
 *
 * Layout and semantics are Hugging Face's `CvtForImageClassification` (`modeling_cvt.py`), so an
 * HF state dict loads without any key mapping (`cvt.encoder.stages.N.…`, `layernorm`,
 * `classifier`):
 * - the class token skips the conv projections but goes through the linear q/k/v;
 * - scores are scaled by embed_dim^-0.5 (the stage's width, not the head width), as HF computes it;
 * - exact (erf) GELU; every LayerNorm at nn.LayerNorm's default eps 1e-5 (HF's modules never read
 *   `config.layer_norm_eps`); BatchNorm at PyTorch's defaults (eps 1e-5, momentum 0.1);
 * - the head is LayerNorm of the class token → classifier (without a class token: LayerNorm of
 *   every token, then their mean);
 * - init as HF's `_init_weights`: Linear and Conv2d weights trunc-normal(0.02) with zero biases,
 *   the class token trunc-normal(0.02), norms at ones and zeros.
 * - Drop path as HF applies it: every layer of a stage gets the stage's linspace(0, rate, depth)
 *   at index *stage* (HF indexes its rate list by the stage, not the layer), and the second drop
 *   path scales the layer's whole output, MLP residual included. `dropPathRate` is the last
 *   stage's rate (HF's configs: [0, 0, 0.1]). Dropouts inside the blocks (0 in HF's configs) are
 *   not built; `dropRate` drops the pooled features before the classifier (no HF counterpart).
 * - Only HF's `qkv_projection_method = "dw_bn"` (HF's "avg" path does not run).
 *
 * Token grid: none (`tokenGrid()` is undefined). Keys and values are a stride-2 map, so each
 * layer's attention is [T, T/4], not a square over one token set that rollout could chain, and
 * the class token exists in the last stage only. Explainers use gradient saliency for CvT.
 */
import { z } from 'zod';
import type { Tensor } from '../ir/tensor.js';
import { mean, mul, reshape, slice, transpose } from '../ops/index.js';
import { Random } from '../random.js';
import type { StateDict } from '../nn/module.js';
import { Conv2d, LayerNorm, Linear } from '../nn/layers.js';
import { zeros } from '../nn/init.js';
import { dropoutScales } from '../nn/drop_path.js';
import { adaptInputConv } from './adapt_input.js';
import { ImageModel, registerFamily, type CommonModelArgs, type ForwardOptions, type LayerGrouping, type NoiseInput } from './model.js';
import type { ModelEntry, PretrainedConfig } from './registry.js';
import { CvtStage } from './cvt_blocks.js';

/** HF's CvtConfig, camelCase; every list has one entry per stage. */
export interface CvtConfig extends CommonModelArgs {
  /** Kernel, stride and padding of each stage's token-embedding conv. */
  patchSizes: number[];
  patchStride: number[];
  patchPadding: number[];
  /** Token width, heads and layers per stage. */
  embedDim: number[];
  numHeads: number[];
  depth: number[];
  mlpRatio: number[];
  /** Biases on the linear q/k/v. */
  qkvBias: boolean[];
  /** A class token in the last stage (HF's cls_token[-1]; earlier stages have none in HF's models). */
  clsToken: boolean;
  /** The depthwise q/k/v projections: kernel, and padding/stride of q and of k, v. */
  kernelQkv: number[];
  paddingQ: number[];
  strideQ: number[];
  paddingKv: number[];
  strideKv: number[];
}

/** microsoft/cvt-13 (HF's CvtConfig defaults); dropPathRate is its last stage's 0.1. */
export const cvtDefaults: CvtConfig = {
  imgSize: 224, inChans: 3, numClasses: 1000, patchSizes: [7, 3, 3], patchStride: [4, 2, 2], patchPadding: [2, 1, 1],
  embedDim: [64, 192, 384], numHeads: [1, 3, 6], depth: [1, 2, 10], mlpRatio: [4, 4, 4], qkvBias: [true, true, true], clsToken: true,
  kernelQkv: [3, 3, 3], paddingQ: [1, 1, 1], strideQ: [1, 1, 1], paddingKv: [1, 1, 1], strideKv: [2, 2, 2],
  dropPathRate: 0.1, dropRate: 0, seed: 0,
};

const ints = z.array(z.number().int().positive()).min(1);
const pads = z.array(z.number().int().nonnegative()).min(1);
/** The architecture keys of --model-kwargs (HF's CvtConfig fields, camelCase). */
export const cvtKwargsSchema = z.object({
  patchSizes: ints, patchStride: ints, patchPadding: pads, embedDim: ints, numHeads: ints, depth: ints,
  mlpRatio: z.array(z.number().positive()).min(1), qkvBias: z.array(z.boolean()).min(1), clsToken: z.boolean(),
  kernelQkv: ints, paddingQ: pads, strideQ: ints, paddingKv: pads, strideKv: ints,
}).partial().strict();

const PER_STAGE = ['patchSizes', 'patchStride', 'patchPadding', 'embedDim', 'numHeads', 'mlpRatio', 'qkvBias', 'kernelQkv', 'paddingQ', 'strideQ', 'paddingKv', 'strideKv'] as const;
/** Salts of the step's noise streams: ViT's values, as the other families. */
const DROP_PATH_SALT = 0xd209;
const HEAD_DROP_SALT = 0xd20b;

/** HF's per-layer drop-path rate of stage `s`: linspace(0, rate, depth)[s], the same for every layer of the stage. */
export function cvtDropPathRate(rate: number, depth: number, s: number): number {
  if (rate === 0 || depth <= 1) return 0; // linspace(0, r, 1) is [0]
  return (rate * Math.min(s, depth - 1)) / (depth - 1); // past the end HF's index fails; the last value here
}

// ---- model ------------------------------------------------------------------------------------

export class Cvt extends ImageModel {
  readonly family = 'cvt';
  readonly config: CvtConfig;
  readonly stages: CvtStage[];
  readonly layernorm: LayerNorm;
  readonly classifier?: Linear;

  constructor(config: Partial<CvtConfig> = {}) {
    super();
    const c = (this.config = { ...cvtDefaults, ...config });
    const n = c.depth.length;
    const wrong = PER_STAGE.filter((k) => c[k].length !== n);
    if (wrong.length) {
      throw new RangeError(`CvT: every per-stage list needs ${n} entries (depth has ${n}); ${wrong.map((k) => `${k} has ${c[k].length}`).join(', ')}`);
    }
    const rng = new Random(c.seed);
    this.stages = Array.from({ length: n }, (_, s) => this.addChild(`cvt.encoder.stages.${s}`, new CvtStage(c, s, rng)));
    this.layernorm = this.addChild('layernorm', new LayerNorm(this.numFeatures, 1e-5));
    if (c.numClasses > 0) this.classifier = this.addChild('classifier', new Linear(this.numFeatures, c.numClasses, rng));
  }

  get numFeatures(): number {
    return this.config.embedDim[this.config.embedDim.length - 1]!;
  }

  get totalDepth(): number {
    return this.config.depth.reduce((a, b) => a + b, 0);
  }

  /** Each layer's drop-path rate, HF's rule (see the file header). */
  layerDropPathRates(): number[] {
    const c = this.config;
    const n = c.depth.length;
    return c.depth.flatMap((depth, s) => Array<number>(depth).fill(s === n - 1 ? cvtDropPathRate(c.dropPathRate, depth, s) : 0));
  }

  /** drop_path [B, layers·2] (attention branch, whole output of each layer) and head_drop [B, D]. */
  override noiseInputs(): NoiseInput[] {
    const c = this.config;
    const out: NoiseInput[] = [];
    const rates = this.layerDropPathRates();
    if (rates.some((r) => r > 0)) {
      out.push({
        name: 'drop_path', perSample: rates.length * 2, salt: DROP_PATH_SALT,
        draw: (rng, batch) => {
          const scales = new Float32Array(batch * rates.length * 2);
          for (let b = 0; b < batch; b++) {
            rates.forEach((r, i) => {
              for (let branch = 0; branch < 2; branch++) scales[(b * rates.length + i) * 2 + branch] = r === 0 ? 1 : rng.uniform() < 1 - r ? 1 / (1 - r) : 0;
            });
          }
          return scales;
        },
      });
    }
    const d = this.numFeatures;
    if (c.dropRate > 0) out.push({ name: 'head_drop', perSample: d, salt: HEAD_DROP_SALT, draw: (rng, batch) => dropoutScales(rng, c.dropRate, batch * d) });
    return out;
  }

  /**
   * Layer ids as the hierarchical timm families group them: stage 0's embedding is 0, layer i (in
   * order over the stages) is i + 1, a later stage's embedding and class token go with its first
   * layer, and the final layernorm and classifier are layers + 1.
   */
  layerGrouping(): LayerGrouping {
    const starts = this.config.depth.map((_, s) => this.config.depth.slice(0, s).reduce((a, b) => a + b, 0));
    const total = this.totalDepth;
    return {
      blocks: total,
      layerOf(key) {
        const m = /^cvt\.encoder\.stages\.(\d+)\.(?:layers\.(\d+)\.|embedding\.|cls_token$)/.exec(key);
        if (!m) return total + 1;
        const s = Number(m[1]);
        if (m[2] === undefined && s === 0) return 0;
        return starts[s]! + Number(m[2] ?? 0) + 1;
      },
    };
  }

  headKeys(): string[] {
    return ['classifier.weight', 'classifier.bias'];
  }

  /** timm's adapt_input_conv for another channel count; nothing depends on the image size. */
  override adaptPretrained(sd: StateDict): { state: StateDict; notes: string[] } {
    const key = 'cvt.encoder.stages.0.embedding.convolution_embeddings.projection.weight';
    const pe = sd[key];
    if (!pe || pe.shape[1] === this.config.inChans) return { state: sd, notes: [] };
    return {
      state: { ...sd, [key]: adaptInputConv(pe.data, pe.shape, this.config.inChans) },
      notes: [`token embedding adapted from ${pe.shape[1]} to ${this.config.inChans} input channels`],
    };
  }

  /** Images [B, C, H, W] → the last stage's tokens [B, (1 +) N, D] after the final layernorm. */
  forwardFeatures(x: Tensor, { train = false, noise }: ForwardOptions & { attentions?: Tensor[] } = {}): Tensor {
    const g = x.graph;
    const dropPath = noise?.drop_path;
    let layer = 0;
    let map = x;
    let tokens = x;
    this.stages.forEach((stage, s) => {
      const first = layer;
      const out = stage.forward(map, train, (m) => {
        const i = first + m;
        return dropPath && this.scoped(g, () => ({
          attn: reshape(slice(dropPath, [1], [2 * i], [2 * i + 1]), [-1, 1, 1]), // [B, 1, 1]
          out: reshape(slice(dropPath, [1], [2 * i + 1], [2 * i + 2]), [-1, 1, 1]),
        }));
      });
      layer += stage.layers.length;
      tokens = out.tokens;
      if (s < this.stages.length - 1) {
        const d = this.config.embedDim[s]!;
        map = this.scoped(g, () => reshape(transpose(out.tokens, [0, 2, 1]), [-1, d, out.h, out.w])); // [B, D, H, W]
      }
    });
    // LayerNorm is per token: normalising all of them, then taking the class token, is HF's head
    return this.layernorm.forward(tokens);
  }

  /** Tokens [B, (1 +) N, D] → the class token (or the mean of the tokens) → logits [B, classes]. */
  forwardHead(tokens: Tensor, { noise }: ForwardOptions = {}): { logits: Tensor; features: Tensor } {
    const g = tokens.graph;
    const d = this.numFeatures;
    const features = this.scoped(g, () => (this.config.clsToken ? reshape(slice(tokens, [1], [0], [1]), [-1, d]) : mean(tokens, 1))); // [B, D]
    const headDrop = noise?.head_drop;
    const dropped = headDrop ? this.scoped(g, () => mul(features, headDrop)) : features;
    return { logits: this.classifier ? this.classifier.forward(dropped) : dropped, features };
  }
}

// ---- checkpoints ------------------------------------------------------------------------------

const STAGE = 'cvt.encoder.stages';

/** Whether a state dict's keys are HF's CvtForImageClassification layout. */
export function isHfCvtKeys(keys: Iterable<string>): boolean {
  for (const k of keys) if (/^cvt\.encoder\.stages\.0\.embedding\.convolution_embeddings\.projection\.weight$/.test(k)) return true;
  return false;
}

/**
 * The architecture of an HF-layout CvT state dict from its shapes, or undefined when it is not
 * one. Strides, paddings and heads are not in the weights: a registered entry with the same
 * widths and depths supplies them, else HF's defaults.
 */
export function inferCvtConfig(sd: StateDict): Partial<CvtConfig> | undefined {
  if (!sd[`${STAGE}.0.embedding.convolution_embeddings.projection.weight`]) return undefined;
  const embedDim: number[] = [];
  const patchSizes: number[] = [];
  const depth: number[] = [];
  const mlpRatio: number[] = [];
  const qkvBias: boolean[] = [];
  const kernelQkv: number[] = [];
  let inChans = 3;
  for (let s = 0; sd[`${STAGE}.${s}.embedding.convolution_embeddings.projection.weight`]; s++) {
    const w = sd[`${STAGE}.${s}.embedding.convolution_embeddings.projection.weight`]!;
    if (s === 0) inChans = w.shape[1]!;
    embedDim.push(w.shape[0]!);
    patchSizes.push(w.shape[2]!);
    let m = 0;
    while (sd[`${STAGE}.${s}.layers.${m}.layernorm_before.weight`]) m++;
    depth.push(m);
    const l0 = `${STAGE}.${s}.layers.0`;
    mlpRatio.push((sd[`${l0}.intermediate.dense.weight`]?.shape[0] ?? 4 * w.shape[0]!) / w.shape[0]!);
    qkvBias.push(`${l0}.attention.attention.projection_query.bias` in sd);
    kernelQkv.push(sd[`${l0}.attention.attention.convolution_projection_query.convolution_projection.convolution.weight`]?.shape[2] ?? 3);
  }
  const n = depth.length;
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const entry = cvtEntries.find((e) => same(e.config.embedDim ?? cvtDefaults.embedDim, embedDim) && same(e.config.depth ?? cvtDefaults.depth, depth));
  const base = { ...cvtDefaults, ...entry?.config };
  const perStage = <T>(v: T[], fill: T): T[] => (v.length === n ? v : Array<T>(n).fill(fill));
  const cls = sd[`${STAGE}.${n - 1}.cls_token`];
  const head = sd['classifier.weight'];
  return {
    inChans, embedDim, patchSizes, depth, mlpRatio, qkvBias, kernelQkv, clsToken: cls !== undefined, numClasses: head ? head.shape[0]! : 0,
    numHeads: perStage(base.numHeads, 1), patchStride: perStage(base.patchStride, 2), patchPadding: perStage(base.patchPadding, 1),
    paddingQ: perStage(base.paddingQ, 1), strideQ: perStage(base.strideQ, 1), paddingKv: perStage(base.paddingKv, 1), strideKv: perStage(base.strideKv, 2),
  };
}

/** HF's config.json (CvtConfig) → this family's config; fields it does not state are left out. Throws on what tessera cannot build. */
export function cvtConfigFromHf(json: Record<string, any>): Partial<CvtConfig> {
  const out: Partial<CvtConfig> = {};
  const copy: [keyof CvtConfig, string][] = [
    ['inChans', 'num_channels'], ['patchSizes', 'patch_sizes'], ['patchStride', 'patch_stride'], ['patchPadding', 'patch_padding'],
    ['embedDim', 'embed_dim'], ['numHeads', 'num_heads'], ['depth', 'depth'], ['mlpRatio', 'mlp_ratio'], ['qkvBias', 'qkv_bias'],
    ['kernelQkv', 'kernel_qkv'], ['paddingQ', 'padding_q'], ['strideQ', 'stride_q'], ['paddingKv', 'padding_kv'], ['strideKv', 'stride_kv'],
  ];
  for (const [ours, theirs] of copy) if (json[theirs] !== undefined) (out as Record<string, unknown>)[ours] = json[theirs];
  const cls = json.cls_token as boolean[] | undefined;
  if (Array.isArray(cls)) {
    if (cls.slice(0, -1).some(Boolean)) throw new RangeError(`cls_token ${JSON.stringify(cls)}: tessera's CvT has a class token in the last stage only`);
    out.clsToken = Boolean(cls[cls.length - 1]);
  }
  const method = json.qkv_projection_method as string[] | undefined;
  if (Array.isArray(method) && method.some((m) => m !== 'dw_bn')) throw new RangeError(`qkv_projection_method ${JSON.stringify(method)}: only "dw_bn" is supported`);
  const dpr = json.drop_path_rate;
  if (Array.isArray(dpr)) {
    if (dpr.slice(0, -1).some((r: number) => r > 0)) throw new RangeError(`drop_path_rate ${JSON.stringify(dpr)}: tessera's CvT drops paths in the last stage only`);
    out.dropPathRate = Number(dpr[dpr.length - 1] ?? 0);
  }
  const labels = json.id2label as Record<string, string> | undefined;
  if (json.num_labels !== undefined) out.numClasses = Number(json.num_labels);
  else if (labels) out.numClasses = Object.keys(labels).length;
  return out;
}

// ---- pretrained configs and registered entries ------------------------------------------------

/** microsoft/cvt-13 and cvt-21's preprocessor (ConvNeXt's): ImageNet mean/std, bicubic (resample 3), crop_pct 0.875, 224. */
const imagenet: PretrainedConfig = {
  inputSize: [3, 224, 224], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], interpolation: 'bicubic', cropPct: 0.875, numClasses: 1000,
};
const fashionMnist: PretrainedConfig = { inputSize: [1, 28, 28], mean: [0.286], std: [0.353], interpolation: 'bilinear', cropPct: 1, numClasses: 10 };

export const cvtEntries: ModelEntry[] = [];
function cvt(name: string, config: Partial<CvtConfig>, pretrained: PretrainedConfig, params?: number, description?: string) {
  cvtEntries.push({ name, family: 'cvt', config, pretrained, params, description });
}
const each = <T>(n: number, v: T): T[] => Array<T>(n).fill(v);

//   name         layers per stage      HF's parameter count (CvtForImageClassification, 1,000 classes)
cvt('cvt_13', { depth: [1, 2, 10] }, imagenet, 19_997_480);
cvt('cvt_21', { depth: [1, 4, 16] }, imagenet, 31_622_696);
// Small-image preset: 28 → 14×14 (stride 2) → 7×7 → 4×4 with the class token; kv maps 7×7, 4×4, 2×2.
cvt('cvt_nano_28', {
  imgSize: 28, inChans: 1, numClasses: 10, patchSizes: [3, 3, 3], patchStride: [2, 2, 2], patchPadding: [1, 1, 1],
  embedDim: [32, 64, 128], numHeads: [1, 2, 4], depth: [1, 1, 3], mlpRatio: each(3, 2), qkvBias: each(3, true),
  kernelQkv: each(3, 3), paddingQ: each(3, 1), strideQ: each(3, 1), paddingKv: each(3, 1), strideKv: each(3, 2),
}, fashionMnist, undefined, '28×28 grayscale (Fashion-MNIST, MNIST): three conv-embedded stages (14×14, 7×7, 4×4), stride-2 kv');

registerFamily<CvtConfig>({
  name: 'cvt',
  defaults: cvtDefaults,
  kwargsSchema: cvtKwargsSchema,
  create: (config) => new Cvt(config),
  inferConfig: inferCvtConfig,
  // 16 → 8×8 → 4×4 (kv 4×4, 2×2), the class token and drop path in stage 1
  tinyArgs: {
    imgSize: 16, inChans: 3, numClasses: 5, patchSizes: [3, 3], patchStride: [2, 2], patchPadding: [1, 1], embedDim: [8, 16], numHeads: [1, 2],
    depth: [1, 2], mlpRatio: [2, 2], qkvBias: [true, false], kernelQkv: [3, 3], paddingQ: [1, 1], strideQ: [1, 1], paddingKv: [1, 1], strideKv: [2, 2], dropPathRate: 0.2,
  },
});
