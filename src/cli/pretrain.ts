/**
 * `tessera pretrain --method mae|dino`: self-supervised pretraining with the train command's run
 * directory, progress, resume, Ctrl-C, NaN handling and report (the same loop, runTraining); the
 * labels of the data are not used. The run's last.safetensors fine-tunes with
 * `train --pretrained RUN/last.safetensors --model vit_… --model-kwargs global_pool=avg`.
 * `--method clip` trains a whole CLIP on an image–caption manifest (src/train/objectives/clip.ts);
 * its last.safetensors is a CLIP checkpoint in OpenAI's layout (zero-shot, train --pretrained).
 */
import { Option, type Command } from 'commander';
import { trainConfigSchema } from '../train/config.js';
import { addSchemaOptions } from './schema_options.js';
import { addRunOptions, runTraining } from './train.js';
import { UsageError } from './output.js';
import { isManifestPath } from '../data/datasets/manifest.js';

/** The pretraining methods; each is an objective file registered under its name. */
const METHODS = ['mae', 'dino', 'clip'] as const;

/**
 * MAE's recipe where it carries over: AdamW, weight decay 0.05, cosine with warm-up. Its lr
 * (1.5e-4 · batch/256 at batch 4,096) is for ImageNet runs of 800 epochs; the small presets
 * learn at 1e-3 (test/train/mae_pretrain.test.ts).
 */
const MAE_DEFAULTS = { model: 'mae_vit_tiny_patch4_28', method: 'mae', lr: 1e-3, weightDecay: 0.05, warmupEpochs: 1 };
/**
 * CLIP's recipe (Radford et al. 2021, appendix F): AdamW with weight decay 0.2, cosine with
 * warm-up; its lr 5e-4 at batch 32,768 is for ImageNet-scale runs, the tiny model learns at 1e-3.
 * The data must be an image–caption manifest: --dataset captions.csv.
 */
const CLIP_DEFAULTS = { model: 'clip_contrastive_tiny', method: 'clip', lr: 1e-3, weightDecay: 0.2, warmupEpochs: 1 };

/**
 * DINO's recipe (main_dino.py's defaults): AdamW, weight decay 0.04 → 0.4, per-tensor clipping at
 * 3.0, the last layer frozen for the first epoch, min lr 1e-6, student drop-path 0.1; its lr 5e-4 · batch/256 is for
 * batches of 1,024 over 100+ epochs with 10 warm-up epochs: short runs here warm up over one.
 * The loader hands the plain images over (no flip, crop or jitter of its own): the objective
 * draws DINO's multi-crop views from them.
 */
const DINO_DEFAULTS = {
  model: 'dino_vit_tiny_patch4_28', method: 'dino', lr: 5e-4, minLr: 1e-6, weightDecay: 0.04, weightDecayEnd: 0.4, clipGrad: 3, warmupEpochs: 1, dropPath: 0.1,
  hflip: 0, scale: [1, 1], ratio: [1, 1], colorJitter: 0,
};
const DEFAULTS: Record<string, Record<string, unknown>> = { mae: MAE_DEFAULTS, dino: DINO_DEFAULTS, clip: CLIP_DEFAULTS };

export function registerPretrainCommand(program: Command): void {
  const cmd = program.command('pretrain')
    .description('self-supervised pretraining: MAE or DINO of a ViT encoder on a dataset or a flat folder of unlabelled images (defaults: mae_vit_tiny_patch4_28, mask ratio 0.75; with --method dino, dino_vit_tiny_patch4_28, 2 global + 8 local crops; on Fashion-MNIST without its labels), or --method clip: contrastive image–text pretraining of a whole CLIP (default clip_contrastive_tiny) on an image–caption manifest (--dataset captions.csv with path,caption; the CLIP tokenizer files beside it)');
  addRunOptions(cmd);
  // --method is pretrain's own (the pretraining methods); every other training option is train's
  const { method: _method, ...shape } = trainConfigSchema.shape;
  addSchemaOptions(cmd, shape);
  cmd.addOption(new Option('--method <name>', 'pretraining method').choices([...METHODS]).default('mae'));
  cmd.action((opts: Record<string, unknown>) => {
    const { method, ...rest } = opts;
    // before any data loads: the default Fashion-MNIST has no captions
    if (method === 'clip' && !rest.resume && !rest.config && !isManifestPath(String(rest.dataset ?? 'fashion-mnist'))) {
      throw new UsageError(`pretrain --method clip reads an image–caption manifest (a .csv or .jsonl of path,caption), got --dataset ${String(rest.dataset ?? 'fashion-mnist')}`);
    }
    return runTraining('pretrain', rest, { ...DEFAULTS[String(method)], method });
  });
}
