/**
 * PIL's resampling on WebAssembly SIMD (resample.as.ts): bit-identical to resample.ts's
 * JavaScript passes and several times faster, for interleaved RGB. Where WebAssembly SIMD is
 * missing, `simdResampler()` is undefined and the JavaScript passes run.
 */
import { WASM_BASE64 } from './resample_module.js';

interface Exports {
  memory: WebAssembly.Memory;
  horizontalRgb(src: number, inWidth: number, height: number, dst: number, outWidth: number, bounds: number, weights: number, ksize: number): void;
  vertical(src: number, stride: number, dst: number, outHeight: number, bounds: number, weights: number, ksize: number): void;
}

/** One axis's coefficients, as resample.ts computes them: (min, taps) per output index and ksize weights each. */
export interface AxisCoefficients { ksize: number; bounds: Int32Array; weights: Int32Array }

const SLACK = 16;
const align = (n: number) => (n + 15) & ~15;

function decodeBase64(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

let instance: Exports | null | undefined;

function kernels(): Exports | undefined {
  if (instance === undefined) {
    try {
      instance = new WebAssembly.Instance(new WebAssembly.Module(decodeBase64(WASM_BASE64))).exports as unknown as Exports;
    } catch {
      instance = null; // no WebAssembly SIMD here
    }
  }
  return instance ?? undefined;
}

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
  const srcBytes = inWidth * inHeight * 3, midBytes = outWidth * inHeight * 3, outBytes = outWidth * outHeight * 3;
  const at = { src: 0, mid: 0, out: 0, hb: 0, hw: 0, vb: 0, vw: 0 };
  let end = 0;
  const take = (bytes: number) => { const p = end; end = align(end + bytes + SLACK); return p; };
  at.src = take(srcBytes);
  at.mid = horizontal ? take(midBytes) : at.src;
  at.out = vertical ? take(outBytes) : at.mid;
  if (horizontal) { at.hb = take(horizontal.bounds.byteLength); at.hw = take(horizontal.weights.byteLength); }
  if (vertical) { at.vb = take(vertical.bounds.byteLength); at.vw = take(vertical.weights.byteLength); }
  const missing = end - k.memory.buffer.byteLength;
  if (missing > 0) k.memory.grow(Math.ceil(missing / 65536));
  const mem = new Uint8Array(k.memory.buffer);
  mem.set(src.subarray(0, srcBytes), at.src);
  const put = (a: Int32Array, p: number) => mem.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), p);
  if (horizontal) {
    put(horizontal.bounds, at.hb);
    put(horizontal.weights, at.hw);
    k.horizontalRgb(at.src, inWidth, inHeight, at.mid, outWidth, at.hb, at.hw, horizontal.ksize);
  }
  if (vertical) {
    put(vertical.bounds, at.vb);
    put(vertical.weights, at.vw);
    k.vertical(at.mid, outWidth * 3, at.out, outHeight, at.vb, at.vw, vertical.ksize);
  }
  out.set(mem.subarray(at.out, at.out + outBytes));
  return true;
}
