/** Small synthetic dataset files in the real on-disk formats (IDX, CIFAR binary). */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const created: string[] = [];

export function tempDir(prefix = 'tessera-data-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  created.push(dir);
  return dir;
}

/** For afterAll: removes every directory tempDir made in this test file. */
export function removeTempDirs(): void {
  for (const dir of created.splice(0)) rmSync(dir, { recursive: true, force: true });
}
export const md5 = (bytes: Uint8Array): string => createHash('md5').update(bytes).digest('hex');

/** An uncompressed IDX ubyte file with the given dims; data defaults to a byte ramp. */
export function idxBytes(dims: readonly number[], data?: Uint8Array): Uint8Array {
  const count = dims.reduce((a, b) => a * b, 1);
  const body = data ?? Uint8Array.from({ length: count }, (_, i) => (i * 7) % 256);
  const out = new Uint8Array(4 + 4 * dims.length + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, (0x08 << 8) | dims.length);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d));
  out.set(body, 4 + 4 * dims.length);
  return out;
}

/** n 28×28 images where image i is filled with the value i, and labels i % classes. */
export function mnistLike(n: number, classes = 10): { images: Uint8Array; labels: Uint8Array } {
  const pixels = new Uint8Array(n * 28 * 28);
  for (let i = 0; i < n; i++) pixels.fill(i % 256, i * 784, (i + 1) * 784);
  const labels = Uint8Array.from({ length: n }, (_, i) => i % classes);
  return { images: idxBytes([n, 28, 28], pixels), labels: idxBytes([n], labels) };
}

/**
 * CIFAR binary records: record i has label(s) `labels[i]` and pixel (c, y, x) = (i + 3c + y + x) mod 256,
 * so a test can check the CHW order exactly.
 */
export function cifarRecords(labels: readonly (readonly number[])[]): Uint8Array {
  const labelBytes = labels[0]!.length;
  const record = labelBytes + 3072;
  const out = new Uint8Array(labels.length * record);
  labels.forEach((ls, i) => {
    out.set(ls, i * record);
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) out[i * record + labelBytes + c * 1024 + y * 32 + x] = (i + 3 * c + y + x) % 256;
      }
    }
  });
  return out;
}

export const cifarPixel = (i: number, c: number, y: number, x: number): number => (i + 3 * c + y + x) % 256;

export const CIFAR10_NAMES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
export const cifar100Names = (): string[] => Array.from({ length: 100 }, (_, i) => `class_${i}`);
