/**
 * int8 inference of vit_tiny_patch16_224 (issue #23): tessera's export variants side by side in
 * ONNX Runtime, and PyTorch 2.x's bf16 autocast peers in the same run.
 *
 *   npx tsx bench/int8_inference.ts profile [--variants fp32,dynamic,static] [--batch-size 32] [--threads 2] [--steps 4]
 *   npx tsx bench/int8_inference.ts speed [--variants …] [--threads 1,2] [--rounds 7] [--peers]
 *
 * profile: per variant, the node count by op type as emitted and after ORT's optimiser (what it
 *          fused), and kernel time by op type from ORT's profiler, runs interleaved A, B, A, B…
 * speed:   median ms per batch of every variant at every thread count, interleaved round by
 *          round (robust to load); with --peers, PyTorch 2.x eager and compiled bf16 autocast
 *          (bench/peers/torch_vit.py) run between tessera's rounds at the same thread counts.
 *
 * Weights are the seeded initialisation (speed does not depend on their values); the static
 * variant is calibrated on seeded random images, which is all the timing needs.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { metaFor } from '../src/checkpoint/checkpoint.js';
import { exportModel, type ExportedModel } from '../src/export/export.js';
import { createModel } from '../src/models/registry.js';
import { openSession, type Session } from '../src/runtime/session.js';
import { Random } from '../src/random.js';
import { machineDescription, ortVersion } from '../src/bench/timing.js';
import { peerScript, probeTorch2, runPeer } from '../src/bench/peers.js';
import { INT8_VARIANTS, int8Variant } from './int8_variants.js';

/** Peer samples per thread count: each is a process that warms up (and compiles) on its own. */
const PEER_ROUNDS = 2;

interface TraceEvent { cat?: string; name?: string; ts?: number; dur?: number; args?: { op_name?: string } }

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    model: { type: 'string', default: 'vit_tiny_patch16_224' },
    variants: { type: 'string', default: 'fp32,dynamic' },
    'batch-size': { type: 'string', default: '32' },
    threads: { type: 'string', default: '2' },
    steps: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '7' },
    peers: { type: 'boolean', default: false },
  },
});
const mode = positionals[0] ?? 'speed';
const batch = Number(o['batch-size']);
const threadCounts = o.threads!.split(',').map(Number);
const variantNames = o.variants!.split(',');
for (const v of variantNames) if (!INT8_VARIANTS.includes(v)) throw new Error(`--variants: unknown "${v}" (expected ${INT8_VARIANTS.join(', ')})`);

const model = createModel(o.model!, { seed: 1 });
const [c, h, w] = model.inputShape;
const fp32 = exportModel(model, metaFor(o.model!, model, Array.from({ length: model.numClasses }, (_, i) => `class ${i}`)));
const rng = new Random(0);
const x = Float32Array.from({ length: batch * c * h * w }, () => rng.uniform() * 2 - 1);
const variants: { label: string; exported: ExportedModel }[] = [];
for (const v of variantNames) variants.push({ label: v, exported: await int8Variant(v, fp32, { calibrationImages: 32 }) });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const feed = (s: Session) => ({ [s.inputNames[0]!]: { dtype: 'float32' as const, data: x, shape: [batch, c, h, w] } });
const header = (what: string) => `${what}, ${o.model}, batch ${batch}; ${new Date().toISOString()}, ${machineDescription()}, onnxruntime-node ${ortVersion()}`;

if (mode === 'profile') await profile(threadCounts[0]!);
else if (mode === 'speed') await speed();
else throw new Error(`mode must be profile or speed, got "${mode}"`);

