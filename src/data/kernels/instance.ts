/**
 * Instantiating the WebAssembly kernels (compiled from the *.as.ts files beside this one, and
 * AdamW's in src/optim, by scripts/build_wasm.mjs) and laying out their memory. Each module has its own memory, used as a
 * scratch arena per call: the caller's buffers are copied in after the module's static data.
 */

export interface KernelExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
}

function decodeBase64(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

let enabled = true;

/**
 * Turns the WebAssembly kernels off (the JavaScript loops, which give the same bytes, run
 * instead) or back on; returns the previous setting. For comparing the two and for debugging.
 */
export function useWasmKernels(on: boolean): boolean {
  const was = enabled;
  enabled = on;
  return was;
}

/**
 * A lazily compiled module, for callers that instantiate it themselves (AdamW: one instance per
 * optimiser over a memory of its own): undefined where it cannot load (no WebAssembly SIMD) or
 * when turned off.
 */
export function wasmModule(base64: string): () => WebAssembly.Module | undefined {
  let compiled: WebAssembly.Module | null | undefined;
  return () => {
    if (!enabled) return undefined;
    if (compiled === undefined) {
      try {
        compiled = new WebAssembly.Module(decodeBase64(base64));
      } catch {
        compiled = null;
      }
    }
    return compiled ?? undefined;
  };
}

/** A lazily instantiated module: undefined where it cannot load (no WebAssembly SIMD) or when turned off. */
export function lazyKernels<T extends KernelExports>(base64: string): () => T | undefined {
  const compiled = wasmModule(base64);
  let instance: T | null | undefined;
  return () => {
    const m = compiled();
    if (!m) return undefined;
    if (instance === undefined) {
      try {
        instance = new WebAssembly.Instance(m).exports as unknown as T;
      } catch {
        instance = null;
      }
    }
    return instance ?? undefined;
  };
}

/** Bump allocation in a module's memory for one call: vector-aligned, with vector-sized slack after each buffer. */
export class Arena {
  private end: number;

  constructor(private readonly k: KernelExports) {
    this.end = align(k.heapBase());
  }

  /** Reserves `bytes` and returns their address. */
  take(bytes: number): number {
    const at = this.end;
    this.end = align(at + bytes + 16);
    return at;
  }

  /** Grows the memory to hold everything taken; returns a byte view of it (valid until the next grow). */
  commit(): Uint8Array {
    const missing = this.end - this.k.memory.buffer.byteLength;
    if (missing > 0) this.k.memory.grow(Math.ceil(missing / 65536));
    return new Uint8Array(this.k.memory.buffer);
  }
}

const align = (n: number) => (n + 15) & ~15;

/** The bytes of a typed array, for copying into module memory. */
export const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
