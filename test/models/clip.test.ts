/**
 * CLIP against scripts/clip_ref.py (a plain-PyTorch port of OpenAI's clip/model.py at openai/CLIP
 * d05afc4; goldens by scripts/make_clip_goldens.py, computed in float64): random perturbed
 * weights of the tiny CLIP in OpenAI's bare layout, architecture inferred from the shapes; image
 * embeddings, text embeddings and logits per image ≤ 1e-4; the same weights as a Hugging Face
 * CLIPModel directory; export back to both layouts; OpenAI's models' parameter counts.
 *
 * Measured (ORT, 2 threads, 2026-12-02): image embeddings 6.5e-6, text embeddings 2.0e-6, logits
 * per image 2.2e-6 (logits up to 2.5, logit_scale e^2.5).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLIP_CONFIGS, CLIP_PARAMS, ClipImageClassifier, ClipModel, inferClipConfig } from '../../src/models/clip.js';
import { loadClip, readClipCheckpoint, writeClip } from '../../src/checkpoint/layout_clip.js';
import { compile } from '../../src/runtime/compile.js';
import { fixturePath, maxAbsDiff, readJsonFixture, readTensorFixture } from '../helpers/fixtures.js';

const meta = readJsonFixture('clip_goldens.json');
const goldens = readTensorFixture('clip_goldens.safetensors');
const golden = (k: string) => goldens.get(k)!;
const tmp = mkdtempSync(join(tmpdir(), 'clip-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function outputsOf(model: ClipModel) {
  const images = golden('images');
  const ids = BigInt64Array.from(golden('ids').data, (v) => BigInt(v));
  const [, c, h, w] = images.shape as [number, number, number, number];
  const n = model.config.contextLength;
  const exe = await compile((x, t) => ({ image: model.encodeImage(x), text: model.encodeText(t), logits: model.logitsPerImage(x, t) }),
    [{ name: 'x', shape: ['batch', c, h, w] }, { name: 't', shape: [ids.length / n, n], dtype: 'int64' }]);
  const out = await exe.run({ x: images.data, t: { data: ids, shape: [ids.length / n, n] } as any });
  await exe.dispose();
  return { image: out.image!.data as Float32Array, text: out.text!.data as Float32Array, logits: out.logits!.data as Float32Array };
}

function expectGoldens(out: Awaited<ReturnType<typeof outputsOf>>) {
  expect(maxAbsDiff(out.image, golden('image_embeds').data)).toBeLessThan(1e-4);
  expect(maxAbsDiff(out.text, golden('text_embeds').data)).toBeLessThan(1e-4);
  expect(maxAbsDiff(out.logits, golden('logits_per_image').data)).toBeLessThan(1e-4);
  expect(out.logits.length).toBe(2 * 3);
}

describe('CLIP against the PyTorch port of OpenAI model.py', () => {
  it("OpenAI's bare layout: keys, architecture from the shapes, embeddings and logits", async () => {
    const { model, checkpoint } = loadClip(fixturePath('clip_tiny_openai.safetensors'));
    expect(checkpoint.layout).toBe('openai');
    expect(checkpoint.config).toEqual(CLIP_CONFIGS.clip_tiny);
    expect(Object.keys(model.stateDict()).sort()).toEqual([...meta.keys].sort());
    expect(model.numParams()).toBe(meta.tiny_params.clip);
    expectGoldens(await outputsOf(model));
  }, 60_000);

  it("Hugging Face's CLIPModel directory (config.json + model.safetensors) loads to the same outputs", async () => {
    const { model, checkpoint } = loadClip(fixturePath('clip_tiny_hf'));
    expect(checkpoint.layout).toBe('hf');
    expect(checkpoint.dropped).toEqual(['text_model.embeddings.position_ids']);
    expectGoldens(await outputsOf(model));
  }, 60_000);

  it('exports back to both layouts with the same tensors', () => {
    const { model } = loadClip(fixturePath('clip_tiny_openai.safetensors'));
    const sd = model.stateDict();
    for (const [layout, out] of [['openai', join(tmp, 'c.safetensors')], ['hf', join(tmp, 'hf')]] as const) {
      const back = readClipCheckpoint(writeClip(model, layout, out));
      expect(back.layout).toBe(layout);
      // the architecture; the model's config adds the ImageModel args (no classes, 3 channels)
      expect({ ...back.config, imgSize: back.config.imageSize, inChans: 3, numClasses: 0, dropPathRate: 0, dropRate: 0, seed: 0 }).toEqual(model.config);
      for (const [k, t] of Object.entries(sd)) expect(maxAbsDiff(back.stateDict[k]!.data, t.data), k).toBe(0);
    }
  });

  it("OpenAI's architectures have the port's parameter counts (both towers, and the image tower alone)", () => {
    for (const name of ['ViT-B-32', 'ViT-B-16', 'ViT-L-14']) {
      expect(CLIP_PARAMS[name]).toEqual(meta.params[name]);
      const model = new ClipModel(CLIP_CONFIGS[name]!);
      expect(model.numParams(), name).toBe(meta.params[name].clip);
      expect(new ClipImageClassifier({ clip: CLIP_CONFIGS[name]!, numClasses: 0 }).numParams(), name).toBe(meta.params[name].visual);
      // shapes only: no weights are drawn
      expect(inferClipConfig(Object.fromEntries(model.namedState().map(([k, p]) => [k, { shape: p.shape }])))).toEqual(CLIP_CONFIGS[name]);
    }
  });

  it('a checkpoint of the image tower alone is refused by loadClip in one line', () => {
    const { model } = loadClip(fixturePath('clip_tiny_openai.safetensors'));
    const visualOnly = join(tmp, 'visual.safetensors');
    const tower = new ClipImageClassifier({ clip: model.config, numClasses: 0 });
    tower.loadStateDict(Object.fromEntries(Object.entries(model.stateDict()).filter(([k]) => k.startsWith('visual.'))));
    writeClip(tower as any, 'openai', visualOnly);
    expect(() => loadClip(visualOnly)).toThrow(/^.*visual\.safetensors: has no text tower \(token_embedding\.weight.*\): zero-shot needs a full CLIP checkpoint$/);
  });
});
