/**
 * The file layer of what tessera writes: atomic writes (a temp file in the same directory,
 * fsync, then rename over the target) and the other steps of a run directory's commit (mkdir,
 * hard link, symlink, remove). Each step first passes a fault point, so a test can stop the
 * process at any one of them: `TESSERA_FAULT_AT=N` SIGKILLs the process at its Nth step (a write
 * dies with its temp file created and empty), and `setFaultHook` runs a function there
 * in-process. Unset, a fault point costs one comparison.
 */
import { closeSync, copyFileSync, fsyncSync, linkSync, mkdirSync, openSync, renameSync, rmSync, symlinkSync, writeSync } from 'node:fs';
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

/** Creates a directory (and its parents); `exclusive` fails with EEXIST when it already exists. */
export function makeDir(path: string, { exclusive = false } = {}): void {
  faultHook?.('mkdir', path);
  if (exclusive) mkdirSync(path);
  else mkdirSync(path, { recursive: true });
}

/** `to` becomes a second name of the file `from` (a copy where the file system has no hard links). */
export function linkOrCopy(from: string, to: string): void {
  faultHook?.('link', to);
  try {
    linkSync(from, to);
  } catch {
    copyFileSync(from, to);
    const fd = openSync(to, 'r+');
    fsyncSync(fd);
    closeSync(fd);
  }
}

/** Points `path` at `target` (relative to path's directory) in one rename, whatever `path` was. */
export function replaceWithSymlink(path: string, target: string): void {
  const tmp = tempPath(path);
  rmSync(tmp, { force: true });
  faultHook?.('symlink', path);
  symlinkSync(target, tmp);
  faultHook?.('rename', path);
  renameSync(tmp, path);
}

export function removePath(path: string): void {
  faultHook?.('remove', path);
  rmSync(path, { recursive: true, force: true });
}

/** Makes a directory's entries (renames, new names) durable; a no-op where directories cannot be opened. */
export function syncDir(path: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    fsyncSync(fd);
  } catch {
    // Windows cannot fsync a directory; its renames are durable without it
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
