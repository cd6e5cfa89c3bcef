/**
 * Side-by-side inference profile of tessera's emitted graph and another ONNX file (PyTorch's
 * torch.onnx.export of the same model, `bench/peers/torch_vit.py export`), in ONNX Runtime with
 * the same session options; issue #23 asks why ORT runs the exported graph faster.
 *
 *   npx tsx bench/profile_graphs.ts --onnx /tmp/torch.onnx [--model vit_tiny_patch16_224]
 *                                   [--batch-size 32] [--steps 5] [--warmup 2] [--threads N]
 *   npx tsx bench/profile_graphs.ts --clip ViT-B-32 [--onnx FILE] [--batch-size 8] …
 *
 * With --clip the graphs are a CLIP image tower (issue #20's zero-shot target): tessera's, as
 * bench/clip_zero_shot.ts compiles it, and — unless --onnx names one — PyTorch's export of the
 * same tower with the same weights, made by bench/peers/torch_clip_tower.py under torch 2.x.
 *
 * For each graph it prints the node count by op type before and after ORT's optimiser (the
 * graph ORT writes to `optimizedModelFilePath`, read back with python3-onnx) and a Markdown table
 * of kernel time by op type from ORT's profiler. The runs are interleaved (A, B, A, B, ...) so
 * their ratio holds on a loaded machine even when the absolute times do not.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createModel } from '../src/models/registry.js';
import { compile } from '../src/runtime/compile.js';
import { physicalCores } from '../src/runtime/cores.js';
import { openSession } from '../src/runtime/session.js';
import { Random } from '../src/random.js';
import { machineDescription, ortVersion } from '../src/bench/timing.js';
import { CLIP_CONFIGS, ClipModel } from '../src/models/clip.js';
import { writeClip } from '../src/checkpoint/layout_clip.js';
import { kernelTimes, opsByTime, readNewestTrace } from './ort_trace.js';


const { values: o } = parseArgs({
  options: {
    onnx: { type: 'string' },
    clip: { type: 'string' },
    model: { type: 'string', default: 'vit_tiny_patch16_224' },
    'batch-size': { type: 'string', default: '32' },
    steps: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '2' },
    threads: { type: 'string' },
  },
});
if (!o.onnx && !o.clip) throw new Error('--onnx FILE is required: the graph to compare with tessera\'s (e.g. torch_vit.py export)');
const batch = Number(o['batch-size']);
const steps = Number(o.steps);
const warmup = Number(o.warmup);
const threads = o.threads ? Number(o.threads) : physicalCores();

const dir = mkdtempSync(join(tmpdir(), 'tessera-graphs-'));
const { bytes: oursBytes, inputShape: [c, h, w], peerOnnx, label } = o.clip ? await clipTower(o.clip) : await vitGraph(o.model!);
const rng = new Random(0);
const x = Float32Array.from({ length: batch * c * h * w }, () => rng.uniform() * 2 - 1);

/** A registry model's logits graph; the other graph is --onnx. */
async function vitGraph(name: string) {
  const model = createModel(name);
  const [c, h, w] = model.inputShape;
  const ours = await compile((t) => model.forward(t).logits, [{ name: 'x', shape: ['batch', c, h, w] }], { threads, params: 'initializers' });
  await ours.dispose();
  return { bytes: ours.onnx, inputShape: [c, h, w] as const, peerOnnx: o.onnx!, label: name };
}

/** A CLIP image tower's embedding graph and (unless --onnx) PyTorch's export of it with the same weights. */
async function clipTower(name: string) {
  const config = CLIP_CONFIGS[name];
  if (!config) throw new Error(`--clip ${name}: expected one of ${Object.keys(CLIP_CONFIGS).join(', ')}`);
  const clip = new ClipModel(config, 1);
  const s = config.imageSize;
  const ours = await compile((img) => ({ embedding: clip.encodeImage(img) }), [{ name: 'x', shape: ['batch', 3, s, s] }], { threads, params: 'initializers' });
  await ours.dispose();
  let peerOnnx = o.onnx;
  if (!peerOnnx) {
    peerOnnx = join(dir, 'torch_tower.onnx');
    execFileSync('/usr/bin/python3', [new URL('peers/torch_clip_tower.py', import.meta.url).pathname, writeClip(clip, 'openai', join(dir, 'clip.safetensors')), peerOnnx, name], {
      env: { ...process.env, PYTHONPATH: process.env.TESSERA_TORCH2_PATH ?? '/opt/torch2' }, stdio: ['ignore', 'ignore', 'inherit'],
    });
  }
  return { bytes: ours.onnx, inputShape: [3, s, s] as const, peerOnnx, label: `CLIP ${name} image tower` };
}

const graphs = [
  { label: 'tessera', bytes: oursBytes },
  { label: 'torch.onnx.export', bytes: new Uint8Array(readFileSync(peerOnnx)) },
];
const sessions = [];
for (const [i, g] of graphs.entries()) {
  const optimized = join(dir, `g${i}_opt.onnx`);
  const session = await openSession(g.bytes, { threads, profilePrefix: join(dir, `g${i}`), optimizedModelPath: optimized });
  writeFileSync(join(dir, `g${i}.onnx`), g.bytes);
  sessions.push({ ...g, session, optimized, wall: [] as number[] });
}
for (let i = 0; i < warmup + steps; i++) {
  for (const s of sessions) {
    const t0 = performance.now();
    await s.session.run({ [s.session.inputNames[0]!]: { dtype: 'float32', data: x, shape: [batch, c, h, w] } });
    if (i >= warmup) s.wall.push(performance.now() - t0);
  }
}

const countOps = (path: string): Record<string, number> => JSON.parse(execFileSync('/usr/bin/python3', ['-c',
  'import onnx,sys,json,collections; m=onnx.load(sys.argv[1], load_external_data=False); ' +
  'print(json.dumps(collections.Counter((n.domain+"." if n.domain else "")+n.op_type for n in m.graph.node)))', path], { encoding: 'utf8' }));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`Inference, ${label}, batch ${batch}, ${threads} thread(s), ${steps} interleaved runs after ${warmup} warm-up; ` +
  `${new Date().toISOString().slice(0, 10)}, ${machineDescription()}, onnxruntime-node ${ortVersion()}\n`);
for (const [i, s] of sessions.entries()) {
  s.session.endProfiling();
  await s.session.release();
  const times = kernelTimes(readNewestTrace(join(dir, `g${i}`)).events, warmup);
  const total = times.totalUs;
  const before = countOps(join(dir, `g${i}.onnx`));
  const after = countOps(s.optimized);
  const fmt = (m: Record<string, number>) => Object.entries(m).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
  console.log(`### ${s.label}: median wall ${median(s.wall).toFixed(1)} ms (profiling on), kernel sum ${(total / steps / 1000).toFixed(1)} ms\n`);
  console.log(`- nodes as emitted (${Object.values(before).reduce((a, b) => a + b, 0)}): ${fmt(before)}`);
  console.log(`- nodes after ORT's optimiser (${Object.values(after).reduce((a, b) => a + b, 0)}): ${fmt(after)}\n`);
  console.log('| op type | ms / run | % | nodes run |\n|---|---|---|---|');
  for (const [op, a] of opsByTime(times)) {
    console.log(`| ${op} | ${(a.us / steps / 1000).toFixed(2)} | ${((a.us / total) * 100).toFixed(1)}% | ${(a.count / steps).toFixed(0)} |`);
  }
  console.log('');
}
rmSync(dir, { recursive: true, force: true });
