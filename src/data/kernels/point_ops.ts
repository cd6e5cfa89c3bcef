/** pixels.ts's per-pixel operations on WebAssembly (point_ops.as.ts): the same bytes, faster. */
import { Arena, lazyKernels, type KernelExports } from './instance.js';
import { WASM_BASE64 } from './point_ops_module.js';

interface Exports extends KernelExports {
  applyLut(src: number, dst: number, n: number, c: number, luts: number): void;
  histograms(src: number, n: number, c: number, out: number): void;
  saturation(src: number, dst: number, pixels: number, factor: number): void;
  sharpness(src: number, dst: number, w: number, h: number, c: number, factor: number): void;
}

const kernels = lazyKernels<Exports>(WASM_BASE64);

/** Runs `kernel` on a copy of `src` in module memory and copies its `src.length` output bytes to `out`. */
function mapBytes(src: Uint8Array, out: Uint8Array, extra: Uint8Array | undefined, kernel: (k: Exports, at: number, to: number, extraAt: number) => void): boolean {
  const k = kernels();
  if (!k) return false;
  const arena = new Arena(k);
  const at = arena.take(src.length), to = arena.take(src.length), extraAt = extra ? arena.take(extra.length) : 0;
  const mem = arena.commit();
  mem.set(src, at);
  if (extra) mem.set(extra, extraAt);
  kernel(k, at, to, extraAt);
  out.set(mem.subarray(to, to + src.length));
  return true;
}

/** One 256-byte table per channel (`c` of them, concatenated). */
export const applyLutWasm = (src: Uint8Array, out: Uint8Array, c: number, luts: Uint8Array): boolean =>
  mapBytes(src, out, luts, (k, at, to, l) => k.applyLut(at, to, src.length, c, l));

export const saturationWasm = (src: Uint8Array, out: Uint8Array, factor: number): boolean =>
  mapBytes(src, out, undefined, (k, at, to) => k.saturation(at, to, src.length / 3, factor));

export const sharpnessWasm = (src: Uint8Array, out: Uint8Array, w: number, h: number, c: number, factor: number): boolean =>
  mapBytes(src, out, undefined, (k, at, to) => k.sharpness(at, to, w, h, c, factor));

/** Per-channel 256-bin histograms, or undefined without WebAssembly. */
export function histogramsWasm(src: Uint8Array, c: number): Uint32Array | undefined {
  const k = kernels();
  if (!k) return undefined;
  const arena = new Arena(k);
  const at = arena.take(src.length), out = arena.take(c * 1024);
  const mem = arena.commit();
  mem.set(src, at);
  k.histograms(at, src.length, c, out);
  return new Uint32Array(mem.buffer, out, c * 256).slice();
}
