/**
 * The adapter over onnxruntime-node: the only module in tessera that imports it. Sessions are
 * cached by (model bytes, options), reference-counted, and released on the last dispose.
 */
import { createHash } from 'node:crypto';
import * as ort from 'onnxruntime-node';
import type { DType, HostArray } from '../ir/dtype.js';
import { physicalCores } from './cores.js';
import { oneLine } from '../quote.js';

// ORT's telemetry client matches a std::regex against /proc/self/cmdline when the first session
// creates ORT's environment; the regex recurses per byte, so a command line over about 29 kB
// (700 image paths given to `predict`) overflows the stack: a segmentation fault. ORT reads this
// variable at that point; a value the user set is kept.
process.env.ORT_DISABLE_TELEMETRY ??= '1';

export type GraphOptimization = 'disabled' | 'basic' | 'extended' | 'all';

export interface SessionOptions {
  /** Intra-op threads; defaults to the number of physical cores. */
  threads?: number;
  /** ORT graph optimisation level; defaults to 'all'. */
  graphOptimization?: GraphOptimization;
  /** Execution provider: 'cpu' (default), 'cuda', 'tensorrt', 'dml', 'coreml', 'webgpu' where installed. */
  executionProvider?: string;
  /** Writes an ORT profile (chrome trace JSON) with this file prefix. */
  profilePrefix?: string;
  /** ORT's CPU memory arena (default true). */
  memoryArena?: boolean;
  /** ORT's memory-pattern planning (default false, see resolvedOptions). */
  memoryPattern?: boolean;
  /** Writes ORT's optimised graph here (for inspection). */
  optimizedModelPath?: string;
  /**
   * Names of ORT graph transformers to skip (ORT's `optimization.disable_specified_optimizers`),
   * e.g. 'MatmulTransposeFusion'. Default none.
   */
  disabledOptimizers?: readonly string[];
}

export interface HostTensor {
  data: HostArray;
  shape: number[];
}

export interface Session {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, { dtype: DType; data: HostArray; shape: number[] }>): Promise<Record<string, HostTensor>>;
  /** Ends profiling and returns the profile file path, when profiling was enabled. */
  endProfiling(): string | undefined;
  release(): Promise<void>;
}

interface CacheEntry { session: Promise<ort.InferenceSession>; refs: number }
const cache = new Map<string, CacheEntry>();

type Resolved = Required<Omit<SessionOptions, 'profilePrefix' | 'optimizedModelPath'>> & Pick<SessionOptions, 'profilePrefix' | 'optimizedModelPath'>;

export function resolvedOptions(o: SessionOptions): Resolved {
  const threads = o.threads ?? physicalCores();
  if (!(Number.isInteger(threads) && threads >= 1)) throw new RangeError(`threads must be a positive integer, got ${threads}`);
  return {
    threads,
    graphOptimization: o.graphOptimization ?? 'all',
    executionProvider: o.executionProvider ?? 'cpu',
    profilePrefix: o.profilePrefix,
    memoryArena: o.memoryArena ?? true,
    // Measured on ViT training steps: pattern planning with a symbolic batch raised peak RSS 1.8x and was slower.
    memoryPattern: o.memoryPattern ?? false,
    optimizedModelPath: o.optimizedModelPath,
    disabledOptimizers: [...(o.disabledOptimizers ?? [])],
  };
}

export async function openSession(bytes: Uint8Array, options: SessionOptions = {}): Promise<Session> {
  const opts = resolvedOptions(options);
  const key = createHash('sha256').update(bytes).update(JSON.stringify(opts)).digest('hex');
  let entry = cache.get(key);
  if (!entry || opts.profilePrefix) {
    entry = {
      refs: 0,
      session: ort.InferenceSession.create(bytes, {
        intraOpNumThreads: opts.threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: opts.graphOptimization,
        executionProviders: [opts.executionProvider],
        enableProfiling: opts.profilePrefix !== undefined,
        profileFilePrefix: opts.profilePrefix,
        enableCpuMemArena: opts.memoryArena,
        enableMemPattern: opts.memoryPattern,
        ...(opts.optimizedModelPath ? { optimizedModelFilePath: opts.optimizedModelPath } : {}),
        ...(opts.disabledOptimizers.length ? { extra: { optimization: { disable_specified_optimizers: opts.disabledOptimizers.join(';') } } } : {}),
        // fatal only: a model ORT refuses is reported by the one-line error below, not also by ORT's own log lines
        logSeverityLevel: 4,
      }).catch((e: unknown) => {
        cache.delete(key);
        // ORT's message names its C++ frames over several lines; the last error code's text is the reason
        const reason = oneLine((e as Error).message.replace(/^[^]*\[ONNXRuntimeError\] : \d+ : \w+ : /, ''), 500);
        throw new Error(`ONNX Runtime could not load the model on provider "${opts.executionProvider}": ${reason}`);
      }),
    };
    if (!opts.profilePrefix) cache.set(key, entry);
  }
  entry.refs++;
  const held = entry;
  const session = await held.session;
  let released = false;
  let profileFile: string | undefined;

  return {
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    async run(feeds) {
      if (released) throw new Error('this executable was disposed');
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const [name, f] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor(f.dtype, f.data as never, f.shape);
      const results = await session.run(ortFeeds);
      const out: Record<string, HostTensor> = {};
      for (const [name, t] of Object.entries(results)) {
        out[name] = { data: t.data as HostArray, shape: t.dims.map(Number) };
        t.dispose?.();
      }
      return out;
    },
    endProfiling() {
      if (opts.profilePrefix && profileFile === undefined) {
        session.endProfiling();
        profileFile = opts.profilePrefix;
      }
      return profileFile;
    },
    async release() {
      if (released) return;
      released = true;
      if (--held.refs === 0) {
        if (cache.get(key) === held) cache.delete(key);
        await session.release();
      }
    },
  };
}

/** Number of sessions alive in the cache (for tests and diagnostics). */
export const cachedSessionCount = (): number => cache.size;
