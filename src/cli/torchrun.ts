/**
 * `tessera torchrun`: the `tessera train` recipe (same flags) as a job for timm's train.py under
 * torchrun, for training on many GPUs. Prints the launcher; `--write DIR` writes it with the
 * job as JSON and, for --pretrained, the start weights as a timm checkpoint.
 */
import { chmodSync, existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { makeDir, writeFileAtomic } from '../checkpoint/atomic.js';
import { exportCheckpoint } from '../checkpoint/convert.js';
import { foreignMeta, loadForeignCheckpoint, type ForeignCheckpoint } from '../checkpoint/layouts.js';
import { getFamily } from '../models/model.js';
import { createFromConfig, getModelEntry } from '../models/registry.js';
import type { VitConfig } from '../models/vit.js';
import { launcherScript, timmJob, unsupportedLine, type TimmJobOptions } from '../train/timm_job.js';
import { UsageError } from './output.js';
import { positiveInt } from './parse.js';
import { addTrainOptions, configFromOptions } from './train.js';

/** train's command-level options that do not describe the recipe, and why a timm job has no use for them. */
export const COMMAND_ONLY_FLAGS: Record<string, string | undefined> = {
  config: undefined, // read: its keys are the recipe
  json: undefined, // prints the job as JSON
  resume: 'a timm run resumes with its own --resume <output>/<experiment>/last.pth.tar',
  overwrite: 'timm names each run directory afresh (--experiment)',
};

export function registerTorchrunCommand(program: Command): void {
  const cmd = addTrainOptions(program.command('torchrun')
    .description("write the `tessera train` recipe (same flags) as a torchrun job for timm's train.py: many GPUs, many nodes"))
    .option('--nproc-per-node <n>', 'GPUs (processes) per node', positiveInt('--nproc-per-node'), 1)
    .option('--nnodes <n>', 'nodes', positiveInt('--nnodes'), 1)
    .option('--write <dir>', 'write launch.sh, job.json and (with --pretrained) pretrained.safetensors there');
  cmd.action((opts: Record<string, unknown>) => {
    const cfg = configFromOptions(opts);
    const o: TimmJobOptions = { nprocPerNode: opts.nprocPerNode as number, nnodes: opts.nnodes as number };
    const dir = opts.write ? resolve(opts.write as string) : undefined;
    const pretrained = cfg.pretrained ? asEncoderStart(loadForeignCheckpoint(cfg.pretrained), cfg.model) : undefined;
    if (pretrained) {
      o.pretrainedFile = join(dir ?? '.', 'pretrained.safetensors');
      o.pretrainedMeta = foreignMeta(pretrained);
    }
    if (!/^(fashion-mnist|mnist|cifar10|cifar100)$/.test(cfg.dataset) && !/\.(csv|jsonl)$/i.test(cfg.dataset)) o.datasetClasses = countClassFolders(cfg.dataset);
    const job = timmJob(cfg, o);
    if (o.datasetClasses !== undefined && !['val', 'validation'].some((v) => existsSync(join(cfg.dataset, v)))) {
      job.unsupported.push({ flag: '--dataset', reason: `${cfg.dataset} has no val/ folder and timm does not hold one out (tessera's --val-split); it would evaluate on the training images` });
    }
    for (const [flag, reason] of Object.entries(COMMAND_ONLY_FLAGS)) if (reason && opts[flag] !== undefined) job.unsupported.push({ flag: `--${flag}`, reason });
    const script = launcherScript(job, o);
    if (dir) {
      makeDir(dir);
      if (pretrained) exportCheckpoint(pretrained, 'timm', o.pretrainedFile!);
      writeFileAtomic(join(dir, 'job.json'), `${JSON.stringify({ ...job, torchrun: { ...o, pretrainedMeta: undefined } }, null, 1)}\n`);
      writeFileAtomic(join(dir, 'launch.sh'), script);
      chmodSync(join(dir, 'launch.sh'), 0o755);
    }
    if (opts.json) console.log(JSON.stringify({ ...job, torchrun: { ...o, pretrainedMeta: undefined }, ...(dir ? { dir } : {}) }));
    else process.stdout.write(script);
    const line = unsupportedLine(job);
    if (line) process.stderr.write(`${line}\n`);
    for (const n of job.notes) process.stderr.write(`note: ${n}\n`);
    if (dir) process.stderr.write(`wrote ${join(dir, 'launch.sh')}${cfg.pretrained ? `, ${o.pretrainedFile}` : ''} and job.json; global batch ${job.globalBatch}, peak LR ${job.lr}\n`);
  });
}

/** An image folder's classes as timm's ImageFolder reader finds them: the subfolders of train/ (or of the folder). */
function countClassFolders(root: string): number {
  const dirs = (p: string) => { try { return readdirSync(p).filter((n) => statSync(join(p, n)).isDirectory()); } catch { throw new UsageError(`--dataset ${root}: expected a built-in name or an image folder`); } };
  const top = dirs(root);
  return top.includes('train') ? dirs(join(root, 'train')).length : top.length;
}

/**
 * Pretraining weights (an MAE run) start the job as their encoder, as `tessera train` fine-tunes
 * them: --model's family with the encoder's sizes, and only the encoder's weights (no decoder,
 * no head), so the timm checkpoint is a plain ViT's.
 */
function asEncoderStart(fc: ForeignCheckpoint, model: string): ForeignCheckpoint {
  const meta = foreignMeta(fc);
  const encoder = getFamily(meta.family ?? 'vit').encoder;
  const entry = getModelEntry(model);
  if (!encoder || encoder.family !== entry.family) return fc;
  const target = createFromConfig(entry.family, { ...getFamily(entry.family).defaults, ...entry.config, ...encoder.config(meta.config) });
  const heads = new Set(target.headKeys());
  const own = new Set(target.namedState().map(([k]) => k).filter((k) => !heads.has(k)));
  const stateDict = Object.fromEntries(Object.entries(fc.stateDict).filter(([k]) => own.has(k)));
  const missing = [...own].filter((k) => !(k in stateDict));
  if (missing.length) throw new UsageError(`--pretrained ${fc.source}: its encoder lacks ${missing.slice(0, 5).join(', ')} of --model ${model}`);
  return { ...fc, family: entry.family, config: target.config as unknown as VitConfig, stateDict, modelName: model, classNames: undefined };
}
