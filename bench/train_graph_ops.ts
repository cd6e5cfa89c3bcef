/**
 * Node counts by op type of the benchmark's training step after ORT's graph optimiser (what
 * actually runs), without timing anything: the exact count behind a "fewer kernels" change.
 *
 *   npx tsx bench/train_graph_ops.ts [--model vit_tiny_patch16_224]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createModel } from '../src/models/registry.js';
import { buildBenchTrainStep } from '../src/bench/train_step.js';
import { decodeModel } from '../src/onnx/proto.js';

const { values: o } = parseArgs({ options: { model: { type: 'string', default: 'vit_tiny_patch16_224' } } });
const dir = mkdtempSync(join(tmpdir(), 'tessera-graph-'));
const path = join(dir, 'optimized.onnx');
const step = await buildBenchTrainStep(createModel(o.model!), { threads: 1, optimizedModelPath: path });
await step.exe.dispose();
const counts = new Map<string, number>();
for (const n of decodeModel(readFileSync(path)).graph!.node ?? []) counts.set(n.opType!, (counts.get(n.opType!) ?? 0) + 1);
rmSync(dir, { recursive: true, force: true });
const total = [...counts.values()].reduce((a, b) => a + b, 0);
console.log(`${o.model} training step after ORT's optimiser: ${total} nodes`);
console.log([...counts.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', '));
