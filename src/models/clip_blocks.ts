/**
 * CLIP's building blocks (src/models/clip.ts is the model): the config shapes, OpenAI's
 * QuickGELU, nn.MultiheadAttention with packed in_proj as CLIP uses it, the MLP, the pre-norm
 * residual block and its stack, the image tower (`visual.*`), the causal text mask, and the L2
 * normalisation of embeddings. Parameter names are OpenAI's state-dict keys.
 */
import type { Tensor } from '../ir/tensor.js';
import type { Graph } from '../ir/graph.js';
import { add, concat, expand, gelu, matmul, mul, reshape, sigmoid, slice, sqrt, sum, transpose, div } from '../ops/index.js';
import { BATCH } from '../ir/shape.js';
import type { Random } from '../random.js';
import { Module } from '../nn/module.js';
import { Conv2d, LayerNorm, Linear } from '../nn/layers.js';
import { softmaxScores, MASKED } from '../nn/attention/mechanism.js';
import { normal, zeros } from '../nn/init.js';

export type ClipActivation = 'quick_gelu' | 'gelu';

export interface ClipTowerConfig {
  width: number;
  layers: number;
  heads: number;
  /** Hidden width of each block's MLP (4 × width in OpenAI's models). */
  mlpWidth: number;
}

export interface ClipConfig {
  /** Width of the joint embedding space (text_projection's columns). */
  embedDim: number;
  imageSize: number;
  patchSize: number;
  vision: ClipTowerConfig;
  contextLength: number;
  vocabSize: number;
  text: ClipTowerConfig;
  act: ClipActivation;
  eps: number;
}

/** x·σ(1.702x), the GELU approximation OpenAI's CLIP was trained with. */
export const quickGelu = (x: Tensor): Tensor => mul(x, sigmoid(mul(x, 1.702)));

/** PyTorch's nn.MultiheadAttention as CLIP uses it: packed in_proj_weight/bias, out_proj. */
class ClipAttention extends Module {
  readonly outProj: Linear;

  constructor(readonly dim: number, readonly heads: number, rng: Random) {
    super();
    if (dim % heads !== 0) throw new RangeError(`CLIP attention: width ${dim} is not divisible by ${heads} heads`);
    this.addParam('in_proj_weight', [3 * dim, dim], normal(dim ** -0.5), rng);
    this.addParam('in_proj_bias', [3 * dim], zeros());
    this.outProj = this.addChild('out_proj', new Linear(dim, dim, rng));
  }

  /** x [B, N, D], `mask` an additive [N, N] (the text's causal mask) or none. */
  forward(x: Tensor, mask?: Tensor): Tensor {
    const g = x.graph;
    const y = this.scoped(g, () => {
      const [, n, d] = x.shape as [unknown, number, number];
      const h = this.heads;
      const hd = d / h;
      const x2 = reshape(x, [-1, d]);
      // q, k and v each from their own rows of the packed weight: with constant weights ORT folds
      // the slices away, and there is no [B·N, 3D] result to split and copy before the head transposes
      const part = (i: number) => {
        const rows = (t: Tensor) => slice(t, [0], [i * d], [(i + 1) * d]);
        const y = add(matmul(x2, transpose(rows(this.p(g, 'in_proj_weight')), [1, 0])), rows(this.p(g, 'in_proj_bias'))); // [B·N, D]
        return transpose(reshape(y, [-1, n, h, hd]), [0, 2, 1, 3]); // [B, H, N, hd]
      };
      const out = matmul(softmaxScores(part(0), part(1), mask), part(2)); // [B, H, N, hd]
      return reshape(transpose(out, [0, 2, 1, 3]), [-1, n, d]); // [B, N, D]
    });
    return this.outProj.forward(y);
  }
}

class ClipMlp extends Module {
  readonly cFc: Linear;
  readonly cProj: Linear;

  constructor(dim: number, hidden: number, readonly act: ClipActivation, rng: Random) {
    super();
    this.cFc = this.addChild('c_fc', new Linear(dim, hidden, rng));
    this.cProj = this.addChild('c_proj', new Linear(hidden, dim, rng));
  }

  forward(x: Tensor): Tensor {
    const h = this.cFc.forward(x);
    return this.cProj.forward(this.scoped(x.graph, () => (this.act === 'gelu' ? gelu(h) : quickGelu(h))));
  }
}

/** OpenAI's ResidualAttentionBlock: x + attn(ln_1(x)), then + mlp(ln_2(x)). */
class ResidualAttentionBlock extends Module {
  readonly ln1: LayerNorm;
  readonly attn: ClipAttention;
  readonly ln2: LayerNorm;
  readonly mlp: ClipMlp;

