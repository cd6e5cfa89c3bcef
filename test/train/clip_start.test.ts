/**
 * `train --pretrained <CLIP>`: the image tower starts with the zero-shot head of the run's class
 * names, whose logits equal scripts/make_clip_zero_shot_goldens.py's reference (≤ 1e-4); one epoch
 * of fine-tuning moves it; the trained checkpoint exports to ONNX whose logits equal tessera's.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { clipStart, isClipWithText } from '../../src/train/clip_start.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { compileInference } from '../../src/models/executables.js';
import { loadOnnxModel } from '../../src/runtime/onnx_model.js';
import { main } from '../../src/cli/main.js';
import type { ImageModel } from '../../src/models/model.js';
import type { TensorDataset } from '../../src/data/datasets/dataset.js';
import { fixturePath, maxAbsDiff, readJsonFixture } from '../helpers/fixtures.js';

const goldens = readJsonFixture('clip_zero_shot/goldens.json');
const dir = mkdtempSync(join(tmpdir(), 'tessera-clip-start-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const ckpt = join(dir, 'clip.safetensors');
copyFileSync(fixturePath('clip_tiny_openai.safetensors'), ckpt);
copyFileSync(fixturePath('clip_tokenizer/bpe_toy_vocab.txt.gz'), join(dir, 'bpe_simple_vocab_16e6.txt.gz'));
const MEAN = [0.48145466, 0.4578275, 0.40821073];
const STD = [0.26862954, 0.26130258, 0.27577711];

/** The golden PNGs as uint8 CHW pixels and as normalised input, as make_clip_zero_shot_goldens.py makes it. */
async function goldenImages(): Promise<{ pixels: Uint8Array; x: Float32Array }> {
  const pixels = new Uint8Array(2 * 3 * 32 * 32);
  for (const [i, name] of ['a', 'b'].entries()) {
    const hwc = await sharp(fixturePath(`clip_zero_shot/${name}.png`)).raw().toBuffer();
    for (let c = 0; c < 3; c++) for (let p = 0; p < 1024; p++) pixels[i * 3072 + c * 1024 + p] = hwc[p * 3 + c]!;
  }
  const x = Float32Array.from(pixels, (v, j) => { const c = Math.floor((j % 3072) / 1024); return (v / 255 - MEAN[c]!) / STD[c]!; });
  return { pixels, x };
}

async function logitsOf(model: ImageModel, x: Float32Array): Promise<Float32Array> {
  const exe = await compileInference(model, { threads: 1 });
  const out = (await exe.run({ x })).logits!.data as Float32Array;
  await exe.dispose();
  return out;
}

describe('train --pretrained <CLIP checkpoint>', () => {
  it('starts from the zero-shot head, fine-tunes, and exports the tower with its head to ONNX', async () => {
    expect(isClipWithText(ckpt)).toBe(true);
    const { pixels, x } = await goldenImages();
    const start = await clipStart(ckpt, 'clip_tiny', goldens.labels, () => {});
    expect(maxAbsDiff(await logitsOf(start, x), goldens.single.logits.flat())).toBeLessThan(1e-4);
    await expect(clipStart(ckpt, 'vit_tiny_patch4_32', goldens.labels, () => {})).rejects.toThrow(/^--pretrained .* is a CLIP checkpoint: give --model a CLIP image tower/);

    // six images of the three classes: a.png as cat and t-shirt, b.png as dog
    const labels = Uint8Array.of(0, 1, 2, 0, 1, 2);
    const images = new Uint8Array(6 * 3072);
    [0, 1, 0, 0, 1, 0].forEach((src, i) => images.set(pixels.subarray(src * 3072, (src + 1) * 3072), i * 3072));
    const ds: TensorDataset = { name: 'clip-toy', images, labels, imageShape: [3, 32, 32], classNames: goldens.labels, length: 6 };
    const cfg = resolveTrainConfig({ model: 'clip_tiny', pretrained: ckpt, epochs: 1, batchSize: 3, lr: 1e-4, warmupEpochs: 0, output: join(dir, 'run'), threads: 1 });
    const r = await train(cfg, { datasets: { train: ds, test: ds } });
    expect(r.status).toBe('completed');
    const headOf = (m: ImageModel) => m.stateDict()['head.weight']!.data;
    const moved = maxAbsDiff(headOf(r.model), headOf(start));
    expect(moved).toBeGreaterThan(0);

    const onnx = join(dir, 'tower.onnx');
    const code = await main(['export', '--checkpoint', join(r.runDir, 'last.safetensors'), '--out', onnx]);
    expect(code).toBe(0);
    const exported = await loadOnnxModel(onnx, { threads: 1 });
    const out = (await exported.executable.run({ x })).logits!.data as Float32Array;
    await exported.dispose();
    expect(exported.meta.classNames).toEqual(goldens.labels);
    expect(maxAbsDiff(out, await logitsOf(r.model, x))).toBeLessThan(1e-4);
  }, 120_000);
});
