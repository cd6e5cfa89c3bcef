/**
 * tessera → convert --to timm|hf|torchvision → load back: the same logits, class names and
 * preprocessing; layouts that cannot hold a model say why; the `convert` command.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadCheckpoint, saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { convertCheckpoint, exportCheckpoint } from '../../src/checkpoint/convert.js';
import { foreignMeta, loadForeignCheckpoint, type LayoutName } from '../../src/checkpoint/layouts.js';
import { readTensorFile } from '../../src/checkpoint/layout_common.js';
import { VisionTransformer } from '../../src/models/vit.js';
import { registerConvertCommand } from '../../src/cli/convert.js';
import { goldens, layoutFixture, logitsOf, maxAbsDiff, removeTempDirs, tempDir } from './layout_helpers.js';

let dir: string;
let tessera: string;
const g = goldens.timm;

beforeAll(() => {
  dir = tempDir();
  // a tessera checkpoint: the timm fixture's weights with tessera metadata
  const src = loadForeignCheckpoint(layoutFixture('timm'));
  const model = new VisionTransformer(src.config);
  model.loadStateDict(src.stateDict, true);
  tessera = join(dir, 'tessera.safetensors');
  saveCheckpoint(tessera, model, foreignMeta(src));
});
afterAll(removeTempDirs);

/** layout, output, files written, whether the output keeps the class names and heads (state-dict-only files do not) */
const targets: [LayoutName, string, number, boolean][] = [
  ['hf', 'hf_dir', 3, true],
  ['torchvision', 'tv.pth', 1, false],
  ['torchvision', 'tv.safetensors', 1, false],
  ['timm', 'timm.safetensors', 1, true],
  ['timm', 'timm.pth', 1, false],
  ['timm', 'timm_dir', 2, true],
];

describe('round trip through every layout', () => {
  for (const [layout, out, fileCount, described] of targets) {
    it(`${layout} → ${out}`, async () => {
      const path = join(dir, out);
      const result = convertCheckpoint(tessera, layout, path);
      expect(result.files).toHaveLength(fileCount);
      const back = loadForeignCheckpoint(path, { numHeads: described ? undefined : 2 });
      expect(back.layout).toBe(layout);
      expect(back.config).toMatchObject(g.config);
      expect(maxAbsDiff(await logitsOf(back.config, back.stateDict, g.input_shape), g.logits)).toBeLessThanOrEqual(1e-4);
      if (described) expect(back.classNames?.[9]).toBe('class_9');
    });
  }

  it('hf writes the keys, config and preprocessing transformers expects', () => {
    const out = join(dir, 'hf_check');
    convertCheckpoint(tessera, 'hf', out);
    expect(readdirSync(out).sort()).toEqual(['config.json', 'model.safetensors', 'preprocessor_config.json']);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ architectures: ['ViTForImageClassification'], model_type: 'vit', hidden_size: 32, num_attention_heads: 2, intermediate_size: 64, layer_norm_eps: 1e-6, image_size: 32, patch_size: 8 });
    expect(config.id2label['9']).toBe('class_9');
    const keys = [...readTensorFile(join(out, 'model.safetensors')).tensors.keys()];
    const want = Object.keys(JSON.parse(readFileSync(layoutFixture('hf/model.safetensors')).subarray(8, 8 + Number(readFileSync(layoutFixture('hf/model.safetensors')).readBigUInt64LE(0))).toString()));
    expect(keys.sort()).toEqual(want.filter((k) => k !== '__metadata__').sort());
    const pre = JSON.parse(readFileSync(join(out, 'preprocessor_config.json'), 'utf8'));
    expect(pre).toMatchObject({ image_mean: [0.4, 0.5, 0.6], image_std: [0.2, 0.25, 0.3], size: { height: 32, width: 32 }, resample: 2, crop_pct: 0.95 });
  });

  it('the Hugging Face checkpoint converts to torchvision and back with eps 1e-12 kept where the layout can say it', async () => {
    const tv = join(dir, 'from_hf.pth');
    convertCheckpoint(layoutFixture('hf'), 'torchvision', tv);
    const back = loadForeignCheckpoint(tv, { numHeads: 4 });
    // torchvision's LayerNorm eps is 1e-6: the difference from 1e-12 is far below the tolerance
    expect(maxAbsDiff(await logitsOf(back.config, back.stateDict, goldens.hf.input_shape), goldens.hf.logits)).toBeLessThanOrEqual(1e-4);
    const hf = join(dir, 'hf_again');
    convertCheckpoint(layoutFixture('hf'), 'hf', hf);
    expect(loadForeignCheckpoint(hf).config.eps).toBe(1e-12);
  });

  it('a converted file is a checkpoint eval/predict can open', () => {
    const { meta } = loadCheckpoint(join(dir, 'timm.safetensors'));
    expect(meta.classNames[0]).toBe('class_0');
    expect(meta.mean).toEqual([0.4, 0.5, 0.6]);
  });
});

describe('layouts that cannot hold the model', () => {
  it('average pooling and no_embed_class have no Hugging Face or torchvision form', () => {
    const ckpt = loadForeignCheckpoint(layoutFixture('timm_avg_noembed.safetensors'), { numHeads: 4 });
    expect(() => exportCheckpoint(ckpt, 'hf', join(dir, 'no_hf'))).toThrow(/Hugging Face ViT cannot hold a model with avg pooling, no_embed_class position embeddings/);
    expect(() => exportCheckpoint(ckpt, 'torchvision', join(dir, 'no.pth'))).toThrow(/torchvision's VisionTransformer cannot hold a model with avg pooling/);
    expect(exportCheckpoint(ckpt, 'timm', join(dir, 'avg.safetensors')).files).toHaveLength(1);
  });

  it('output paths must fit the layout', () => {
    expect(() => convertCheckpoint(tessera, 'hf', join(dir, 'x.safetensors'))).toThrow(/--to hf writes a directory/);
    expect(() => convertCheckpoint(tessera, 'torchvision', join(dir, 'tvdir'))).toThrow(/--to torchvision writes a \.pth/);
  });
});

describe('tessera convert', () => {
  async function run(args: string[]): Promise<string> {
    const program = new Command().exitOverride().configureOutput({ writeErr: () => {} });
    registerConvertCommand(program);
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      await program.parseAsync(['convert', ...args], { from: 'user' });
      return log.mock.calls.map((c) => c.join(' ')).join('\n');
    } finally {
      log.mockRestore();
    }
  }

  it('--to torchvision --json reports the files and how to load them', async () => {
    const out = join(dir, 'cli.pth');
    const res = JSON.parse(await run(['--checkpoint', layoutFixture('hf'), '--to', 'torchvision', '--out', out, '--json']));
    expect(res).toMatchObject({ from: 'hf', layout: 'torchvision', files: [out] });
    expect(res.usage).toContain('VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=64, num_classes=5)');
  });

  it('--num-heads supplies what torchvision weights cannot say', async () => {
    const text = await run(['--checkpoint', layoutFixture('torchvision_vit.pth'), '--to', 'hf', '--out', join(dir, 'cli_hf'), '--num-heads', '2']);
    expect(text).toMatch(/torchvision layout\) → hf: .*config\.json/);
    expect(text).toContain("transformers.ViTForImageClassification.from_pretrained");
  });

  it('rejects an unknown layout', async () => {
    await expect(run(['--checkpoint', tessera, '--to', 'onnx', '--out', join(dir, 'x')])).rejects.toThrow(/Allowed choices are timm, hf, torchvision/);
  });
});
