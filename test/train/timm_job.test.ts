/**
 * `tessera torchrun`: the train recipe as a timm train.py job. The golden is timm's own parser's
 * reading of the generated commands (scripts/make_timm_job_fixture.py, timm
 * aa4b5850c1543fa488abf260f18390eda46cf85d); here every parsed value is checked against the recipe.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { metaFor, saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import { buildProgram } from '../../src/cli/main.js';
import { COMMAND_ONLY_FLAGS } from '../../src/cli/torchrun.js';
import { addTrainOptions, configFromOptions } from '../../src/cli/train.js';
import { createModel } from '../../src/models/registry.js';
import { resolveTrainConfig, snake, trainConfigSchema, type TrainConfig } from '../../src/train/config.js';
import { TIMM_RULES, timmJob, unsupportedLine } from '../../src/train/timm_job.js';
import { runCli } from '../helpers/cli.js';

const fixture = JSON.parse(readFileSync(new URL('../fixtures/timm_job/parsed_args.json', import.meta.url), 'utf8')) as {
  timm_commit: string; cases: { tessera: string[]; command: string[]; parsed: Record<string, any> }[];
};
const dir = mkdtempSync(join(tmpdir(), 'tessera-torchrun-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The recipe and torchrun sizes a tessera command line describes, read with train's own options. */
function recipeOf(flags: string[]): { cfg: TrainConfig; world: number } {
  const cmd = addTrainOptions(new Command('x').exitOverride()).option('--nproc-per-node <n>', '', Number, 1).option('--nnodes <n>', '', Number, 1);
  cmd.parse(flags, { from: 'user' });
  const o = cmd.opts();
  return { cfg: configFromOptions(o), world: o.nprocPerNode * o.nnodes };
}

/** Keys timm spells as tessera does (snake_case of the camelCase key) with the same meaning. */
const SAME = ['epochs', 'batchSize', 'weightDecay', 'momentum', 'warmupLr', 'minLr', 'decayEpochs', 'smoothing', 'hflip', 'vflip', 'reprob', 'remode',
  'dropPath', 'drop', 'gradAccumSteps', 'modelEma', 'seed', 'mixup', 'cutmix', 'mixupProb', 'mixupSwitchProb', 'mixupMode', 'trainInterpolation'] as const;

