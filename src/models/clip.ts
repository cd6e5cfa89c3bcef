/**
 * CLIP — "Learning Transferable Visual Models From Natural Language Supervision" (Radford et al.
 * 2021, https://arxiv.org/abs/2103.00020): a ViT image tower and a causal text transformer, each
 * projected into one embedding space; zero-shot classification compares an image's embedding with
 * the embeddings of text prompts.
 *
 * Parameter names are OpenAI's / open_clip's bare state dict (`visual.conv1.weight`,
 * `visual.transformer.resblocks.N.attn.in_proj_weight`, `token_embedding.weight`, `ln_final`,
 * `text_projection`, `logit_scale`), so such a file loads with no mapping. Semantics follow
 * OpenAI's model.py: pre-norm blocks with LayerNorm eps 1e-5, QuickGELU x·σ(1.702x) (open_clip's
 * non-OpenAI weights use exact GELU: `act: 'gelu'`), heads = width / 64, a class token pooled
 * after ln_post, and the text pooled at the end-of-text token (the largest id of each row).
 */
import { z } from 'zod';
import type { Tensor } from '../ir/tensor.js';
import { add, argmax, cast, matmul, mul, oneHot, reshape, transpose, gather, exp } from '../ops/index.js';
import { Random } from '../random.js';
import { LayerNorm, Linear } from '../nn/layers.js';
import { normal } from '../nn/init.js';
import { ImageModel, registerFamily, type CommonModelArgs, type ForwardOptions, type LayerGrouping } from './model.js';
import type { ModelEntry } from './registry.js';
import { causalMask, ClipTransformer, ClipVisionTower, l2Normalize, type ClipActivation, type ClipConfig, type ClipTowerConfig } from './clip_blocks.js';

export { ClipVisionTower, l2Normalize, quickGelu, type ClipActivation, type ClipConfig, type ClipTowerConfig } from './clip_blocks.js';

const EPS = 1e-5;
const tower = (width: number, layers: number, heads = Math.max(1, Math.floor(width / 64))): ClipTowerConfig => ({ width, layers, heads, mlpWidth: 4 * width });

/** A whole CLIP's config: the architecture plus the common args an ImageModel stores (no classes: its output is the image embedding). */
export type ClipModelConfig = ClipConfig & CommonModelArgs;

/**
 * The whole CLIP: `visual.*` and the text tower at the top level, as OpenAI's state dict holds
 * them. As an ImageModel (family clip_contrastive, what `pretrain --method clip` trains) its
 * output is the normalised image embedding; the text tower is reached through encodeText, by
 * the contrastive objective. `ClipImageClassifier` is the image tower alone with a class head.
 */
export class ClipModel extends ImageModel {
  readonly family = 'clip_contrastive';
  readonly config: ClipModelConfig;
  readonly visual: ClipVisionTower;
  readonly transformer: ClipTransformer;
  readonly lnFinal: LayerNorm;

  /** `imgSize` (train's --img-size) overrides imageSize; classes are always 0. */
  constructor(config: ClipConfig & Partial<CommonModelArgs>, seed = config.seed ?? 0) {
    super();
    const imageSize = config.imgSize ?? config.imageSize;
    const c = (this.config = { ...config, imageSize, imgSize: imageSize, inChans: 3, numClasses: 0, dropPathRate: 0, dropRate: 0, seed });
    const rng = new Random(seed);
    const w = c.text.width;
    this.visual = this.addChild('visual', new ClipVisionTower(c, rng));
    this.transformer = this.addChild('transformer', new ClipTransformer(c.text, c.act, c.eps, rng));
    this.addParam('token_embedding.weight', [c.vocabSize, w], normal(0.02), rng);
    this.addParam('positional_embedding', [c.contextLength, w], normal(0.01), rng);
    this.lnFinal = this.addChild('ln_final', new LayerNorm(w, c.eps));
    this.addParam('text_projection', [w, c.embedDim], normal(w ** -0.5), rng);
    this.addParam('logit_scale', [], () => Float32Array.of(Math.log(1 / 0.07)));
  }

  get numFeatures(): number {
    return this.config.embedDim;
  }

  forwardFeatures(x: Tensor): Tensor {
    return this.visual.forward(x);
  }

