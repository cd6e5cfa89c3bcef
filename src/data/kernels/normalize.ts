/** ToTensor + Normalize on WebAssembly SIMD (normalize.as.ts): the same floats as pixels.ts's toNormalizedChw. */
import { Arena, lazyKernels, type KernelExports } from './instance.js';
import { WASM_BASE64 } from './normalize_module.js';

interface Exports extends KernelExports {
  normalizeRgb(src: number, n: number, dst: number, params: number): void;
}

const kernels = lazyKernels<Exports>(WASM_BASE64);

/** RGB bytes (`pixels` of them) → three float planes in `out`; false when WebAssembly SIMD is unavailable. */
export function normalizeRgbWasm(src: Uint8Array, pixels: number, mean: readonly number[], std: readonly number[], out: Float32Array): boolean {
  const k = kernels();
  if (!k) return false;
  const arena = new Arena(k);
  const at = arena.take(pixels * 3), to = arena.take(pixels * 12), params = arena.take(24);
  const mem = arena.commit();
  mem.set(src.subarray(0, pixels * 3), at);
  new Float32Array(mem.buffer, params, 6).set([mean[0]!, mean[1] ?? mean[0]!, mean[2] ?? mean[0]!, std[0]!, std[1] ?? std[0]!, std[2] ?? std[0]!]);
  k.normalizeRgb(at, pixels, to, params);
  out.set(new Float32Array(mem.buffer, to, pixels * 3));
  return true;
}
