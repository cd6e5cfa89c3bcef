/**
 * PIL's resampling on WebAssembly SIMD (resample.as.ts): bit-identical to resample.ts's
 * JavaScript passes and several times faster, for interleaved RGB. Where WebAssembly SIMD is
 * missing, the JavaScript passes run.
 */
import { Arena, bytesOf, lazyKernels, type KernelExports } from './instance.js';
import { WASM_BASE64 } from './resample_module.js';

interface Exports extends KernelExports {
  horizontalRgb(src: number, inWidth: number, height: number, dst: number, outWidth: number, bounds: number, weights: number, ksize: number): void;
  vertical(src: number, stride: number, dst: number, outHeight: number, bounds: number, weights: number, ksize: number): void;
}

/** One axis's coefficients, as resample.ts computes them: (min, taps) per output index and ksize weights each. */
export interface AxisCoefficients { ksize: number; bounds: Int32Array; weights: Int32Array }

const kernels = lazyKernels<Exports>(WASM_BASE64);

/** True when the WebAssembly SIMD kernels load here (Node ≥ 16.4, current browsers). */
export const simdAvailable = (): boolean => kernels() !== undefined;

/**
 * Resamples RGB pixels `src` (inWidth × inHeight) with the given passes (undefined: that axis
 * keeps its size) into `out` (outWidth × outHeight × 3 bytes). False when SIMD is unavailable.
 */
export function resampleRgbSimd(
  src: Uint8Array, inWidth: number, inHeight: number, out: Uint8Array, outWidth: number, outHeight: number,
  horizontal: AxisCoefficients | undefined, vertical: AxisCoefficients | undefined,
): boolean {
  const k = kernels();
  if (!k) return false;
  const srcBytes = inWidth * inHeight * 3, outBytes = outWidth * outHeight * 3;
  const arena = new Arena(k);
  const at = arena.take(srcBytes);
  const mid = horizontal ? arena.take(outWidth * inHeight * 3) : at;
  const end = vertical ? arena.take(outBytes) : mid;
  const coefficients = [horizontal, vertical].map((c) => c && { bounds: arena.take(c.bounds.byteLength), weights: arena.take(c.weights.byteLength) });
  const mem = arena.commit();
  mem.set(src.subarray(0, srcBytes), at);
  const [h, v] = coefficients;
  if (horizontal && h) {
    mem.set(bytesOf(horizontal.bounds), h.bounds);
    mem.set(bytesOf(horizontal.weights), h.weights);
    k.horizontalRgb(at, inWidth, inHeight, mid, outWidth, h.bounds, h.weights, horizontal.ksize);
  }
  if (vertical && v) {
    mem.set(bytesOf(vertical.bounds), v.bounds);
    mem.set(bytesOf(vertical.weights), v.weights);
    k.vertical(mid, outWidth * 3, end, outHeight, v.bounds, v.weights, vertical.ksize);
  }
  out.set(mem.subarray(end, end + outBytes));
  return true;
}
