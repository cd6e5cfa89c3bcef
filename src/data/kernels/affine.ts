/** PIL's affine transform on WebAssembly (affine.as.ts): the same bytes as affine.ts's JavaScript loop, faster. */
import { Arena, lazyKernels, type KernelExports } from './instance.js';
import { WASM_BASE64 } from './affine_module.js';

interface Exports extends KernelExports {
  affine(src: number, dst: number, w: number, h: number, c: number, a: number, b: number, cc: number, d: number, e: number, f: number, bicubic: boolean, fill: number): void;
}

const kernels = lazyKernels<Exports>(WASM_BASE64);

/** Writes the transform of `src` (w × h × c) into `out`; false when WebAssembly is unavailable. */
export function affineWasm(src: Uint8Array, out: Uint8Array, w: number, h: number, c: number, m: readonly number[], bicubic: boolean, fills: readonly number[]): boolean {
  const k = kernels();
  if (!k) return false;
  const bytes = w * h * c;
  const arena = new Arena(k);
  const at = arena.take(bytes), to = arena.take(bytes), fill = arena.take(c);
  const mem = arena.commit();
  mem.set(src.subarray(0, bytes), at);
  mem.set(fills.slice(0, c), fill);
  k.affine(at, to, w, h, c, m[0]!, m[1]!, m[2]!, m[3]!, m[4]!, m[5]!, bicubic, fill);
  out.set(mem.subarray(to, to + bytes));
  return true;
}