  /** The normalised image embedding, as logits and features (no head). */
  forwardHead(embedding: Tensor): { logits: Tensor; features: Tensor } {
    const features = this.scoped(embedding.graph, () => l2Normalize(embedding));
    return { logits: features, features };
  }

  /** The image tower's layers as ClipImageClassifier's; the text tower and logit_scale go with the last group. */
  layerGrouping(): LayerGrouping {
    return imageTowerLayers(this.config.vision.layers);
  }

  headKeys(): string[] {
    return [];
  }

  get logitScale(): number {
    return Math.exp(this.namedParameters().find(([k]) => k === 'logit_scale')![1].data[0]!);
  }

  encodeImage(x: Tensor): Tensor {
    return this.visual.forward(x);
  }

  /** Token ids int64 [B, L] → text embeddings [B, E] (not normalised), pooled at each row's largest id (the end-of-text token). */
  encodeText(ids: Tensor): Tensor {
    const g = ids.graph;
    const { contextLength: n, text: { width: w } } = this.config;
    if (ids.dtype !== 'int64' || ids.rank !== 2 || ids.shape[1] !== n) throw new RangeError(`CLIP text: expected int64 token ids [B, ${n}], got ${ids.dtype} of rank ${ids.rank}`);
    let x = this.scoped(g, () => add(gather(this.p(g, 'token_embedding.weight'), ids, 0), this.p(g, 'positional_embedding'))); // [B, L, W]
    x = this.transformer.forward(x, this.scoped(g, () => causalMask(g, n)));
    x = this.lnFinal.forward(x);
    return this.scoped(g, () => {
      // ids are < 2^24, exact in float32; ArgMax over float is what every ORT build has
      const eot = oneHot(argmax(cast(ids, 'float32'), 1), n); // [B, L]
      const pooled = reshape(matmul(reshape(eot, [-1, 1, n]), x), [-1, w]); // [B, W]
      return matmul(pooled, this.p(g, 'text_projection')); // [B, E]
    });
  }

  /** CLIP's forward: logit_scale.exp() · normalised image embeddings · normalised text embeddingsᵀ, [B_img, B_text]. */
  logitsPerImage(images: Tensor, ids: Tensor): Tensor {
    const g = images.graph;
    const img = this.encodeImage(images);
    const txt = this.encodeText(ids);
    return this.scoped(g, () => mul(matmul(l2Normalize(img), transpose(l2Normalize(txt), [1, 0])), exp(this.p(g, 'logit_scale'))));
  }
}

// ---- the image tower as a classifier ---------------------------------------------------------

export interface ClipImageConfig extends CommonModelArgs {
  /** The CLIP it came from; only the image tower's fields are used. */
  clip: ClipConfig;
}

/**
 * The image tower as an `ImageModel` for train / eval / export: features are the normalised image
 * embeddings [B, E], and the head a Linear over them. Initialised from class prompts' text
 * embeddings (`zeroShotHead`: rows logit_scale · t̂, bias 0), its logits are CLIP's zero-shot
 * logits, the start WiSE-FT and FLYP fine-tune from.
 */
export class ClipImageClassifier extends ImageModel {
  readonly family = 'clip';
  readonly config: ClipImageConfig;
  readonly visual: ClipVisionTower;
  readonly head?: Linear;

  constructor(config: Partial<ClipImageConfig> = {}) {
    super();
    const clip = config.clip ?? clipImageDefaults.clip;
    const c = (this.config = { ...clipImageDefaults, ...config, clip, imgSize: clip.imageSize, inChans: 3 });
    const rng = new Random(c.seed);
    this.visual = this.addChild('visual', new ClipVisionTower(clip, rng));
    if (c.numClasses > 0) this.head = this.addChild('head', new Linear(clip.embedDim, c.numClasses, rng));
  }

  get numFeatures(): number {
    return this.config.clip.embedDim;
  }

  forwardFeatures(x: Tensor): Tensor {
    return this.visual.forward(x);
  }

  forwardHead(embedding: Tensor, { noise }: ForwardOptions = {}): { logits: Tensor; features: Tensor } {
    const features = this.scoped(embedding.graph, () => l2Normalize(embedding));
    if (!this.head) return { logits: features, features };
    const headDrop = noise?.head_drop;
    return { logits: this.head.forward(headDrop ? this.scoped(embedding.graph, () => mul(features, headDrop)) : features), features };
  }

