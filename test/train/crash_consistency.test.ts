/**
 * A run killed at any file step of an epoch's end or of an interrupt save resumes to the weights
 * and metrics of the same run done uninterrupted (issue #22). In-process, the file layer's fault
 * hook copies the run directory just before each such step: the state a kill there leaves
 * (every earlier step done; a write's temp file created and still empty). Each copy is resumed.
 * A few real kills (TESSERA_FAULT_AT, SIGKILL in a child `tessera train`) check that the copies
 * are what a kill leaves and that `tessera train --resume` finishes those runs. About 40 points;
 * each timeout is about 3× the part's idle time (the whole file ≈ 90 s on an idle 2-core VM).
 */
import { spawn } from 'node:child_process';
import { cpSync, lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setFaultHook, type FileStep } from '../../src/checkpoint/atomic.js';
import { readStateDict } from '../../src/checkpoint/checkpoint.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { readRunConfig } from '../../src/train/run_dir.js';
import { train, type TrainResult } from '../../src/train/trainer.js';
import { runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const flags = ['--model-kwargs', 'embed_dim=24', 'depth=1', 'num_heads=2', '--train-limit', '256', '--eval-limit', '64', '--batch-size', '64', '--epochs', '2', '--threads', '1'];
const options = { modelKwargs: { embed_dim: 24, depth: 1, num_heads: 2 }, trainLimit: 256, evalLimit: 64, batchSize: 64, epochs: 2, threads: 1 };
const isolated = { HOME: join(dir, 'home'), TESSERA_DATASET_MIRROR: 'http://127.0.0.1:9/', TESSERA_DATA: '' };
/** Written after the commit from what it holds; a kill among them must not matter either. */
const derived = new Set(['report.html', 'loss.png', 'accuracy.png', 'confusion.png']);
const quiet = { log: () => {} };

interface Step { n: number; step: FileStep; path: string; phase: string; snapshot?: string }

/**
 * Trains with the fault hook recording every file step; before each step of an epoch's end or of
 * the interrupt save (and the first derived write after each, i.e. right after the commit) the
 * run directory is copied to `snapshots/<n>`. `interruptAt` aborts in that epoch at that batch.
 */
async function recordRun(name: string, interruptAt?: { epoch: number; batch: number }): Promise<{ result: TrainResult; steps: Step[] }> {
  const out = join(dir, name);
  const snapshots = join(dir, `${name}-snapshots`);
  const steps: Step[] = [];
  let phase = 'start';
  const seenDerived = new Set<string>();
  const controller = new AbortController();
  setFaultHook((step, path) => {
    const s: Step = { n: steps.length + 1, step, path: relative(out, path), phase };
    steps.push(s);
    const atEnd = phase.startsWith('end of') || phase === 'interrupt save';
    const isDerived = derived.has(basename(path));
    if (!atEnd || (isDerived && seenDerived.has(phase))) return;
    if (isDerived) seenDerived.add(phase);
    s.snapshot = join(snapshots, String(s.n));
    cpSync(out, s.snapshot, { recursive: true, verbatimSymlinks: true });
  });
  try {
    const result = await train(resolveTrainConfig({ ...options, output: out }), {
      signal: controller.signal,
      events: {
        ...quiet,
        onStep: (s) => {
          phase = s.batch === s.batches ? `end of epoch ${s.epoch}` : `epoch ${s.epoch}`;
          if (s.epoch === interruptAt?.epoch && s.batch === interruptAt.batch) {
            controller.abort();
            phase = 'interrupt save';
          }
        },
      },
    });
    return { result, steps };
  } finally {
    setFaultHook();
  }
}

const weights = (path: string) => readStateDict(path).state;
function maxDiff(a: ReturnType<typeof weights>, b: ReturnType<typeof weights>): number {
  expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
  let d = 0;
  for (const [k, t] of Object.entries(a)) for (let i = 0; i < t.data.length; i++) d = Math.max(d, Math.abs(t.data[i]! - b[k]!.data[i]!));
  return d;
}
const compared = ['epoch', 'step', 'lr', 'train_loss', 'eval_loss', 'eval_top1', 'eval_top5'] as const;
const metricsOf = (run: string) => readFileSync(join(run, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number>);

let reference: { run: string; last: ReturnType<typeof weights>; best: ReturnType<typeof weights>; metrics: Record<string, number>[] };
let straight: Step[];

/** What is wrong with a finished run compared with the uninterrupted one ('' when nothing). */
function differences(run: string): string {
  const problems: string[] = [];
  const last = maxDiff(reference.last, weights(join(run, 'last.safetensors')));
  if (!(last < 1e-6)) problems.push(`last.safetensors differs by ${last}`);
  const best = maxDiff(reference.best, weights(join(run, 'best.safetensors')));
  if (!(best < 1e-6)) problems.push(`best.safetensors differs by ${best}`);
  const metrics = metricsOf(run);
  if (metrics.map((m) => m.epoch).join() !== reference.metrics.map((m) => m.epoch).join()) {
    problems.push(`metrics.jsonl has epochs [${metrics.map((m) => m.epoch)}], expected [${reference.metrics.map((m) => m.epoch)}]`);
  } else {
    for (const [i, m] of metrics.entries()) {
      for (const k of compared) if (!(Math.abs(m[k]! - reference.metrics[i]![k]!) < 1e-6)) problems.push(`metrics.jsonl epoch ${m.epoch} ${k} is ${m[k]}, expected ${reference.metrics[i]![k]}`);
    }
  }
  return problems.join('; ');
}

/** Resumes every snapshot in-process; returns one line per point that did not end as the uninterrupted run. */
async function resumeEach(steps: Step[]): Promise<string[]> {
  const failures: string[] = [];
  for (const s of steps.filter((x) => x.snapshot)) {
    const where = `step ${s.n} (${s.step} ${s.path}, ${s.phase})`;
    const run = `${s.snapshot}-resumed`;
    cpSync(s.snapshot!, run, { recursive: true, verbatimSymlinks: true });
    try {
      const r = await train(resolveTrainConfig(readRunConfig(run)), { resume: run, events: quiet });
      const problem = r.status === 'completed' ? differences(run) : `resume ended ${r.status}`;
      if (problem) failures.push(`${where}: ${problem}`);
    } catch (e) {
      failures.push(`${where}: resume failed: ${(e as Error).message}`);
    }
  }
  return failures;
}

beforeAll(async () => {
  const { result, steps } = await recordRun('straight');
  expect(result.status).toBe('completed');
  straight = steps;
  const run = result.runDir;
  reference = { run, last: weights(join(run, 'last.safetensors')), best: weights(join(run, 'best.safetensors')), metrics: metricsOf(run) };
  expect(reference.metrics.map((m) => m.epoch)).toEqual([1, 2]);
}, 30_000);

describe('a run killed at a file step of an epoch end or an interrupt save', () => {
  it('resumes to the uninterrupted weights and metrics from every step of both epoch ends', async () => {
    const points = straight.filter((s) => s.snapshot);
    expect(points.filter((s) => s.phase === 'end of epoch 1').length).toBeGreaterThanOrEqual(4);
    expect(points.filter((s) => s.phase === 'end of epoch 2').length).toBeGreaterThanOrEqual(4);
    expect(await resumeEach(straight)).toEqual([]);
  }, 120_000);

  it('resumes to the uninterrupted weights and metrics from every step of an interrupt save', async () => {
    const { result, steps } = await recordRun('interrupted', { epoch: 2, batch: 2 });
    expect(result.status).toBe('interrupted');
    expect(steps.filter((s) => s.snapshot && s.phase === 'interrupt save').length).toBeGreaterThanOrEqual(3);
    expect(differences(result.runDir)).not.toBe(''); // sanity: the interrupted run itself is unfinished
    expect(await resumeEach(steps.filter((s) => s.phase === 'interrupt save'))).toEqual([]);
    const resumed = await train(resolveTrainConfig(readRunConfig(result.runDir)), { resume: result.runDir, events: quiet });
    expect(resumed.status).toBe('completed');
    expect(differences(result.runDir)).toBe('');
  }, 60_000);

  it('leaves what the in-process copy holds when SIGKILLed there, and `tessera train --resume` finishes it', async () => {
    const end1 = straight.filter((s) => s.snapshot && s.phase === 'end of epoch 1');
    const end2 = straight.filter((s) => s.snapshot && s.phase === 'end of epoch 2' && !derived.has(basename(s.path)));
    // before the first commit (the run starts again from the beginning), and mid-way through the second
    for (const s of [end1[0]!, end2[Math.floor(end2.length / 2)]!]) {
      const out = join(dir, `killed-${s.n}`);
      const killed = await spawnTrain([...flags, '--output', out], { ...isolated, TESSERA_FAULT_AT: String(s.n) });
      expect(killed.signal, killed.stderr).toBe('SIGKILL');
      expect(killed.stderr).toContain(`killed at ${s.step} ${join(out, s.path)}`);
      expect(tree(out)).toEqual(tree(s.snapshot!));
      const r = await runCli(['train', '--resume', out, '--json'], isolated);
      expect(r.code, r.stderr).toBe(0);
      expect(differences(out)).toBe('');
    }
  }, 60_000);
});

/** Names, kinds and link targets under a run directory (contents differ in timings). */
function tree(root: string, sub = ''): string[] {
  return readdirSync(join(root, sub)).sort().flatMap((name) => {
    const rel = join(sub, name);
    const st = lstatSync(join(root, rel));
    if (st.isSymbolicLink()) return [`${rel} -> ${readlinkSync(join(root, rel))}`];
    if (st.isDirectory()) return [`${rel}/`, ...tree(root, rel)];
    // a temp file is named by the writing process's id
    return [(derived.has(name) ? `${rel} (derived)` : rel).replace(/\.\d+\.tmp$/, '.<pid>.tmp')];
  });
}

function spawnTrain(args: string[], env: Record<string, string>): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', 'train', ...args], {
      cwd: fileURLToPath(new URL('../../', import.meta.url)), env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });
}
