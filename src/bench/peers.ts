/**
 * Running the Python peers that benchmarks compare against: Debian's python3-torch (PyTorch 1.13,
 * OpenBLAS) and, where installed, a PyTorch 2.x CPU wheel in a folder of its own, put in front of
 * Debian's through PYTHONPATH (scripts/install_torch2.sh installs it; TESSERA_TORCH2_PATH names it).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PYTHON = '/usr/bin/python3';

/** Where scripts/install_torch2.sh puts the PyTorch 2.x wheel, unless TESSERA_TORCH2_PATH says otherwise. */
export const DEFAULT_TORCH2_PATH = '/opt/torch2';

export const torch2Path = (): string => process.env.TESSERA_TORCH2_PATH || DEFAULT_TORCH2_PATH;

/** Which Python environment runs a peer: Debian's torch, or the PyTorch 2.x folder in front of it. */
export interface PythonEnv { pythonPath?: string }

export type TorchProbe = { ok: true; version: string } | { ok: false; reason: string };

/** Path of a peer script shipped in the package's `bench/peers/` (from src/ or from the compiled dist/src/). */
export function peerScript(name: string): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return join(dir, 'bench', 'peers', name);
}

const childEnv = (env: PythonEnv, threads?: number): NodeJS.ProcessEnv => {
  const e: NodeJS.ProcessEnv = { ...process.env };
  if (env.pythonPath) e.PYTHONPATH = env.pythonPath;
  else delete e.PYTHONPATH;
  if (threads !== undefined) {
    e.OMP_NUM_THREADS = String(threads);
    e.OPENBLAS_NUM_THREADS = String(threads);
    e.MKL_NUM_THREADS = String(threads);
  }
  return e;
};

/** Which torch the environment imports, or a one-line reason why it cannot. */
export function probeTorch(env: PythonEnv = {}): TorchProbe {
  if (!existsSync(PYTHON)) return { ok: false, reason: `${PYTHON} not found` };
  if (env.pythonPath && !existsSync(join(env.pythonPath, 'torch'))) {
    return { ok: false, reason: `no PyTorch 2.x at ${env.pythonPath} (run scripts/install_torch2.sh, or set TESSERA_TORCH2_PATH)` };
  }
  const r = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8', env: childEnv(env) });
  if (r.status !== 0) {
    const last = (r.stderr || '').trim().split('\n').pop() ?? '';
    return { ok: false, reason: `import torch failed${env.pythonPath ? ` with PYTHONPATH=${env.pythonPath}` : ''}: ${last}` };
  }
  return { ok: true, version: r.stdout.trim() };
}

/** The PyTorch 2.x environment, or why there is none (absent, or the folder holds an older torch). */
export function probeTorch2(): { env: PythonEnv; probe: TorchProbe } {
  const env = { pythonPath: torch2Path() };
  const probe = probeTorch(env);
  if (probe.ok && Number(probe.version.split('.')[0]) < 2) {
    return { env, probe: { ok: false, reason: `${env.pythonPath} holds PyTorch ${probe.version}, not 2.x` } };
  }
  return { env, probe };
}

/** Debian's torch importable by /usr/bin/python3 (without the PyTorch 2.x folder). */
export function torchAvailable(): boolean {
  return probeTorch().ok;
}

/**
 * Runs a peer with `threads` OpenMP/BLAS threads; returns its last stdout line parsed as JSON.
 * `env.pythonPath` selects the PyTorch 2.x install; without it PYTHONPATH is cleared so that
 * Debian's torch is the one imported.
 */
export function runPeer<T>(script: string, args: (string | number)[], threads: number, env: PythonEnv = {}): T {
  const r = spawnSync(PYTHON, [script, ...args.map(String)], { encoding: 'utf8', maxBuffer: 1 << 26, env: childEnv(env, threads) });
  if (r.status !== 0) throw new Error(`peer ${script} ${args.join(' ')} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}
