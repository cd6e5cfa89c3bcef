/**
 * MAE pretraining (He et al. 2021): reconstruct the removed patches' (normalised) pixels from the
 * visible ones. Each micro-batch's masking is drawn on the host from the run's seeded stream
 * (uniform noise per patch, as random_masking's torch.rand), so a resumed run masks the same
 * patches; the graph takes the kept indices, the restoring permutation and the mask as inputs.
 * The model must be an MAE (`mae_*` entries, src/models/mae.ts).
 */
import type { Batch } from '../../data/loader/batch_source.js';
import { compile, type Executable, type Feed } from '../../runtime/compile.js';
import type { SessionOptions } from '../../runtime/session.js';
import { join } from 'node:path';
import { writeFileAtomic } from '../../checkpoint/atomic.js';
import { imagePng } from '../../data/image/image_overlay.js';
import { reconstructionGrid } from '../mae_grid.js';
import { Random, mixSeed } from '../../random.js';
import type { ImageModel } from '../../models/model.js';
import { MaskedAutoencoderViT, keptPatches, maskFromNoise, type MaeShuffle } from '../../models/mae.js';
import type { EvaluationContext, Objective, ObjectiveContext, ObjectiveEvaluation, ReportFigure } from './objective.js';

/** Salt of the masking noise stream (mixed with the run seed and the micro-batch index). */
const MASK_SALT = 0x3a3e;
/** Salt of the evaluation masks: the same masks every epoch, so eval_loss compares across epochs. */
const EVAL_MASK_SALT = 0x3a3f;

export function asMae(model: ImageModel): MaskedAutoencoderViT {
  if (!(model instanceof MaskedAutoencoderViT)) throw new RangeError(`MAE pretraining needs an MAE model (e.g. mae_vit_tiny_patch4_28), got a ${model.family} model`);
  return model;
}

/** Uniform noise [batch, N] in [0, 1) from `rng` (random_masking's torch.rand). */
export function drawMaskNoise(rng: Random, batch: number, numPatches: number): Float32Array {
  return Float32Array.from({ length: batch * numPatches }, () => rng.uniform());
}

/** The graph feeds of one masking of `batch` images. */
export function maskFeeds(model: MaskedAutoencoderViT, noise: Float32Array, batch: number, maskRatio: number): Record<string, Feed> {
  const n = model.numPatches;
  const m = maskFromNoise(noise, batch, n, maskRatio);
  return {
    ids_keep: { data: m.idsKeep, shape: [batch, m.keep] },
    ids_restore: { data: m.idsRestore, shape: [batch, n] },
    mask: { data: m.mask, shape: [batch, n] },
  };
}

export class MaeObjective implements Objective {
  readonly name = 'mae';
  readonly best = { metric: 'eval_loss', mode: 'min' } as const;

  private evalLoss?: Executable;
  /** The token-shuffle formulation traced into the step (`gather`: the official one, for the A/B bench and the tests). */
  shuffle: MaeShuffle = 'rows';

  static create({ model, cfg, session, transform }: ObjectiveContext): MaeObjective {
    return new MaeObjective(asMae(model), cfg.maskRatio, cfg.seed, session, transform);
  }

  constructor(private readonly model: MaskedAutoencoderViT, readonly maskRatio: number, private readonly seed: number,
    private readonly session: SessionOptions = {}, private readonly display?: { mean: readonly number[]; std: readonly number[] }) {
    if (!(maskRatio > 0 && maskRatio < 1)) throw new RangeError(`--mask-ratio must be in (0, 1), got ${maskRatio}`);
  }

  inputs(model: ImageModel) {
    const mae = asMae(model);
    const n = mae.numPatches;
    const keep = keptPatches(n, this.maskRatio);
    if (keep < 1) throw new RangeError(`--mask-ratio ${this.maskRatio} keeps no patch of ${n}`);
    return [
      { name: 'ids_keep', shape: ['batch', keep] as const, dtype: 'int64' as const },
      { name: 'ids_restore', shape: ['batch', n] as const, dtype: 'int64' as const },
      { name: 'mask', shape: ['batch', n] as const },
    ];
  }

  loss(model: ImageModel, x: Parameters<Objective['loss']>[1], inputs: Parameters<Objective['loss']>[2]) {
    return asMae(model).maeForward(x, { idsKeep: inputs.ids_keep!, idsRestore: inputs.ids_restore!, mask: inputs.mask! }, this.shuffle).loss;
  }

  feeds(batch: Batch, micro: number): Record<string, Feed> {
    const mae = this.model;
    const noise = drawMaskNoise(new Random(mixSeed(this.seed, micro, MASK_SALT)), batch.size, mae.numPatches);
    return { x: batch.x, ...maskFeeds(mae, noise, batch.size, this.maskRatio) };
  }

  /**
   * The masked-patch loss on the evaluation images (eval_loss, which picks best.safetensors), at
   * fixed masks; with a run directory, reconstruction.png of the first 8 images (src/train/mae_grid.ts).
   */
  async evaluate({ loader, runDir }: EvaluationContext): Promise<ObjectiveEvaluation> {
    const mae = this.model;
    const [c, h, w] = mae.inputShape;
    this.evalLoss ??= await compile((x, ...rest) => ({ ...mae.maeForward(x, { idsKeep: rest[0]!, idsRestore: rest[1]!, mask: rest[2]! }) }),
      [{ name: 'x', shape: ['batch', c, h, w] }, ...this.inputs(mae)], this.session);
    let total = 0;
    let images = 0;
    let figures: ReportFigure[] | undefined;
    for (let i = 0; i < loader.numBatches; i++) {
      const b = await loader.batch(0, i);
      if (b.size === 0) continue;
      const noise = drawMaskNoise(new Random(mixSeed(this.seed, i, EVAL_MASK_SALT)), b.size, mae.numPatches);
      const feeds = maskFeeds(mae, noise, b.size, this.maskRatio);
      const out = await this.evalLoss.run({ x: { data: b.x, shape: [b.size, c, h, w] }, ...feeds });
      total += Number(out.loss!.data[0]) * b.size;
      if (i === 0 && runDir && this.display) {
        const n = Math.min(8, b.size);
        const grid = reconstructionGrid({ x: b.x, pred: out.pred!.data as Float32Array, mask: (feeds.mask as { data: Float32Array }).data, n, shape: [c, h, w],
          patch: mae.config.patchSize, normPix: mae.config.normPixLoss, mean: this.display.mean, std: this.display.std });
        writeFileAtomic(join(runDir, 'reconstruction.png'), await imagePng(grid));
        figures = [{
          file: 'reconstruction.png', width: grid.width, height: grid.height,
          alt: `${n} evaluation images in three rows: the originals, the input with the ${Math.round(this.maskRatio * 100)}% of patches the encoder did not see in grey, and the reconstruction with the visible patches pasted back.`,
          caption: 'MAE reconstructions at the latest evaluation: originals, masked input, reconstruction (the same images and masks every epoch).',
        }];
      }
      images += b.size;
      loader.release?.(b);
    }
    return { record: { eval_loss: total / Math.max(1, images) }, ...(figures ? { figures } : {}) };
  }

  async dispose(): Promise<void> {
    await this.evalLoss?.dispose();
  }
}
