/**
 * `tessera pretrain` and `tessera eval --knn` as a user runs them on real Fashion-MNIST: an MAE run
 * writes train's run directory, its checkpoint gives k-NN accuracy, and `train --pretrained`
 * fine-tunes it as a ViT; the same for `--method dino`; bad values are one line with exit 2.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-pretrain-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const isolated = { HOME: join(dir, 'home'), TESSERA_DATASET_MIRROR: 'http://127.0.0.1:9/', TESSERA_DATA: '' };
const tiny = 'embed_dim=32,depth=2,num_heads=2,decoder_embed_dim=32,decoder_depth=1,decoder_num_heads=2';

describe('tessera pretrain → eval --knn → train --pretrained', () => {
  it('runs end to end', async () => {
    const run = join(dir, 'mae');
    const p = await runCli(['pretrain', '--epochs', '1', '--warmup-epochs', '0', '--train-limit', '256', '--eval-limit', '64', '--batch-size', '64', '--model-kwargs', tiny, '--output', run, '--json'], isolated);
    expect(p.code, p.stderr).toBe(0);
    for (const f of ['last.safetensors', 'best.safetensors', 'state.safetensors', 'metrics.jsonl', 'report.html']) expect(existsSync(join(run, f)), f).toBe(true);
    expect(JSON.parse(p.stdout.trim().split('\n').pop()!).loss).toBeGreaterThan(0);

    const k = await runCli(['eval', '--knn', '--checkpoint', join(run, 'last.safetensors'), '--limit', '200', '--json'], isolated);
    expect(k.code, k.stderr).toBe(0);
    const knn = JSON.parse(k.stdout.trim()).knn;
    expect(knn).toMatchObject({ k: 20, temperature: 0.07, trainImages: 200, testImages: 200 });
    expect(knn.top1).toBeGreaterThan(0.2); // 10 classes: chance is 0.1

    const ft = await runCli(['train', '--pretrained', join(run, 'last.safetensors'), '--model', 'vit_tiny_patch4_28', '--model-kwargs', 'global_pool=avg',
      '--epochs', '1', '--train-limit', '128', '--eval-limit', '64', '--batch-size', '64', '--layer-decay', '0.75', '--output', join(dir, 'ft'), '--json'], isolated);
    expect(ft.code, ft.stderr).toBe(0);
    expect(ft.stderr).toMatch(/initialised fresh/);

    const bad = await runCli(['pretrain', '--mask-ratio', '1.5'], isolated);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  }, 240_000);

  it('--method dino runs end to end with its recipe, and its backbone fine-tunes', async () => {
    const run = join(dir, 'dino');
    const kw = 'embed_dim=32,depth=2,num_heads=2,out_dim=64,hidden_dim=32,bottleneck_dim=16';
    const p = await runCli(['pretrain', '--method', 'dino', '--epochs', '1', '--warmup-epochs', '0', '--train-limit', '128', '--eval-limit', '32', '--batch-size', '32',
      '--local-crops', '2', '--model-kwargs', kw, '--output', run], isolated);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stderr).toMatch(/no held-out score/);
    for (const f of ['last.safetensors', 'state.safetensors', 'metrics.jsonl', 'report.html']) expect(existsSync(join(run, f)), f).toBe(true);
    // the saved config is DINO's recipe where the command line gave nothing
    const saved = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8'));
    expect(saved).toMatchObject({ model: 'dino_vit_tiny_patch4_28', method: 'dino', lr: 5e-4, weightDecay: 0.04, weightDecayEnd: 0.4, clipGrad: 3, dropPath: 0.1, localCrops: 2, freezeLastLayer: 1, teacherTemp: 0.04, momentumTeacher: 0.996 });

    const k = await runCli(['eval', '--knn', '--checkpoint', join(run, 'last.safetensors'), '--limit', '100', '--json'], isolated);
    expect(k.code, k.stderr).toBe(0);
    expect(JSON.parse(k.stdout.trim()).knn).toMatchObject({ k: 20, trainImages: 100, testImages: 100 });

    const ft = await runCli(['train', '--pretrained', join(run, 'last.safetensors'), '--model', 'vit_tiny_patch4_28',
      '--epochs', '1', '--train-limit', '64', '--eval-limit', '32', '--batch-size', '32', '--output', join(dir, 'dino-ft'), '--json'], isolated);
    expect(ft.code, ft.stderr).toBe(0);

    const bad = await runCli(['pretrain', '--method', 'dino', '--local-crops', '-1'], isolated);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  }, 120_000);
});
