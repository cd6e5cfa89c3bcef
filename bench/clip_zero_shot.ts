/**
 * Zero-shot eval speed of a CLIP image tower (issue #20): images/s of tessera's tower against ONNX
 * Runtime running PyTorch's export of the same tower with the same weights (bench/peers/
 * torch_clip_tower.py, torch 2.x from TESSERA_TORCH2_PATH or /opt/torch2), both in one run,
 * interleaved round by round, the median of each side reported with their ratio. The text side is
 * not timed: zero-shot encodes the prompts once before the first image.
 *
 * tessera's tower is compiled as `eval --zero-shot` compiles its classifier (frozenWeights:
 * the weights are initializers); the same tower with its weights fed as inputs is timed beside it
 * in the same rounds (`tesseraWeightsAsInputs`), to show what that choice is worth.
 *
 * With a list of thread counts (`--threads 1,2`) each count is a run of its own: the sessions
 * opened at that count, timed interleaved as above. PyTorch eager on the same tower (the peer
 * script, torch.set_num_threads per count) is another column, timed in its own process, and with
 * `--torch-compile` torch.compile's (inductor, default mode) beside it.
 *
 *   npx tsx bench/clip_zero_shot.ts [--model ViT-B-32] [--batch 8] [--rounds 7] [--threads 2 | --threads 1,2] [--torch-compile]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLIP_CONFIGS, ClipModel } from '../src/models/clip.js';
import { writeClip } from '../src/checkpoint/layout_clip.js';
import { compile } from '../src/runtime/compile.js';
import { openSession } from '../src/runtime/session.js';
import { physicalCores } from '../src/runtime/cores.js';
import { frozenWeights } from '../src/models/executables.js';
import { machineDescription, ortVersion } from '../src/bench/timing.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const name = arg('model', 'ViT-B-32');
const batch = Number(arg('batch', '8'));
const rounds = Number(arg('rounds', '7'));
const threadCounts = arg('threads', String(physicalCores())).split(',').map(Number);

const dir = mkdtempSync(join(tmpdir(), 'clip-bench-'));
try {
  const config = CLIP_CONFIGS[name];
  if (!config) throw new Error(`--model ${name}: expected one of ${Object.keys(CLIP_CONFIGS).join(', ')}`);
  const clip = new ClipModel(config, 1);
  const weights = writeClip(clip, 'openai', join(dir, 'clip.safetensors'));
  const onnx = join(dir, 'torch_tower.onnx');
  const peer = JSON.parse(execFileSync('/usr/bin/python3', [new URL('peers/torch_clip_tower.py', import.meta.url).pathname, weights, onnx, name, String(batch), String(rounds), threadCounts.join(','), ...(process.argv.includes('--torch-compile') ? ['compile'] : [])], {
    env: { ...process.env, PYTHONPATH: process.env.TESSERA_TORCH2_PATH ?? '/opt/torch2' }, encoding: 'utf8',
  }).trim().split('\n').pop()!) as { torch: string; eager_images_per_second: Record<string, number>; compiled_images_per_second?: Record<string, number> };
  console.log(`# CLIP ${name} image tower, batch ${batch}, median of ${rounds} interleaved rounds; ${machineDescription()}, onnxruntime-node ${ortVersion()}, Node ${process.versions.node}, PyTorch ${peer.torch}`);

  const s = config.imageSize;
  const x = Float32Array.from({ length: batch * 3 * s * s }, (_, i) => Math.sin(0.37 * i));
  for (const threads of threadCounts) {
    const tower = (params: 'inputs' | 'initializers') => compile((img) => ({ embedding: clip.encodeImage(img) }), [{ name: 'x', shape: ['batch', 3, s, s] }], { threads, params });
    // eval --zero-shot compiles its classifier with frozenWeights (weights in the graph); the weights
    // fed as inputs, as train's per-epoch eval and the zero-shot command keep them, are the third side
    const frozen = await tower(frozenWeights(clip));
    const fed = await tower('inputs');
    const ort = await openSession(readFileSync(onnx), { threads });
    const sides = {
      tessera: async () => (await frozen.run({ x })).embedding!.data as Float32Array,
      ort: async () => (await ort.run({ x: { dtype: 'float32', data: x, shape: [batch, 3, s, s] } })).embedding!.data as Float32Array,
      tesseraWeightsAsInputs: async () => (await fed.run({ x })).embedding!.data as Float32Array,
    };
    type Side = keyof typeof sides;
    const names = Object.keys(sides) as Side[];
    // the same tower: outputs agree before anything is timed
    const [a, b] = [await sides.tessera(), await sides.ort()];
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    const times = Object.fromEntries(names.map((k) => [k, [] as number[]])) as Record<Side, number[]>;
    await sides.tesseraWeightsAsInputs(); // its warm-up
    for (let r = 0; r < rounds; r++) {
      // rotate which side goes first, so none always runs on a warmer (or more contended) machine
      for (let j = 0; j < names.length; j++) {
        const side = names[(r + j) % names.length]!;
        const t0 = performance.now();
        await sides[side]();
        times[side].push((performance.now() - t0) / 1000);
      }
    }
    const median = (v: number[]) => [...v].sort((p, q) => p - q)[Math.floor(v.length / 2)]!;
    const ips = Object.fromEntries(names.map((k) => [k, batch / median(times[k])])) as Record<Side, number>;
    console.log(JSON.stringify({
      model: name, batch, rounds, threads, torch: peer.torch, maxAbsDiff: diff,
      imagesPerSecond: { ...ips, torchEager: peer.eager_images_per_second[String(threads)], torchCompiled: peer.compiled_images_per_second?.[String(threads)] },
      ratio: ips.tessera / ips.ort, ratioWeightsAsInputs: ips.tesseraWeightsAsInputs / ips.ort, loadAverage: loadavg()[0], date: new Date().toISOString(),
    }));
    await frozen.dispose();
    await fed.dispose();
    await ort.release();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
