/**
 * MLAS sgemm throughput of the training step's matmul shapes by operand layout: ORT's fused
 * transposed operand (Gemm transB / FusedMatMul transA, what ORT's MatmulTransposeFusion makes of
 * MatMul(Transpose(a), b)) against the Transpose kept as its own node (that fusion disabled
 * through the session config `optimization.disable_specified_optimizers`). One process, the two
 * sessions timed alternately, median per case; GFLOP/s by wall time and by the process's CPU time
 * (steadier on a shared machine at one thread).
 *
 *   npx tsx bench/matmul_layouts.ts [--threads 1] [--rounds 9]
 */
import * as ort from 'onnxruntime-node';
import { parseArgs } from 'node:util';
import { trace } from '../src/runtime/compile.js';
import { emitModel } from '../src/onnx/emit.js';
import { matmul, mT } from '../src/ops/index.js';
import { machineDescription, ortVersion } from '../src/bench/timing.js';

const { values: o } = parseArgs({ options: { threads: { type: 'string', default: '1' }, rounds: { type: 'string', default: '9' } } });
const threads = Number(o.threads);
const rounds = Number(o.rounds);
const rows = 32 * 197;
// [name, a shape, b shape, transpose a?, transpose b?]
const cases: [string, number[], number[], boolean, boolean][] = [
  ['fc1 forward x·Wᵀ', [rows, 192], [768, 192], false, true],
  ['qkv forward x·Wᵀ', [rows, 192], [576, 192], false, true],
  ['fc1 weight grad gᵀ·x', [rows, 768], [rows, 192], true, false],
  ['fc2 weight grad gᵀ·h', [rows, 192], [rows, 768], true, false],
  ['qkv weight grad gᵀ·x', [rows, 576], [rows, 192], true, false],
];
console.log(`matmul layouts — ${threads} thread(s), ${rounds} rounds; ${new Date().toISOString()}, ${machineDescription()}, onnxruntime-node ${ortVersion()}`);
console.log('\n| product | shape (M×K·K×N) | fused transpose GFLOP/s (wall, CPU) | separate Transpose + MatMul GFLOP/s | ratio separate ÷ fused |\n|---|---|---|---|---|');
for (const [name, as, bs, ta, tb] of cases) {
  const traced = trace((a, b) => matmul(ta ? mT(a!) : a!, tb ? mT(b!) : b!), [{ name: 'a', shape: as }, { name: 'b', shape: bs }]);
  const bytes = emitModel(traced.graph, traced.outputs, {}).bytes;
  const base = { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential' as const, graphOptimizationLevel: 'all' as const };
  const fused = await ort.InferenceSession.create(bytes, base);
  const split = await ort.InferenceSession.create(bytes, { ...base, extra: { optimization: { disable_specified_optimizers: 'MatmulTransposeFusion;GemmTransposeFusion' } } });
  const a = new ort.Tensor('float32', Float32Array.from({ length: as[0]! * as[1]! }, () => Math.random()), as);
  const b = new ort.Tensor('float32', Float32Array.from({ length: bs[0]! * bs[1]! }, () => Math.random()), bs);
  const m = ta ? as[1]! : as[0]!;
  const k = ta ? as[0]! : as[1]!;
  const n = tb ? bs[0]! : bs[1]!;
  const flop = 2 * m * k * n;
  const times: number[][] = [[], []];
  const cpu: number[][] = [[], []];
  const sessions = [fused, split];
  for (const s of sessions) for (let i = 0; i < 2; i++) await s.run({ a, b });
  for (let r = 0; r < rounds; r++) {
    for (const j of r % 2 ? [1, 0] : [0, 1]) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      await sessions[j]!.run({ a, b });
      const c = process.cpuUsage(c0);
      times[j]!.push(performance.now() - t0);
      cpu[j]!.push((c.user + c.system) / 1000);
    }
  }
  const med = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;
  const g = times.map((t) => flop / med(t) / 1e6);
  const gc = cpu.map((t) => flop / med(t) / 1e6);
  console.log(`| ${name} | ${m}×${k}·${k}×${n} | ${g[0]!.toFixed(1)} (CPU ${gc[0]!.toFixed(1)}) | ${g[1]!.toFixed(1)} (CPU ${gc[1]!.toFixed(1)}) | ${(g[1]! / g[0]!).toFixed(2)} (CPU ${(gc[1]! / gc[0]!).toFixed(2)}) |`);
  await fused.release();
  await split.release();
}
