/**
 * `tessera torchrun` for every family timm has. The golden (scripts/make_timm_job_fixture.py, timm
 * aa4b5850, Debian torch 1.13) ran timm's parser on the command written for a perturbed
 * checkpoint of each family, built the model as train.py does, loaded the written
 * pretrained.safetensors with load_state_dict(strict=True) and stored its logits and timm's
 * layer-decay LR scales. Here the same checkpoint is rebuilt, the same command must come out,
 * the written file must hold exactly timm's keys and dtypes and give timm's logits in tessera,
 * and tessera's layer decay must scale each parameter as timm's param_groups_layer_decay does.
 * Families timm lacks are refused in one line.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, metaFor, saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { createModel } from '../../src/models/registry.js';
import { Random } from '../../src/random.js';
import { parseSafetensors } from '../../src/checkpoint/safetensors.js';
import { parseTorchFile } from '../../src/checkpoint/torch_file.js';
import { compile } from '../../src/runtime/compile.js';
import { layerDecayScales } from '../../src/train/finetune.js';
import { runCli } from '../helpers/cli.js';
import { deterministicInput, maxAbsDiff } from '../helpers/fixtures.js';
import { FAMILY_CASES, writeFamilyCheckpoint, type FamilyCase } from '../helpers/timm_families.js';

interface FamilyGolden {
  case: FamilyCase; flags: string[]; command: string[]; timm_model: string; model_kwargs: Record<string, unknown>;
  drop_path: number; layer_decay: number; gp: string | null;
  state_dict: Record<string, { shape: number[]; dtype: string }>; input_shape: number[]; logits: number[]; lr_scale: Record<string, number>;
  drop_path_rates: number[];
}
const golden = JSON.parse(readFileSync(new URL('../fixtures/timm_job/families.json', import.meta.url), 'utf8')) as {
  cases: FamilyGolden[]; mae_encoder: { command: string[]; missing: string[]; unexpected: string[] };
};
const dir = mkdtempSync(join(tmpdir(), 'tessera-timm-families-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const DTYPE: Record<string, string> = { F32: 'float32', I64: 'int64' };

describe('tessera torchrun: every family timm has', () => {
  it('the golden covers every case', () => {
    expect(golden.cases.map((g) => g.case.model)).toEqual(FAMILY_CASES.map((c) => c.model));
    expect(new Set(FAMILY_CASES.map((c) => c.family))).toEqual(new Set(['swin', 'convit', 'mobilevit', 'vit']));
  });

  it.each(golden.cases.map((g) => [g.case.model, g] as const))('%s: timm\'s command, a strict timm checkpoint, timm\'s logits and layer-decay scales', async (name, g) => {
    const ckpt = join(dir, `${name}.safetensors`);
    const model = writeFamilyCheckpoint(g.case, ckpt);
    const out = join(dir, `job-${name}`);
    const r = await runCli(['torchrun', '--pretrained', ckpt, '--write', out, ...g.flags, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const job = JSON.parse(r.stdout);
    // the same command timm parsed (the --pretrained-path differs only by the temporary directory)
    const flat: string[] = job.args.flat();
    const at = flat.indexOf('--pretrained-path');
    expect(flat.filter((_, i) => i !== at + 1)).toEqual(g.command.filter((_, i) => i !== g.command.indexOf('--pretrained-path') + 1));
    expect(g.timm_model).toBe(g.case.timm);
    expect(g.drop_path).toBe(0.1);
    expect(g.layer_decay).toBe(0.75);
    expect(g.model_kwargs.img_size).toBe(model.config.imgSize);

    // the converted start: timm's state_dict keys, shapes and dtypes (BatchNorm counts int64), strict in the golden
    const file = parseSafetensors(readFileSync(join(out, 'pretrained.safetensors')), 'pretrained.safetensors');
    const written = Object.fromEntries([...file.tensors].map(([k, t]) => [k, { shape: t.shape, dtype: DTYPE[t.dtype] ?? t.dtype }]));
    expect(written).toEqual(g.state_dict);

    // timm's logits from tessera's reading of the same file
    const { model: loaded } = loadCheckpoint(join(out, 'pretrained.safetensors'));
    const [b, c, h, w] = g.input_shape as [number, number, number, number];
    const exe = await compile((x) => loaded.forward(x).logits, [{ name: 'x', shape: ['batch', c, h, w] }], { params: 'initializers', threads: 1 });
    try {
      const logits = (await exe.run({ x: deterministicInput(b * c * h * w) })).output!.data as Float32Array;
      expect(logits.length).toBe(g.logits.length);
      expect(maxAbsDiff(logits, g.logits)).toBeLessThanOrEqual(1e-4);
    } finally {
      await exe.dispose();
    }

    // --layer-decay groups parameters as timm's group_matcher does
    const scales = layerDecayScales(model, g.layer_decay);
    expect([...scales.keys()].sort()).toEqual(Object.keys(g.lr_scale).sort());
    for (const [k, s] of scales) expect(s, k).toBeCloseTo(g.lr_scale[k]!, 6);

    // --drop-path: each residual branch at timm's rate. A drawn keep mask is 0 or 1/(1 − rate), so
    // one kept sample per branch reads the rate back exactly
    const noisy = createModel(g.case.model, { ...g.case.overrides, dropPathRate: g.drop_path });
    const input = noisy.noiseInputs().find((n) => n.name === 'drop_path')!;
    const batch = 64;
    const masks = input.draw(new Random(1), batch);
    const rates = Array.from({ length: input.perSample }, (_, j) => {
      const kept = Array.from({ length: batch }, (_, b) => masks[b * input.perSample + j]!).find((v) => v > 0)!;
      return 1 - 1 / kept;
    });
    expect(rates.length).toBe(g.drop_path_rates.length);
    rates.forEach((r, j) => expect(r, `branch ${j}`).toBeCloseTo(g.drop_path_rates[j]!, 5));
  }, 90_000);

  it('launch.sh hands train.py exactly the job\'s arguments (kwargs with parentheses quoted for sh); MobileViT on many GPUs notes --sync-bn', async () => {
    const g = golden.cases.find((x) => x.case.family === 'swin')!;
    const ckpt = join(dir, 'launch-swin.safetensors');
    writeFamilyCheckpoint(g.case, ckpt);
    const out = join(dir, 'launch-job');
    expect((await runCli(['torchrun', '--pretrained', ckpt, '--write', out, '--nproc-per-node', '2'])).code).toBe(0);
    // a stand-in torchrun that prints what it was given, one argument per line
    const bin = join(dir, 'bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'torchrun'), '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n');
    chmodSync(join(bin, 'torchrun'), 0o755);
    const run = spawnSync(join(out, 'launch.sh'), ['--log-interval', '10'], { env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, TIMM_TRAIN: 'train.py' }, encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    const given = run.stdout.split('\n').slice(0, -1);
    const job = JSON.parse(readFileSync(join(out, 'job.json'), 'utf8'));
    expect(given.slice(given.indexOf('train.py') + 1)).toEqual([...job.args.flat(), '--log-interval', '10']);
    expect(given).toContain('depths=(2,4)');
    expect(given.slice(0, 4)).toEqual(['--nnodes', '1', '--nproc_per_node', '2']);
    const mv = await runCli(['torchrun', '--model', 'mobilevit_xxs', '--nproc-per-node', '4']);
    expect(mv.stderr).toContain("note: MobileViT's BatchNorm statistics are per GPU (timm's default); add --sync-bn to synchronise them");
  }, 60_000);

  it('convert --to timm: a .pth with timm\'s keys and int64 BatchNorm counts, a hub directory whose model_args build the family; CvT refused', async () => {
    const g = golden.cases.find((x) => x.case.model === 'mobilevit_xxs')!;
    const ckpt = join(dir, 'convert-mobilevit.safetensors');
    writeFamilyCheckpoint(g.case, ckpt);
    const pth = join(dir, 'mobilevit.pth');
    const r = await runCli(['convert', '--checkpoint', ckpt, '--to', 'timm', '--out', pth]);
    expect(r.code, r.stderr).toBe(0);
    const tensors = parseTorchFile(readFileSync(pth), pth);
    expect(Object.fromEntries([...tensors].map(([k, t]) => [k, { shape: t.shape, dtype: DTYPE[t.dtype] ?? t.dtype }]))).toEqual(g.state_dict);
    expect(new BigInt64Array(tensors.get('stem.bn.num_batches_tracked')!.bytes.slice().buffer)[0]).toBe(7n);
    const swin = golden.cases.find((x) => x.case.family === 'swin')!;
    const swinCkpt = join(dir, 'convert-swin.safetensors');
    writeFamilyCheckpoint(swin.case, swinCkpt);
    const hub = join(dir, 'swin-hub');
    expect((await runCli(['convert', '--checkpoint', swinCkpt, '--to', 'timm', '--out', hub])).code).toBe(0);
    const config = JSON.parse(readFileSync(join(hub, 'config.json'), 'utf8'));
    expect(config.architecture).toBe('swin_tiny_patch4_window7_224');
    expect(config.model_args).toEqual({ in_chans: 1, num_classes: 10, ...swin.model_kwargs });
    expect(config.pretrained_cfg).toMatchObject({ first_conv: 'patch_embed.proj', classifier: 'head.fc' });
    const cvt = join(dir, 'cvt.safetensors');
    const m = createModel('cvt_nano_28');
    saveCheckpoint(cvt, m, metaFor('cvt_nano_28', m, Array.from({ length: 10 }, (_, i) => String(i))));
    const bad = await runCli(['convert', '--checkpoint', cvt, '--to', 'timm', '--out', join(dir, 'cvt-timm.pth')]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--to timm \(cvt_nano_28\): timm cannot build the cvt family: timm has no CvT/);
    expect(existsSync(join(dir, 'cvt-timm.pth'))).toBe(false);
  }, 60_000);

  it('an MAE start fine-tunes as its encoder: a ViT job of the encoder\'s sizes, and only the encoder\'s weights (timm: head missing, nothing unexpected)', async () => {
    const mae = createModel('mae_vit_tiny_patch4_28', { seed: 3 });
    const ckpt = join(dir, 'mae.safetensors');
    saveCheckpoint(ckpt, mae, metaFor('mae_vit_tiny_patch4_28', mae, []));
    const out = join(dir, 'job-mae');
    const r = await runCli(['torchrun', '--pretrained', ckpt, '--model', 'vit_tiny_patch4_28', '--write', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const flat: string[] = JSON.parse(r.stdout).args.flat();
    const g = golden.mae_encoder;
    const at = flat.indexOf('--pretrained-path');
    expect(flat.filter((_, i) => i !== at + 1)).toEqual(g.command.filter((_, i) => i !== g.command.indexOf('--pretrained-path') + 1));
    expect(g.missing).toEqual(['head.bias', 'head.weight']);
    expect(g.unexpected).toEqual([]);
    const written = parseSafetensors(readFileSync(join(out, 'pretrained.safetensors')), 'pretrained.safetensors').tensors;
    const src = new Map(mae.namedState());
    expect([...written.keys()].filter((k) => k.startsWith('decoder') || k === 'mask_token' || k.startsWith('head'))).toEqual([]);
    for (const [k, t] of written) expect(Buffer.from(t.bytes).equals(Buffer.from(src.get(k)!.data.buffer, src.get(k)!.data.byteOffset, src.get(k)!.data.byteLength)), k).toBe(true);
  }, 30_000);

  it.each([
    ['cvt_nano_28', /--model cvt_nano_28: timm cannot build the cvt family: timm has no CvT/],
    ['clip_ViT_B_32', /--model clip_ViT_B_32: timm cannot build the clip family: .*open_clip/],
    ['vit_tiny_convstem_patch4_28', /--model vit_tiny_convstem_patch4_28: the 3×3-conv stem has no timm equivalent/],
    ['mae_vit_base_patch16', /--model mae_vit_base_patch16: timm cannot build the mae family: timm's train.py has no masked-autoencoder pretraining/],
    ['mobilevit_xxs_28', /--model mobilevit_xxs_28: timm builds MobileViT from its named block configs only \(mobilevit_xxs, .*mobilevitv2_200\)/],
  ])('--model %s is refused in one line that says why', async (model, message) => {
    const r = await runCli(['torchrun', '--model', model]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
  }, 30_000);
});