describe('tessera torchrun', () => {
  it.each(fixture.cases.map((c, i) => [i, c] as const))('recipe %i: the command timm parsed is the one tessera writes, and each value lands where it should', async (_i, c) => {
    const r = await runCli(['torchrun', '--json', ...c.tessera]);
    expect(r.code, r.stderr).toBe(0);
    const job = JSON.parse(r.stdout);
    expect(job.args.flat()).toEqual(c.command);
    const { cfg, world } = recipeOf(c.tessera);
    const p = c.parsed;
    for (const k of SAME) expect(p[snake(k)], k).toEqual(cfg[k]);
    expect(p.validation_batch_size).toBe(cfg.evalBatchSize);
    // timm's rule: lr = lr_base · global batch / lr_base_size, global = batch · world · accum
    const timmLr = p.lr_base * (p.batch_size * world * p.grad_accum_steps) / p.lr_base_size;
    expect(p.lr).toBeNull();
    expect(p.lr_base_scale).toBe('linear');
    expect(timmLr).toBeCloseTo(cfg.lr * world, 12);
    expect(job.lr).toBeCloseTo(timmLr, 12);
    expect(p.sched_on_updates).toBe(true);
    expect(p.warmup_epochs).toBe(Math.ceil(cfg.warmupEpochs));
    expect(p.opt).toBe(cfg.opt === 'adamw' ? 'adamw' : cfg.nesterov ? 'sgd' : 'momentum');
    expect(p.sched).toBe(cfg.sched === 'cosine' ? 'cosine' : 'step');
    expect(p.decay_rate).toBe(cfg.sched === 'constant' ? 1 : cfg.decayRate);
    expect(p.clip_grad).toBe(cfg.clipGrad ?? null);
    expect(p.layer_decay).toBe(cfg.layerDecay ?? null);
    expect(p.aa).toBe(cfg.aa ?? null);
    expect(p.cutmix_minmax).toEqual(cfg.cutmixMinmax ?? null);
    if (cfg.modelEma) expect(p.model_ema_decay).toBe(cfg.modelEmaDecay);
    // the architecture tessera would build for this recipe
    const m = createModel(cfg.model, { ...cfg.modelKwargs, ...(cfg.imgSize ? { imgSize: cfg.imgSize } : {}), inChans: p.in_chans }).config;
    // the image size as a kwarg (train.py builds the model without its --img-size); global_pool as --gp, which train.py passes itself
    expect(p.model_kwargs).toEqual({ img_size: m.imgSize, patch_size: m.patchSize, embed_dim: m.embedDim, depth: m.depth, num_heads: m.numHeads, mlp_ratio: m.mlpRatio,
      qkv_bias: m.qkvBias, class_token: m.classToken, no_embed_class: m.noEmbedClass });
    expect(p.gp).toBe(m.globalPool);
    expect(p.input_size).toEqual([m.inChans, m.imgSize, m.imgSize]);
    expect(p.num_classes).toBe(cfg.dataset === 'cifar100' ? 100 : 10);
    expect(p.dataset).toBe({ 'fashion-mnist': 'torch/fashion_mnist', cifar100: 'torch/cifar100' }[cfg.dataset]);
  }, 30_000);

  it('the second recipe names the flags timm has no equivalent for, in one line', async () => {
    const r = await runCli(['torchrun', ...fixture.cases[1]!.tessera]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('not translated'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('--threads (');
    expect(lines[0]).toContain('--crop-padding (');
    expect(r.stdout).toMatch(/^#!\/bin\/sh\n/);
    expect(r.stdout).toContain('exec torchrun \\\n  --nnodes 1 --nproc_per_node 8');
  }, 30_000);

  it('walks every option of `tessera train --help`: each is translated by a rule or reported when set', () => {
    const train = buildProgram().commands.find((c) => c.name() === 'train')!;
    const keys = train.options.map((o) => o.attributeName());
    expect(keys.length).toBeGreaterThan(60);
    for (const key of keys) {
      if (key in COMMAND_ONLY_FLAGS) continue;
      expect(key in trainConfigSchema.shape, `--${key} is neither a recipe key nor a command flag torchrun knows`).toBe(true);
      expect(typeof TIMM_RULES[key as keyof TrainConfig], key).toBe('function');
    }
    // every key that can lack an equivalent is reported when set away from what timm does anyway
    const unsupportedWhenSet: Record<string, unknown> = {
      method: 'adversarial', cropPadding: 4, trainLimit: 100, evalLimit: 100, threads: 2, classes: [1, 2], freeze: 'backbone', unfreezeSchedule: 2,
      valSplit: 0.2, strict: true, colorJitter: [0.4, 0.4, 0.4], adv: 'pgd', advEps: 0.1, advAlpha: 0.01, advSteps: 3, advNorm: 'l2', advEvalImages: 10,
      loss: 'focal', classWeights: 'balanced', sampler: 'balanced',
    };
    const cfg = resolveTrainConfig(unsupportedWhenSet);
    const job = timmJob(cfg, { nprocPerNode: 1, nnodes: 1 });
    expect(job.unsupported.map((u) => u.flag).sort()).toEqual(Object.keys(unsupportedWhenSet).map((k) => `--${k.replace(/[A-Z]/g, (ch) => `-${ch.toLowerCase()}`)}`).sort());
    expect(unsupportedLine(job).split('\n')).toHaveLength(1);
    // and at the defaults nothing is lost
    expect(timmJob(resolveTrainConfig({}), { nprocPerNode: 1, nnodes: 1 }).unsupported).toEqual([]);
  });

  it('an image folder: classes counted from train/, and a folder without val/ is reported (timm would evaluate on training images)', async () => {
    const root = join(dir, 'images');
    for (const c of ['cat', 'dog']) mkdirSync(join(root, 'train', c), { recursive: true });
    const r = await runCli(['torchrun', '--dataset', root, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const flat: string[] = JSON.parse(r.stdout).args.flat();
    expect(flat.slice(flat.indexOf('--num-classes'), flat.indexOf('--num-classes') + 2)).toEqual(['--num-classes', '2']);
    expect(flat.slice(flat.indexOf('--data-dir'), flat.indexOf('--data-dir') + 2)).toEqual(['--data-dir', root]);
    expect(r.stderr).toMatch(/^not translated \(no timm equivalent\): --dataset \(.* has no val\/ folder/m);
  }, 30_000);

  it('--write DIR: launch.sh, job.json, and --pretrained (its own architecture, as train keeps it) as a timm checkpoint with the same tensors', async () => {
    const model = createModel('vit_tiny_patch4_28', { seed: 5, embedDim: 48, depth: 2 });
    const ckpt = join(dir, 'start.safetensors');
    saveCheckpoint(ckpt, model, metaFor('vit_tiny_patch4_28', model, ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']));
    const out = join(dir, 'job');
    const r = await runCli(['torchrun', '--pretrained', ckpt, '--write', out, '--nproc-per-node', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(join(out, 'launch.sh')).mode & 0o111).toBeTruthy();
    const job = JSON.parse(readFileSync(join(out, 'job.json'), 'utf8'));
    const flat = job.args.flat();
    expect(flat).toContain('--pretrained');
    expect(flat).toEqual(expect.arrayContaining(['embed_dim=48', 'depth=2', 'num_heads=3']));
    expect(flat[flat.indexOf('--pretrained-path') + 1]).toBe(join(out, 'pretrained.safetensors'));
    // fine-tuning defaults applied as in train
    expect(flat[flat.indexOf('--lr-base') + 1]).toBe('0.0005');
    const src = readSafetensors(ckpt).tensors;
    const conv = readSafetensors(join(out, 'pretrained.safetensors')).tensors;
    expect([...conv.keys()].sort()).toEqual([...src.keys()].sort());
    for (const [k, t] of src) expect(Buffer.from(conv.get(k)!.bytes).equals(Buffer.from(t.bytes)), k).toBe(true);
  }, 30_000);
});
