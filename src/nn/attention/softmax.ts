/**
 * Softmax attention, softmax(q kᵀ / √D) v ("Attention Is All You Need", Vaswani et al. 2017,
 * https://arxiv.org/abs/1706.03762), as timm's ViT computes it; and its exact memory-efficient
 * form for long sequences: the queries in chunks of `queryChunk` rows, each chunk's scores
 * [B, H, c, N] built, normalised and applied before the next, so [B, H, N, N] never exists at
 * once (the same result: each query row's softmax is independent of the others).
 *
 * In inference ORT frees a chunk's scores before the next chunk (measured at N = 8,192, 3 heads:
 * peak RSS 933 MB unchunked, 224 MB with chunks of 1,024, 173 MB with 512, at the same speed).
 * In training the chunks are one primitive (src/ops/attention.ts, chunkedAttention) whose
 * backward pass recomputes each chunk's probabilities, so no [B, H, N, N] tensor is kept for it
 * either (as a composite, softmax's VJP would keep every chunk's probabilities: at N = 16,384 a
 * block's training step peaked at 8.1 GB that way; bench/attention_scaling.ts).
 *
 * Prefix tokens need nothing special: every token attends to every token.
 */
import type { Tensor } from '../../ir/tensor.js';
import { chunkedAttention, matmul } from '../../ops/index.js';
import { AttentionMechanism, softmaxScores, type MechanismContext } from './mechanism.js';

/** query_chunk 0 (auto): sequences of this many tokens or more are chunked… */
export const AUTO_CHUNK_FROM = 2048;
/** …into chunks of this many query rows. */
export const AUTO_CHUNK = 512;

export class SoftmaxAttention extends AttentionMechanism {
  readonly type = 'softmax';

  /** `queryChunk`: rows per chunk; 0 chooses (AUTO_CHUNK once N ≥ AUTO_CHUNK_FROM, else none). */
  constructor(ctx: MechanismContext, readonly queryChunk = 0) {
    super(ctx);
  }

  /** The chunk size for N tokens, or 0 for one dense product. */
  chunkFor(n: number): number {
    const c = this.queryChunk > 0 ? this.queryChunk : n >= AUTO_CHUNK_FROM ? AUTO_CHUNK : 0;
    return c > 0 && c < n ? c : 0;
  }

  matrix(q: Tensor, k: Tensor): Tensor {
    // kᵀ is left to the MatMul, which ORT fuses as a transposed operand (timm's order of ops)
    return softmaxScores(q, k); // [B, H, N, N]
  }

  attend(q: Tensor, k: Tensor, v: Tensor): Tensor {
    const c = this.chunkFor(q.shape[2] as number);
    return c ? chunkedAttention(q, k, v, c) : matmul(this.matrix(q, k), v); // [B, H, N, D]
  }

  /** Unchunked, the probabilities come with the output at no cost (timm's graph, unchanged). */
  override attendWithMatrix(q: Tensor, k: Tensor, v: Tensor, withMatrix: boolean): { out: Tensor; attn?: Tensor } {
    if (withMatrix || !this.chunkFor(q.shape[2] as number)) {
      const attn = this.matrix(q, k);
      return { out: matmul(attn, v), attn };
    }
    return { out: this.attend(q, k, v) };
  }
}
