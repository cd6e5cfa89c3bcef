/**
 * CLIP's contrastive pretraining (Radford et al. 2021, https://arxiv.org/abs/2103.00020): in a
 * batch of image–caption pairs, each image's caption is the right one among the batch's captions
 * and each caption's image among its images — the symmetric InfoNCE loss
 * ½·(CE(s·Î·T̂ᵀ, i) + CE(s·T̂·Îᵀ, i)) with the learnable temperature s = exp(logit_scale), which
 * is clamped to [0, ln 100] after every optimiser update as open_clip's train.py does ("as in the
 * original paper").
 *
 * The data is an image–caption manifest (`path,caption`): its captions arrive as the batch's
 * labels (src/data/datasets/manifest.ts), and are tokenised on the host, once, with the CLIP
 * tokenizer found beside the manifest (bpe_simple_vocab_16e6.txt[.gz], or vocab.json +
 * merges.txt). The run directory gets a copy of those files, so its checkpoints load as CLIP
 * checkpoints (zero-shot, train --pretrained, convert) with their tokenizer.
 */
import { copyFileSync, existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Batch } from '../../data/loader/batch_source.js';
import { isManifestPath } from '../../data/datasets/manifest.js';
import type { Tensor } from '../../ir/tensor.js';
import { add, crossEntropy, mul, transpose } from '../../ops/index.js';
import { compile, type Executable, type Feed } from '../../runtime/compile.js';
import type { SessionOptions } from '../../runtime/session.js';
import type { ImageModel } from '../../models/model.js';
import { ClipModel } from '../../models/clip.js';
import { ClipTokenizer, TokenizerError } from '../../text/clip_tokenizer.js';
import type { EvaluationContext, Objective, ObjectiveContext, ObjectiveEvaluation } from './objective.js';

/** open_clip clamps logit_scale to [0, ln 100] after each step: a temperature of at most 100. */
export const MAX_LOGIT_SCALE = Math.log(100);

export function asClip(model: ImageModel): ClipModel {
  if (!(model instanceof ClipModel)) throw new RangeError(`CLIP pretraining needs a whole CLIP (e.g. clip_contrastive_tiny), got a ${model.family} model`);
  return model;
}

/**
 * The symmetric InfoNCE loss of logits per image [B, B] whose pairs are on the diagonal; `targets`
 * is the identity [B, B] (one-hot rows of 0…B−1: fed, as the batch size is not known when traced).
 */
export function symmetricInfoNce(logitsPerImage: Tensor, targets: Tensor): Tensor {
  return mul(add(crossEntropy(logitsPerImage, targets), crossEntropy(transpose(logitsPerImage, [1, 0]), targets)), 0.5);
}

/** The tokenizer files of `tokenizer` (what ClipTokenizer.find reads), to copy beside a run's checkpoints. */
function tokenizerFiles(tokenizer: ClipTokenizer): string[] {
  const src = tokenizer.source;
  return basename(src) === 'vocab.json' ? [src, join(dirname(src), 'merges.txt')] : [src];
}

const identity = (n: number): Feed => {
  const data = new Float32Array(n * n);
  for (let i = 0; i < n; i++) data[i * n + i] = 1;
  return { data, shape: [n, n] };
};

export class ClipObjective implements Objective {
  readonly name = 'clip';
  readonly best = { metric: 'eval_loss', mode: 'min' } as const;
  private evalExe?: Executable;

  /** `captionIds` [captions, L]: the token ids of every caption (label) of the data. */
  constructor(private readonly model: ClipModel, readonly tokenizer: ClipTokenizer, private readonly captionIds: BigInt64Array,
    private readonly captions: readonly string[], private readonly session: SessionOptions = {}) {}