  constructor(t: ClipTowerConfig, act: ClipActivation, eps: number, rng: Random) {
    super();
    this.attn = this.addChild('attn', new ClipAttention(t.width, t.heads, rng));
    this.ln1 = this.addChild('ln_1', new LayerNorm(t.width, eps));
    this.mlp = this.addChild('mlp', new ClipMlp(t.width, t.mlpWidth, act, rng));
    this.ln2 = this.addChild('ln_2', new LayerNorm(t.width, eps));
  }

  forward(x: Tensor, mask?: Tensor): Tensor {
    const g = x.graph;
    const x1 = this.scoped(g, () => add(x, this.attn.forward(this.ln1.forward(x), mask)));
    return this.scoped(g, () => add(x1, this.mlp.forward(this.ln2.forward(x1))));
  }
}

/** `transformer.resblocks.N`, shared by both towers. */
export class ClipTransformer extends Module {
  readonly resblocks: ResidualAttentionBlock[];

  constructor(t: ClipTowerConfig, act: ClipActivation, eps: number, rng: Random) {
    super();
    this.resblocks = Array.from({ length: t.layers }, (_, i) => this.addChild(`resblocks.${i}`, new ResidualAttentionBlock(t, act, eps, rng)));
  }

  forward(x: Tensor, mask?: Tensor): Tensor {
    return this.resblocks.reduce((h, block) => block.forward(h, mask), x);
  }
}

/** The image tower (`visual.*`): patchify conv, class token, positions, ln_pre, blocks, ln_post, proj. */
export class ClipVisionTower extends Module {
  readonly grid: number;
  readonly conv1: Conv2d;
  readonly lnPre: LayerNorm;
  readonly transformer: ClipTransformer;
  readonly lnPost: LayerNorm;

  constructor(readonly c: ClipConfig, rng: Random) {
    super();
    const w = c.vision.width;
    if (c.imageSize % c.patchSize !== 0) throw new RangeError(`CLIP: image size ${c.imageSize} is not divisible by patch size ${c.patchSize}`);
    this.grid = c.imageSize / c.patchSize;
    this.conv1 = this.addChild('conv1', new Conv2d(3, w, c.patchSize, rng, { stride: c.patchSize, bias: false }));
    this.addParam('class_embedding', [w], normal(w ** -0.5), rng);
    this.addParam('positional_embedding', [this.grid * this.grid + 1, w], normal(w ** -0.5), rng);
    this.lnPre = this.addChild('ln_pre', new LayerNorm(w, c.eps));
    this.transformer = this.addChild('transformer', new ClipTransformer(c.vision, c.act, c.eps, rng));
    this.lnPost = this.addChild('ln_post', new LayerNorm(w, c.eps));
    this.addParam('proj', [w, c.embedDim], normal(w ** -0.5), rng);
  }

  /** Images [B, 3, H, W] → image embeddings [B, E] (not normalised). */
  forward(x: Tensor): Tensor {
    const g = x.graph;
    const { imageSize: s, patchSize: p, vision: { width: w } } = this.c;
    const [, ch, h, wd] = x.shape as [unknown, number, number, number];
    if (ch !== 3 || h !== s || wd !== s) throw new RangeError(`${this.path}: expected images [B, 3, ${s}, ${s}], got [B, ${ch}, ${h}, ${wd}]`);
    const n = this.grid;
    const patches = this.scoped(g, () => reshape(transpose(reshape(x, [-1, 3, n, p, n, p]), [0, 2, 4, 1, 3, 5]), [-1, n * n, 3 * p * p])); // [B, N, 3·p·p]
    const embedded = this.conv1.scopedLinear(g, patches, w); // [B, N, W]
    let tokens = this.scoped(g, () => {
      const cls = expand(reshape(this.p(g, 'class_embedding'), [1, 1, w]), [BATCH, 1, w]); // [B, 1, W]
      return add(concat([cls, embedded], 1), this.p(g, 'positional_embedding')); // [B, N + 1, W]
    });
    tokens = this.transformer.forward(this.lnPre.forward(tokens));
    const cls = this.scoped(g, () => reshape(slice(tokens, [1], [0], [1]), [-1, w])); // [B, W]
    return this.scoped(g, () => matmul(this.lnPost.forward(cls), this.p(g, 'proj'))); // [B, E]
  }
}

/** An additive causal mask [L, L]: 0 on and below the diagonal, MASKED above (OpenAI's build_attention_mask). */
export function causalMask(g: Graph, n: number): Tensor {
  const data = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) data[i * n + j] = MASKED;
  return g.constant(data, [n, n], 'float32');
}

/** L2 normalisation over the last axis, as CLIP's `x / x.norm(dim=-1, keepdim=True)`. */
export function l2Normalize(x: Tensor): Tensor {
  return div(x, sqrt(sum(mul(x, x), [x.rank - 1], true)));
}

