/**
 * Self-supervised pretraining and feature evaluation (`import { pretrain } from 'tessera'`):
 * `pretrain.run(cfg)` is the training loop with a pretraining objective (MAE: `method: 'mae'`,
 * an `mae_*` model; CLIP: `method: 'clip'`, a `clip_contrastive_*` model and a caption manifest),
 * the MAE model's and CLIP objective's pieces for custom loops, and weighted k-NN on features.
 */
import { resolveTrainConfig, type TrainConfig } from './config.js';
import { train, type TrainOptions, type TrainResult } from './trainer.js';

export { MaskedAutoencoderViT, maskFromNoise, keptPatches, sincosPosEmbed2d, type MaeConfig, type MaeMask } from '../models/mae.js';
export { MaeObjective, drawMaskNoise, maskFeeds } from './objectives/mae.js';
export { ClipObjective, symmetricInfoNce, MAX_LOGIT_SCALE } from './objectives/clip.js';
export { knnEvaluate, knnVotes, knnAccuracy, l2Normalise, compileFeatures, extractFeatures, type KnnOptions, type KnnResult } from './knn.js';

/** Pretrains with MAE's defaults (mae_vit_tiny_patch4_28, mask ratio 0.75) under the given options. */
export function run(options: Partial<TrainConfig> & Record<string, unknown> = {}, opts: TrainOptions = {}): Promise<TrainResult> {
  return train(resolveTrainConfig({ model: 'mae_vit_tiny_patch4_28', method: 'mae', lr: 1e-3, ...options }), opts);
}