  /** Layer ids as timm's group_matcher for open_clip towers: embeddings 0, resblock i → i + 1, ln_post/proj/head last. */
  layerGrouping(): LayerGrouping {
    return imageTowerLayers(this.config.clip.vision.layers);
  }

  headKeys(): string[] {
    return ['head.weight', 'head.bias'];
  }

  /** Sets the head to logit_scale · the normalised text embeddings [classes, E] of the class prompts. */
  setZeroShotHead(textEmbeddings: Float32Array, logitScale: number): void {
    const head = this.head;
    const e = this.config.clip.embedDim;
    if (!head || textEmbeddings.length !== this.numClasses * e) throw new RangeError(`zero-shot head: expected ${this.numClasses} × ${e} text embeddings, got ${textEmbeddings.length / e} rows`);
    const [weight, bias] = head.namedParameters().map(([, p]) => p);
    weight!.data = normalisedRows(textEmbeddings, e).map((v) => v * logitScale);
    bias!.data = new Float32Array(this.numClasses);
  }
}

/** Rows of `x` [R, E] divided by their L2 norm (host side). */
export function normalisedRows(x: Float32Array, e: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / e; r++) {
    let n = 0;
    for (let j = 0; j < e; j++) n += x[r * e + j]! ** 2;
    const inv = 1 / Math.sqrt(n);
    for (let j = 0; j < e; j++) out[r * e + j] = x[r * e + j]! * inv;
  }
  return out;
}

// ---- checkpoint shapes → architecture ---------------------------------------------------------

type Shapes = Record<string, { shape: readonly number[] }>;

/**
 * The architecture of an OpenAI / open_clip state dict from its shapes, as OpenAI's build_model
 * reads them (heads = width / 64; MLP width from c_fc). Undefined when there is no ViT image tower.
 */
export function inferClipConfig(sd: Shapes, act: ClipActivation = 'quick_gelu'): ClipConfig | undefined {
  const shape = (k: string) => sd[k]?.shape;
  const conv = shape('visual.conv1.weight');
  const proj = shape('visual.proj');
  if (!conv || !proj) return undefined;
  const count = (prefix: string) => new Set(Object.keys(sd).filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length).split('.')[0])).size;
  const visionLayers = count('visual.transformer.resblocks.');
  const vw = conv[0]!;
  const grid = Math.round(Math.sqrt(shape('visual.positional_embedding')![0]! - 1));
  const vision: ClipTowerConfig = { ...tower(vw, visionLayers), mlpWidth: shape('visual.transformer.resblocks.0.mlp.c_fc.weight')?.[0] ?? 4 * vw };
  const textProj = shape('text_projection');
  if (!textProj) return { embedDim: proj[1]!, imageSize: conv[3]! * grid, patchSize: conv[3]!, vision, contextLength: 0, vocabSize: 0, text: tower(64, 0), act, eps: EPS };
  const tw = shape('ln_final.weight')![0]!;
  return {
    embedDim: textProj[1]!, imageSize: conv[3]! * grid, patchSize: conv[3]!, vision,
    contextLength: shape('positional_embedding')![0]!, vocabSize: shape('token_embedding.weight')![0]!,
    text: { ...tower(tw, count('transformer.resblocks.')), mlpWidth: shape('transformer.resblocks.0.mlp.c_fc.weight')?.[0] ?? 4 * tw },
    act, eps: EPS,
  };
}

/** True when a CLIP state dict has a text tower (a checkpoint of the image tower alone has none). */
export const hasTextTower = (c: ClipConfig): boolean => c.text.layers > 0 && c.vocabSize > 0;

// ---- configs and registered entries ----------------------------------------------------------

const VOCAB = 49408;
const openai = (embedDim: number, imageSize: number, patchSize: number, vw: number, vl: number, tw: number, tl: number): ClipConfig => ({
  embedDim, imageSize, patchSize, vision: tower(vw, vl), contextLength: 77, vocabSize: VOCAB, text: tower(tw, tl), act: 'quick_gelu', eps: EPS,
});