async function profile(threads: number): Promise<void> {
  const steps = Number(o.steps);
  const warmup = 1;
  const dir = mkdtempSync(join(tmpdir(), 'tessera-int8-prof-'));
  const sessions = [];
  for (const [i, v] of variants.entries()) {
    const optimized = join(dir, `g${i}_opt.onnx`);
    writeFileSync(join(dir, `g${i}.onnx`), v.exported.bytes);
    const session = await openSession(v.exported.bytes, { threads, profilePrefix: join(dir, `g${i}`), optimizedModelPath: optimized });
    sessions.push({ ...v, session, optimized, wall: [] as number[] });
  }
  for (let i = 0; i < warmup + steps; i++) {
    for (const s of sessions) {
      const t0 = performance.now();
      await s.session.run(feed(s.session));
      if (i >= warmup) s.wall.push(performance.now() - t0);
    }
  }
  const countOps = (path: string): Record<string, number> => JSON.parse(execFileSync('/usr/bin/python3', ['-c',
    'import onnx,sys,json,collections; m=onnx.load(sys.argv[1], load_external_data=False); ' +
    'print(json.dumps(collections.Counter((n.domain+"." if n.domain else "")+n.op_type for n in m.graph.node)))', path], { encoding: 'utf8' }));
  console.log(`${header('Inference profile')}, ${threads} thread(s), ${steps} interleaved runs after ${warmup} warm-up\n`);
  for (const [i, s] of sessions.entries()) {
    s.session.endProfiling();
    await s.session.release();
    const file = readdirSync(dir).map((f) => join(dir, f)).filter((f) => f.startsWith(join(dir, `g${i}_`)) && f.endsWith('.json'))
      .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0]!;
    const events = JSON.parse(readFileSync(file, 'utf8')) as TraceEvent[];
    const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').sort((a, b) => a.ts! - b.ts!);
    const from = runs[warmup]?.ts ?? 0;
    const byOp = new Map<string, { us: number; count: number }>();
    let total = 0;
    for (const e of events) {
      if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time') || (e.ts ?? 0) < from) continue;
      const op = e.args?.op_name ?? '?';
      const a = byOp.get(op) ?? { us: 0, count: 0 };
      a.us += e.dur ?? 0;
      a.count++;
      byOp.set(op, a);
      total += e.dur ?? 0;
    }
    const fmt = (m: Record<string, number>) => Object.entries(m).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
    const before = countOps(join(dir, `g${i}.onnx`));
    const after = countOps(s.optimized);
    console.log(`### ${s.label}: median wall ${median(s.wall).toFixed(1)} ms (profiling on), kernel sum ${(total / steps / 1000).toFixed(1)} ms\n`);
    console.log(`- nodes as emitted (${Object.values(before).reduce((a, b) => a + b, 0)}): ${fmt(before)}`);
    console.log(`- nodes after ORT's optimiser (${Object.values(after).reduce((a, b) => a + b, 0)}): ${fmt(after)}\n`);
    console.log('| op type | ms / run | % | nodes run |\n|---|---|---|---|');
    for (const [op, a] of [...byOp.entries()].sort((p, q) => q[1].us - p[1].us)) {
      console.log(`| ${op} | ${(a.us / steps / 1000).toFixed(2)} | ${((a.us / total) * 100).toFixed(1)}% | ${(a.count / steps).toFixed(0)} |`);
    }
    console.log('');
  }
  rmSync(dir, { recursive: true, force: true });
}

interface PeerOut { seconds: number; images_per_second: number; torch?: string }

async function speed(): Promise<void> {
  const rounds = Number(o.rounds);
  const torch2 = o.peers ? probeTorch2() : undefined;
  if (torch2 && !torch2.probe.ok) throw new Error(`--peers: PyTorch 2.x is not usable: ${torch2.probe.reason}`);
  const peers = torch2 ? [
    { label: `PyTorch ${torch2.probe.ok ? torch2.probe.version : ''} eager SDPA, bf16 autocast`, flags: ['--attn', 'sdpa', '--bf16'] },
    { label: `PyTorch ${torch2.probe.ok ? torch2.probe.version : ''} torch.compile SDPA, bf16 autocast`, flags: ['--attn', 'sdpa', '--compile', '--bf16'] },
  ] : [];
  console.log(`${header('Inference speed')}; threads ${threadCounts.join(',')}, ${rounds} rounds, variants and peers interleaved round by round\n`);
  const times = new Map<string, number[]>();
  const sessions = new Map<number, Session[]>();
  for (const t of threadCounts) sessions.set(t, await Promise.all(variants.map((v) => openSession(v.exported.bytes, { threads: t }))));
  for (const t of threadCounts) for (const s of sessions.get(t)!) for (let i = 0; i < 2; i++) await s.run(feed(s)); // warm-up
  for (let r = 0; r < rounds; r++) {
    for (const t of threadCounts) {
      for (const [i, s] of sessions.get(t)!.entries()) {
        const t0 = performance.now();
        await s.run(feed(s));
        push(times, `${variants[i]!.label}@${t}`, performance.now() - t0);
      }
      // each peer call is its own process with its own warm-up; its median of 3 runs is one sample here
      if (r < Math.min(rounds, PEER_ROUNDS)) {
        for (const p of peers) {
          const out = runPeer<PeerOut>(peerScript('torch_vit.py'), ['infer', t, batch, 3, '-', '{}', ...p.flags], t, torch2!.env);
          push(times, `${p.label}@${t}`, out.seconds * 1000);
        }
      }
    }
  }
  console.log('| engine | threads | ms / batch (median) | img/s | samples |\n|---|---|---|---|---|');
  for (const [key, ms] of times) {
    const [label, t] = key.split('@');
    const m = median(ms);
    console.log(`| ${label} | ${t} | ${m.toFixed(1)} | ${((batch * 1000) / m).toFixed(1)} | ${ms.length} |`);
  }
  for (const list of sessions.values()) for (const s of list) await s.release();
}

function push(m: Map<string, number[]>, k: string, v: number): void {
  const a = m.get(k) ?? [];
  a.push(v);
  m.set(k, a);
}
