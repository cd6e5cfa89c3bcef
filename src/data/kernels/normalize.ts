/** ToTensor + Normalize on WebAssembly SIMD (normalize.as.ts): the same floats as pixels.ts's toNormalizedChw. */
import { Arena, lazyKernels, type KernelExports } from './instance.js';
import { WASM_BASE64 } from './normalize_module.js';

interface Exports extends KernelExports {
  normalizeRgb(src: number, n: number, dst: number, params: number): void;
}

const kernels = lazyKernels<Exports>(WASM_BASE64);

/** RGB bytes (`pixels` of them) → three float planes in `out`; false when WebAssembly SIMD is unavailable. */
export function normalizeRgbWasm(src: Uint8Array, pixels: number, mean: readonly number[], std: readonly number[], out: Float32Array): boolean {
  return normalizeRgbWindowWasm(src, pixels, 0, 0, pixels, 1, mean, std, out);
}

/**
 * The height × width window at (top, left) of an interleaved RGB image `srcWidth` pixels wide →
 * three float planes in `out`, without cutting the window out first: its rows are copied straight
 * into the module's memory (tiled inference normalises 224² windows of a large image this way).
 * False when WebAssembly SIMD is unavailable.
 */
export function normalizeRgbWindowWasm(src: Uint8Array, srcWidth: number, top: number, left: number, width: number, height: number,
  mean: readonly number[], std: readonly number[], out: Float32Array): boolean {
  const k = kernels();
  if (!k) return false;
  const pixels = width * height, rowBytes = width * 3;
  const arena = new Arena(k);
  const at = arena.take(pixels * 3), to = arena.take(pixels * 12), params = arena.take(24);
  const mem = arena.commit();
  if (srcWidth === width) mem.set(src.subarray(top * rowBytes, (top + height) * rowBytes), at);
  else for (let y = 0; y < height; y++) {
    const s = ((top + y) * srcWidth + left) * 3;
    mem.set(src.subarray(s, s + rowBytes), at + y * rowBytes);
  }
  new Float32Array(mem.buffer, params, 6).set([mean[0]!, mean[1] ?? mean[0]!, mean[2] ?? mean[0]!, std[0]!, std[1] ?? std[0]!, std[2] ?? std[0]!]);
  k.normalizeRgb(at, pixels, to, params);
  out.set(new Float32Array(mem.buffer, to, pixels * 3));
  return true;
}