/** OpenAI's architectures (clip/model.py's build_model on the released state dicts) and a tiny one for tests. */
export const CLIP_CONFIGS: Record<string, ClipConfig> = {
  'ViT-B-32': openai(512, 224, 32, 768, 12, 512, 12),
  'ViT-B-16': openai(512, 224, 16, 768, 12, 512, 12),
  'ViT-L-14': openai(768, 224, 14, 1024, 24, 768, 12),
  // scripts/make_clip_goldens.py's TINY: 128 wide → 2 heads by OpenAI's width / 64 rule, MLP ratio 2
  clip_tiny: {
    embedDim: 32, imageSize: 32, patchSize: 8, vision: { width: 128, layers: 2, heads: 2, mlpWidth: 256 },
    contextLength: 16, vocabSize: 768, text: { width: 64, layers: 2, heads: 1, mlpWidth: 128 }, act: 'quick_gelu', eps: EPS,
  },
};

/**
 * Parameter counts of the whole CLIP (both towers, logit_scale) from scripts/clip_ref.py's
 * plain-PyTorch port of OpenAI's model.py, and of the image tower alone.
 */
export const CLIP_PARAMS: Record<string, { clip: number; visual: number }> = {
  'ViT-B-32': { clip: 151_277_313, visual: 87_849_216 },
  'ViT-B-16': { clip: 149_620_737, visual: 86_192_640 },
  'ViT-L-14': { clip: 427_616_513, visual: 303_966_208 },
  clip_tiny: { clip: 415_745, visual: 296_448 },
};

const clipImageDefaults: ClipImageConfig = { imgSize: 224, inChans: 3, numClasses: 1000, dropPathRate: 0, dropRate: 0, seed: 0, clip: CLIP_CONFIGS['ViT-B-32']! };

const OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073];
const OPENAI_STD = [0.26862954, 0.26130258, 0.27577711];
/** OpenAI's _transform: bicubic resize of the short side to the input size, centre crop, its mean/std. */
export const CLIP_PREPROCESSING = { mean: OPENAI_MEAN, std: OPENAI_STD, interpolation: 'bicubic', cropPct: 1 } as const;

/** A registered CLIP image tower has a 1,000-class head (as timm's counts), set from class prompts by train --pretrained. */
export const clipEntries: ModelEntry[] = Object.entries(CLIP_CONFIGS).map(([name, clip]) => {
  const numClasses = name === 'clip_tiny' ? 10 : 1000;
  return {
    name: `clip_${name.replace(/^clip_/, '')}`.replace(/-/g, '_'),
    family: 'clip',
    config: { clip, numClasses },
    // OpenAI's preprocessing: bicubic resize of the short side to the input size, centre crop
    pretrained: { inputSize: [3, clip.imageSize, clip.imageSize], mean: OPENAI_MEAN, std: OPENAI_STD, interpolation: 'bicubic', cropPct: 1, numClasses },
    description: name === 'clip_tiny' ? 'CLIP image tower, tiny (tests)' : `CLIP ${name} image tower (OpenAI's architecture) with a ${numClasses}-class head`,
    params: CLIP_PARAMS[name]!.visual + (clip.embedDim + 1) * numClasses,
  };
});

registerFamily<ClipImageConfig>({
  name: 'clip',
  defaults: clipImageDefaults,
  kwargsSchema: z.object({}).strict(),
  create: (config) => new ClipImageClassifier(config),
  tinyArgs: { clip: { ...CLIP_CONFIGS['clip_tiny']!, vision: tower(16, 1, 2) , embedDim: 8, imageSize: 16, patchSize: 4 }, numClasses: 5 },
  inferConfig(sd) {
    const clip = inferClipConfig(sd);
    if (!clip) return undefined;
    return { clip, numClasses: sd['head.weight']?.shape[0] ?? 0 };
  },
});

/** Layer ids as timm's group_matcher for open_clip towers: embeddings 0, resblock i → i + 1, everything else (ln_post, proj, head, the text tower) last. */
function imageTowerLayers(depth: number): LayerGrouping {
  return {
    blocks: depth,
    layerOf(key) {
      const m = /^visual\.transformer\.resblocks\.(\d+)\./.exec(key);
      if (m) return Number(m[1]) + 1;
      return /^visual\.(conv1|class_embedding|positional_embedding|ln_pre)/.test(key) ? 0 : depth + 1;
    },
  };
}