  static create({ model, cfg, classNames, session }: ObjectiveContext): ClipObjective {
    const clip = asClip(model);
    if (!isManifestPath(cfg.dataset)) {
      throw new RangeError(`pretrain --method clip reads an image–caption manifest (a .csv or .jsonl of path,caption), got --dataset ${cfg.dataset}`);
    }
    const tokenizer = ClipTokenizer.find(dirname(cfg.dataset));
    const { vocabSize, contextLength } = clip.config;
    if (tokenizer.vocabSize > vocabSize) {
      throw new RangeError(`the tokenizer (${tokenizer.source}) has ${tokenizer.vocabSize} tokens but ${cfg.model} embeds ${vocabSize}; give --model-kwargs vocab_size=${tokenizer.vocabSize}`);
    }
    const captions = classNames ?? [];
    // every caption is checked (length, vocabulary) before any step runs
    let ids: BigInt64Array;
    try {
      ids = tokenizer.tokenize(captions, { contextLength });
    } catch (e) {
      if (!(e instanceof TokenizerError)) throw e;
      throw new TokenizerError(`${cfg.dataset}: ${e.message} of ${cfg.model} (shorten it, or give a longer --model-kwargs context_length=N)`);
    }
    return new ClipObjective(clip, tokenizer, ids, captions, session);
  }

  inputs(model: ImageModel) {
    const n = asClip(model).config.contextLength;
    return [
      { name: 'text', shape: ['batch', n] as const, dtype: 'int64' as const },
      { name: 'pair', shape: ['batch', 'batch'] as const },
    ];
  }

  loss(model: ImageModel, x: Tensor, inputs: Record<string, Tensor>): Tensor {
    return symmetricInfoNce(asClip(model).logitsPerImage(x, inputs.text!), inputs.pair!);
  }

  /** The captions' token ids of the batch's rows. */
  private textOf(labels: Int32Array, size: number): Feed {
    const n = this.model.config.contextLength;
    const ids = new BigInt64Array(size * n);
    for (let i = 0; i < size; i++) ids.set(this.captionIds.subarray(labels[i]! * n, (labels[i]! + 1) * n), i * n);
    return { data: ids, shape: [size, n] };
  }

  feeds(batch: Batch): Record<string, Feed> {
    return { x: batch.x, text: this.textOf(batch.labels, batch.size), pair: identity(batch.size) };
  }

  afterOptimizerStep(_step: number): void {
    const scale = this.model.namedParameters().find(([k]) => k === 'logit_scale')![1].data;
    scale[0] = Math.min(Math.max(scale[0]!, 0), MAX_LOGIT_SCALE);
  }

  /**
   * eval_loss: the contrastive loss over the evaluation batches (which picks best.safetensors);
   * eval_top1: the share of images whose highest-scoring caption of their batch is their own
   * caption's text (a batch may hold the same caption twice: either counts).
   */
  async evaluate({ loader, runDir }: EvaluationContext): Promise<ObjectiveEvaluation> {
    const clip = this.model;
    const [c, h, w] = clip.inputShape;
    this.evalExe ??= await compile((x, text, pair) => {
      const logits = clip.logitsPerImage(x, text!);
      return { loss: symmetricInfoNce(logits, pair!), logits };
    }, [{ name: 'x', shape: ['batch', c, h, w] }, ...this.inputs(clip)], this.session);
    let loss = 0, correct = 0, images = 0;
    for (let i = 0; i < loader.numBatches; i++) {
      const b = await loader.batch(0, i);
      if (b.size === 0) continue;
      const out = await this.evalExe.run({ x: { data: b.x, shape: [b.size, c, h, w] }, text: this.textOf(b.labels, b.size), pair: identity(b.size) });
      loss += Number(out.loss!.data[0]) * b.size;
      const logits = out.logits!.data as Float32Array;
      for (let r = 0; r < b.size; r++) {
        let best = 0;
        for (let j = 1; j < b.size; j++) if (logits[r * b.size + j]! > logits[r * b.size + best]!) best = j;
        if (this.captions[b.labels[best]!] === this.captions[b.labels[r]!]) correct++;
      }
      images += b.size;
      loader.release?.(b);
    }
    if (runDir) for (const f of tokenizerFiles(this.tokenizer)) if (!existsSync(join(runDir, basename(f)))) copyFileSync(f, join(runDir, basename(f)));
    return { record: { eval_loss: loss / Math.max(1, images), eval_top1: correct / Math.max(1, images) } };
  }

  async dispose(): Promise<void> {
    await this.evalExe?.dispose();
  }
}
