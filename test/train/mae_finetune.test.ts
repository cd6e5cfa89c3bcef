/**
 * MAE weights fine-tune as a timm ViT with MAE's recipe (global average pool + fc_norm): the
 * official-layout fixture of scripts/mae_ref.py loads into an avg-pool ViT (encoder keys taken,
 * decoder keys ignored, fc_norm and head fresh), and a tessera MAE checkpoint given to
 * `--pretrained` with a vit `--model` builds that ViT with the MAE encoder's weights.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { VisionTransformer } from '../../src/models/vit.js';
import { createModel } from '../../src/models/registry.js';
import { applyPretrained } from '../../src/train/finetune.js';
import { buildModel } from '../../src/train/build_model.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { metaFor, saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { readTensorFixture } from '../helpers/fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-mae-ft-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('fine-tuning MAE weights as a ViT', () => {
  it('the official layout loads into an avg-pool ViT: encoder weights taken, fc_norm and head fresh', () => {
    const fx = readTensorFixture('mae_goldens.safetensors');
    const state = Object.fromEntries([...fx].filter(([k]) => !/^(input|ref|grad)\./.test(k)));
    const vit = new VisionTransformer({ imgSize: 8, patchSize: 2, inChans: 2, embedDim: 8, depth: 2, numHeads: 2, mlpRatio: 2, globalPool: 'avg', numClasses: 3 });
    const freshHead = Float32Array.from(vit.stateDict()['head.weight']!.data);
    const logs: string[] = [];
    applyPretrained(vit, { source: 'mae.pth', state }, (m) => logs.push(m));
    const sd = vit.stateDict();
    for (const k of ['cls_token', 'pos_embed', 'patch_embed.proj.weight', 'blocks.1.mlp.fc2.weight', 'blocks.0.attn.qkv.bias']) expect(Array.from(sd[k]!.data)).toEqual(Array.from(state[k]!.data));
    expect(Array.from(sd['fc_norm.weight']!.data)).toEqual(new Array(8).fill(1));
    expect(Array.from(sd['head.weight']!.data)).toEqual(Array.from(freshHead));
    expect(logs.join('\n')).toMatch(/has no head\.weight, head\.bias, fc_norm\.weight, fc_norm\.bias|has no .*fc_norm/);
    expect(Object.keys(sd).some((k) => k.startsWith('decoder'))).toBe(false);
  });

  it('train --pretrained <MAE checkpoint> --model vit_tiny_patch4_28 builds the ViT from the encoder', async () => {
    const mae = createModel('mae_vit_tiny_patch4_28');
    const path = join(dir, 'mae.safetensors');
    saveCheckpoint(path, mae, metaFor('mae_vit_tiny_patch4_28', mae, []));
    const cfg = resolveTrainConfig({ model: 'vit_tiny_patch4_28', pretrained: path, modelKwargs: { global_pool: 'avg' } });
    const { model } = await buildModel(cfg, 10, [1, 28, 28], () => {});
    expect(model.family).toBe('vit');
    expect(model.numClasses).toBe(10);
    const sd = model.stateDict();
    expect(sd['fc_norm.weight']).toBeDefined();
    expect(Array.from(sd['blocks.5.attn.proj.weight']!.data)).toEqual(Array.from(mae.stateDict()['blocks.5.attn.proj.weight']!.data));
    expect(Array.from(sd.pos_embed!.data)).toEqual(Array.from(mae.stateDict().pos_embed!.data));
  });
});
