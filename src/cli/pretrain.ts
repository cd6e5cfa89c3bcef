/**
 * `tessera pretrain --method mae`: self-supervised pretraining with the train command's run
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

/** The pretraining methods; DINO and CLIP-contrastive join as objective files registered under their names. */
const METHODS = ['mae', 'clip'] as const;

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
const DEFAULTS: Record<string, Record<string, unknown>> = { mae: MAE_DEFAULTS, clip: CLIP_DEFAULTS };

export function registerPretrainCommand(program: Command): void {
  const cmd = program.command('pretrain')
    .description('self-supervised pretraining (MAE) of a ViT encoder; defaults: mae_vit_tiny_patch4_28 on Fashion-MNIST without its labels, mask ratio 0.75. --method clip: contrastive image–text pretraining of a whole CLIP (default clip_contrastive_tiny) on an image–caption manifest (--dataset captions.csv with path,caption; the CLIP tokenizer files beside it)');
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
