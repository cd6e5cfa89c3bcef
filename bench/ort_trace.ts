/**
 * Reading ORT's profiler output (SessionOptions.enableProfiling) for the profiling benchmarks:
 * the newest trace file of a prefix, and kernel time per op type and per node.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export interface TraceEvent { cat?: string; name?: string; ts?: number; dur?: number; args?: { op_name?: string; provider?: string } }

/** ORT writes <prefix>_<timestamp>.json: the newest such file and its events. */
export function readNewestTrace(prefix: string): { file: string; events: TraceEvent[] } {
  const dir = dirname(prefix);
  const base = basename(prefix);
  const newest = readdirSync(dir).filter((f) => f.startsWith(`${base}_`) && f.endsWith('.json'))
    .map((f) => join(dir, f)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
  if (!newest) throw new Error(`ORT wrote no profile with prefix ${prefix}`);
  return { file: newest, events: JSON.parse(readFileSync(newest, 'utf8')) as TraceEvent[] };
}

export interface KernelTimes {
  /** The model_run events counted (those after the skipped warm-up runs). */
  runs: TraceEvent[];
  byOp: Map<string, { us: number; count: number }>;
  byNode: Map<string, { op: string; us: number }>;
  totalUs: number;
}

/** Kernel time of every node run from the start of the (skipRuns + 1)-th model_run on. */
export function kernelTimes(events: readonly TraceEvent[], skipRuns = 0): KernelTimes {
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').sort((a, b) => a.ts! - b.ts!).slice(skipRuns);
  const from = runs[0]?.ts ?? 0;
  const byOp = new Map<string, { us: number; count: number }>();
  const byNode = new Map<string, { op: string; us: number }>();
  let totalUs = 0;
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time') || (e.ts ?? 0) < from) continue;
    const op = e.args?.op_name ?? '?';
    const us = e.dur ?? 0;
    const a = byOp.get(op) ?? { us: 0, count: 0 };
    a.us += us;
    a.count++;
    byOp.set(op, a);
    const node = e.name.slice(0, -'_kernel_time'.length);
    const b = byNode.get(node) ?? { op, us: 0 };
    b.us += us;
    byNode.set(node, b);
    totalUs += us;
  }
  return { runs, byOp, byNode, totalUs };
}

/** byOp's rows, the most expensive first. */
export function opsByTime(t: KernelTimes): [string, { us: number; count: number }][] {
  return [...t.byOp].sort((p, q) => q[1].us - p[1].us);
}
