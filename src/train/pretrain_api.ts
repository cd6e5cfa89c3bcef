/**
 * Self-supervised pretraining and feature evaluation (`import { pretrain } from 'tessera'`):
 * `pretrain.run(cfg)` is the training loop with a pretraining objective (MAE: `method: 'mae'`,
 * an `mae_*` model; DINO: `method: 'dino'`, a `dino_*` model; CLIP: `method: 'clip'`, a
 * `clip_contrastive_*` model and a caption manifest), the models' and objectives' pieces for
 * custom loops, and weighted k-NN on features.
 */
import { resolveTrainConfig, type TrainConfig } from './config.js';
import { train, type TrainOptions, type TrainResult } from './trainer.js';

export { MaskedAutoencoderViT, maskFromNoise, keptPatches, sincosPosEmbed2d, type MaeConfig, type MaeMask } from '../models/mae.js';
export { MaeObjective, drawMaskNoise, maskFeeds } from './objectives/mae.js';
export { DinoViT, DinoHead, DinoBackbone, dinoBackboneState, dinoPosInterpolation, type DinoConfig } from '../models/dino.js';
export { DinoObjective, dinoLoss, teacherTargets, updateCenter, teacherTemperature, cosineValue, clipPerTensor } from './objectives/dino.js';
export { dinoViews, dinoView, type MultiCropOptions } from '../data/transforms/multi_crop.js';
export { ClipObjective, symmetricInfoNce, MAX_LOGIT_SCALE } from './objectives/clip.js';
export { knnEvaluate, knnVotes, knnAccuracy, l2Normalise, compileFeatures, extractFeatures, type KnnOptions, type KnnResult } from './knn.js';

/**
 * Pretrains with MAE's defaults (mae_vit_tiny_patch4_28, mask ratio 0.75), or with `method: 'dino'`
 * DINO's (dino_vit_tiny_patch4_28, the CLI's recipe), under the given options.
 */
export function run(options: Partial<TrainConfig> & Record<string, unknown> = {}, opts: TrainOptions = {}): Promise<TrainResult> {
  const defaults = options.method === 'dino'
    ? { model: 'dino_vit_tiny_patch4_28', lr: 5e-4, minLr: 1e-6, weightDecay: 0.04, weightDecayEnd: 0.4, clipGrad: 3, dropPath: 0.1, hflip: 0, scale: [1, 1], ratio: [1, 1], colorJitter: 0 }
    : { model: 'mae_vit_tiny_patch4_28', method: 'mae', lr: 1e-3 };
  return train(resolveTrainConfig({ ...defaults, ...options }), opts);
}
