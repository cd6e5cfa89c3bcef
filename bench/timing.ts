/** Shared timing helpers for the benchmarks: median of repeated runs after warm-up. */
export async function medianSeconds(fn: () => Promise<unknown>, repeats: number, warmup = 3): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await fn();
    times.push((performance.now() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

export function machine(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return `${cpuModel()}, ${availableCores()} cores`;
}

import { cpus, availableParallelism } from 'node:os';
const cpuModel = () => cpus()[0]?.model ?? 'unknown CPU';
const availableCores = () => availableParallelism();

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Runs a Python peer script with Debian's python3; undefined when torch is not installed. */
export function runPythonPeer(script: string, args: string[]): unknown {
  const python = '/usr/bin/python3';
  if (!existsSync(python)) return undefined;
  const r = spawnSync(python, [script, ...args], { encoding: 'utf8', maxBuffer: 1 << 26, env: { ...process.env, OMP_NUM_THREADS: args[0] } });
  if (r.status !== 0) {
    process.stderr.write(`peer ${script} failed:\n${r.stderr}\n`);
    return undefined;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}
