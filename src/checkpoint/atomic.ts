/**
 * The file layer of what tessera writes: atomic writes (a temp file in the same directory,
 * fsync, then rename over the target) and the other steps of a run directory's commit (mkdir,
 * hard link, symlink, remove). Each step first passes a fault point, so a test can stop the
 * process at any one of them: `TESSERA_FAULT_AT=N` SIGKILLs the process at its Nth step (a write
 * dies with its temp file created and empty), and `setFaultHook` runs a function there
 * in-process. Unset, a fault point costs one comparison.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export type FileStep = 'write' | 'rename' | 'link' | 'symlink' | 'remove' | 'mkdir';
/** Called before each step with the path the step creates, replaces or removes. */
export type FaultHook = (step: FileStep, path: string) => void;

let faultHook: FaultHook | undefined = killAtStep(process.env.TESSERA_FAULT_AT);

/** Installs (or with no argument removes) the in-process fault hook; returns the previous one. */
export function setFaultHook(hook?: FaultHook): FaultHook | undefined {
  const previous = faultHook;
  faultHook = hook;
  return previous;
}

function killAtStep(at: string | undefined): FaultHook | undefined {
  if (!at) return undefined;
  const n = Number(at);
  if (!Number.isInteger(n) || n < 1) throw new Error(`TESSERA_FAULT_AT must be a file step number (1, 2, …), got "${at}"`);
  let count = 0;
  return (step, path) => {
    if (++count !== n) return;
    writeSync(2, `tessera: TESSERA_FAULT_AT=${n}: killed at ${step} ${path}\n`);
    process.kill(process.pid, 'SIGKILL');
  };
}

const tempPath = (path: string) => join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);

export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const tmp = tempPath(path);
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  try {
    const fd = openSync(tmp, 'w');
    try {
      faultHook?.('write', path);
      for (let off = 0; off < bytes.byteLength;) off += writeSync(fd, bytes, off, bytes.byteLength - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    faultHook?.('rename', path);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}
