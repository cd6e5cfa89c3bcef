/**
 * Engine benchmark: fp32 matmul GFLOP/s and a ViT-Ti-sized transformer block's forward+backward
 * (batch 32, 197 tokens, dim 192, 3 heads, MLP 768), tessera against PyTorch eager, same run.
 */
import { Graph } from '../src/ir/graph.js';
import { BATCH } from '../src/ir/shape.js';
import { grad } from '../src/autodiff/grad.js';
import { matmul } from '../src/ops/index.js';
import { compile, compileTraced } from '../src/runtime/compile.js';
import { physicalCores } from '../src/runtime/cores.js';
import { Block } from '../src/nn/transformer.js';
import { Random } from '../src/random.js';
import { machineDescription, medianSeconds } from '../src/bench/timing.js';
import { peerScript, runPeer, torchAvailable } from '../src/bench/peers.js';

interface TorchEngine { torch: string; threads: number; matmul: { m: number; k: number; n: number; seconds: number }[]; block_fwd_bwd_seconds: number }

const MATMUL_SHAPES: [number, number, number][] = [[6304, 192, 768], [6304, 768, 192], [1024, 1024, 1024]];

export async function benchEngine(repeats = 20): Promise<string> {
  const threads = physicalCores();
  const rng = new Random(0);
  const rows: string[] = [];
  const torch = torchAvailable() ? runPeer<TorchEngine>(peerScript('torch_engine.py'), [threads, repeats], threads) : undefined;

  rows.push('| workload | tessera | PyTorch eager | tessera speed ÷ PyTorch |', '|---|---|---|---|');
  for (const [i, [m, k, n]] of MATMUL_SHAPES.entries()) {
    const b = Float32Array.from({ length: k * n }, () => rng.normal());
    const a = Float32Array.from({ length: m * k }, () => rng.normal());
    const exe = await compile((x) => matmul(x, x.graph.param('b', b, [k, n])), [{ name: 'a', shape: [m, k] }], { threads, params: 'initializers' });
    const seconds = await medianSeconds(() => exe.run({ a }), repeats);
    await exe.dispose();
    const gflops = (2 * m * k * n) / seconds / 1e9;
    const peer = torch?.matmul[i];
    const peerGflops = peer ? (2 * m * k * n) / peer.seconds / 1e9 : undefined;
    rows.push(`| matmul ${m}×${k}×${n} | ${gflops.toFixed(1)} GFLOP/s | ${peerGflops?.toFixed(1) ?? 'n/a'} GFLOP/s | ${peerGflops ? (gflops / peerGflops).toFixed(2) : 'n/a'} |`);
  }

  const block = new Block(192, 3, rng, { mlpRatio: 4 });
  const graph = new Graph();
  const x = graph.input('x', [BATCH, 197, 192]);
  const cot = graph.input('cot', [BATCH, 197, 192]);
  const y = block.forward(x);
  const wrt = [x, ...graph.params().map((p) => graph.tensor(p.id))];
  const grads = grad(y, wrt, cot);
  const outputs = Object.fromEntries([['y', y], ...grads.map((g, i) => [`g${i}`, g] as const)]);
  const exe = await compileTraced({ graph, inputs: [x, cot], outputs }, { threads });
  const xs = Float32Array.from({ length: 32 * 197 * 192 }, () => rng.normal());
  const cs = Float32Array.from({ length: 32 * 197 * 192 }, () => rng.normal());
  const blockSeconds = await medianSeconds(() => exe.run({ x: xs, cot: cs }), repeats);
  await exe.dispose();
  const peerBlock = torch?.block_fwd_bwd_seconds;
  rows.push(`| ViT-Ti block fwd+bwd, batch 32 | ${(blockSeconds * 1000).toFixed(1)} ms | ${peerBlock ? (peerBlock * 1000).toFixed(1) : 'n/a'} ms | ${peerBlock ? (peerBlock / blockSeconds).toFixed(2) : 'n/a'} |`);

  const head = `Engine benchmark — ${new Date().toISOString().slice(0, 10)}, ${machineDescription()}, ${threads} threads each, median of ${repeats} runs` +
    (torch ? `, PyTorch ${torch.torch} (${torch.threads} threads)` : ', PyTorch not installed: peer columns empty');
  return [head, '', ...rows].join('\n');
}
