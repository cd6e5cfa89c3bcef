/**
 * `tessera pretrain --method mae`: self-supervised pretraining with the train command's run
 * directory, progress, resume, Ctrl-C, NaN handling and report (the same loop, runTraining); the
 * labels of the data are not used. The run's last.safetensors fine-tunes with
 * `train --pretrained RUN/last.safetensors --model vit_… --model-kwargs global_pool=avg`.
 */
import { Option, type Command } from 'commander';
import { trainConfigSchema } from '../train/config.js';
import { addSchemaOptions } from './schema_options.js';
import { addRunOptions, runTraining } from './train.js';

/** The pretraining methods; DINO and CLIP-contrastive join as objective files registered under their names. */
const METHODS = ['mae'] as const;

/**
 * MAE's recipe where it carries over: AdamW, weight decay 0.05, cosine with warm-up. Its lr
 * (1.5e-4 · batch/256 at batch 4,096) is for ImageNet runs of 800 epochs; the small presets
 * learn at 1e-3 (test/train/mae_pretrain.test.ts).
 */
const MAE_DEFAULTS = { model: 'mae_vit_tiny_patch4_28', method: 'mae', lr: 1e-3, weightDecay: 0.05, warmupEpochs: 1 };

export function registerPretrainCommand(program: Command): void {
  const cmd = program.command('pretrain')
    .description('self-supervised pretraining (MAE) of a ViT encoder; defaults: mae_vit_tiny_patch4_28 on Fashion-MNIST without its labels, mask ratio 0.75');
  addRunOptions(cmd);
  // --method is pretrain's own (the pretraining methods); every other training option is train's
  const { method: _method, ...shape } = trainConfigSchema.shape;
  addSchemaOptions(cmd, shape);
  cmd.addOption(new Option('--method <name>', 'pretraining method').choices([...METHODS]).default('mae'));
  cmd.action((opts: Record<string, unknown>) => {
    const { method, ...rest } = opts;
    return runTraining('pretrain', rest, { ...MAE_DEFAULTS, method });
  });
}
