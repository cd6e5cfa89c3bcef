/** `tessera train`: train or fine-tune; with no flags, the Fashion-MNIST recipe. */
import type { Command } from 'commander';
import { readConfigFile, resolveTrainConfig, trainConfigSchema, type TrainConfig } from '../train/config.js';
import { train, type TrainResult } from '../train/trainer.js';
import { readRunConfig as readSavedConfig } from '../train/run_dir.js';
import { addSchemaOptions, kebab, pickSchemaValues } from './schema_options.js';
import { createProgress, formatDuration, formatRate } from './progress.js';
import { UsageError } from './output.js';

/** train's options (also those of `tessera torchrun`, which translates the same recipe for timm). */
export function addTrainOptions(cmd: Command): Command {
  addRunOptions(cmd);
  addSchemaOptions(cmd, trainConfigSchema.shape);
  return cmd;
}

/** The recipe of `defaults` under --config under the flags (flags override the file). */
export function configFromOptions(opts: Record<string, unknown>, defaults: Record<string, unknown> = {}): TrainConfig {
  const flags = pickSchemaValues(opts, trainConfigSchema.shape);
  const file = opts.config ? readConfigFile(opts.config as string) : {};
  if (opts.config) resolveTrainConfig(file, opts.config as string);
  return resolveTrainConfig({ ...defaults, ...file, ...flags }, 'invalid option', (k) => (k in flags ? `--${kebab(k)}` : `"${k}" in ${opts.config}`));
}

export function registerTrainCommand(program: Command): void {
  const cmd = addTrainOptions(program.command('train')
    .description('train a ViT (defaults: vit_tiny_patch4_28 on Fashion-MNIST, AdamW, cosine schedule, 10 epochs)'));
  cmd.action((opts: Record<string, unknown>) => runTraining('train', opts));
}

/** The options of a command that runs the training loop (train, pretrain), besides the config schema's. */
export function addRunOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'JSON or YAML file of training options (keys as the flags, camelCase or kebab-case); flags override it')
    .option('--resume <run-dir>', 'continue a stopped run from its run directory, exactly where it stopped')
    .option('--overwrite', 'replace the run already in --output (without it, training into an existing run is refused)')
    .option('--json', 'print the final result as JSON');
}

/**
 * The body of `train` and `pretrain` (src/cli/pretrain.ts): resolve the config (`defaults` under
 * the config file under the flags), run with progress and Ctrl-C, print the result.
 */
export async function runTraining(command: string, opts: Record<string, unknown>, defaults: Record<string, unknown> = {}): Promise<void> {
  {
    const flags = pickSchemaValues(opts, trainConfigSchema.shape);
    let cfg;
    if (opts.resume) {
      const given = Object.keys(flags).map((k) => `--${kebab(k)}`);
      if (opts.overwrite) given.push('--overwrite');
      if (given.length) throw new UsageError(`--resume continues a run with its saved configuration; remove ${given.join(', ')}`);
      cfg = resolveTrainConfig(readSavedConfig(opts.resume as string), `${opts.resume}/config.json`);
    } else {
      cfg = configFromOptions(opts, defaults);
    }

    const progress = createProgress(process.stderr);
    const controller = new AbortController();
    let interrupts = 0;
    const onSigint = () => {
      interrupts++;
      if (interrupts > 1) process.exit(130);
      progress.pause();
      process.stderr.write('\nstopping after this step and saving a resumable state (Ctrl-C again to quit at once)\n');
      controller.abort();
    };
    process.on('SIGINT', onSigint);
    const log = (m: string) => { progress.pause(); process.stderr.write(`${m}\n`); };
    let result: TrainResult;
    try {
      result = await train(cfg, {
        resume: opts.resume as string | undefined,
        overwrite: opts.overwrite === true,
        signal: controller.signal,
        events: {
          log,
          onStep: (s) => progress.step(s),
          onEpoch: (r) => log(`epoch ${r.epoch}/${cfg.epochs}: train loss ${r.train_loss.toFixed(4)}, ${r.eval_top1 !== undefined ? `test top-1 ${pct(r.eval_top1)}, top-5 ${pct(r.eval_top5)}` : r.eval_loss !== undefined ? `test loss ${r.eval_loss.toFixed(4)}` : 'no held-out score (DINO: tessera eval --knn)'}` +
            `${r.ema_top1 !== undefined ? `, EMA top-1 ${pct(r.ema_top1)}` : ''}${r.robust_top1 !== undefined ? `, robust top-1 ${pct(r.robust_top1)}` : ''}` +
            `${r.skipped_files ? `, ${r.skipped_files} unreadable files skipped` : ''}, ${formatRate(r.images_per_second ?? 0)} img/s, ${formatDuration(r.seconds ?? 0)}`),
        },
      });
    } finally {
      progress.stop();
      process.off('SIGINT', onSigint);
    }
    if (result.status === 'interrupted') {
      process.stderr.write(`interrupted; resume with: npx tessera ${command} --resume ${result.runDir}\n`);
      process.exitCode = 130;
      return;
    }
    const last = result.metrics[result.metrics.length - 1];
    if (opts.json) {
      console.log(JSON.stringify({ runDir: result.runDir, epochs: result.metrics.length, top1: last?.eval_top1, top5: last?.eval_top5, loss: last?.eval_loss, emaTop1: last?.ema_top1 }));
    } else if (last?.eval_top1 === undefined) {
      console.log(`${last?.eval_loss === undefined ? '' : `test loss: ${last.eval_loss.toFixed(4)}; `}run saved in ${result.runDir}`);
    } else {
      console.log(`test accuracy: ${pct(last?.eval_top1)} (top-5 ${pct(last?.eval_top5)}); run saved in ${result.runDir}`);
    }
  }
}

const pct = (v?: number) => (v === undefined ? 'n/a' : `${(100 * v).toFixed(2)}%`);
