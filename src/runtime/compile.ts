/**
 * compile(fn, inputSpecs): trace a TypeScript function over symbolic tensors, optionally add its
 * gradients, emit ONNX and open an ORT session. The result runs on typed arrays.
 */
import { allocHost, toHost, type DType, type HostArray } from '../ir/dtype.js';
import { GraphError } from '../ir/errors.js';
import { Graph } from '../ir/graph.js';
import { BATCH, formatShape, isBatchDim, type Dim, type Shape } from '../ir/shape.js';
import { Tensor } from '../ir/tensor.js';
import { grad } from '../autodiff/grad.js';
import { emitModel, type EmitOptions, type EmittedModel } from '../onnx/emit.js';
import { openSession, type HostTensor, type Session, type SessionOptions } from './session.js';

export interface InputSpec {
  name: string;
  /** Static sizes; 'batch' (or BATCH) marks the batch axis, whose size is chosen at run time. */
  shape: readonly (number | 'batch' | Dim)[];
  dtype?: DType;
}

export type Traced = Tensor | readonly Tensor[] | Record<string, Tensor>;

export interface GradOptions {
  /** Name of the scalar output to differentiate. Default 'loss'. */
  loss?: string;
  /** 'params' (every traced parameter, not buffers) or a list of parameter/input names. */
  wrt: 'params' | readonly string[];
}

export interface CompileOptions extends SessionOptions, EmitOptions {
  /** Adds `grad/<name>` outputs: gradients of one output with respect to parameters or inputs. */
  grad?: GradOptions;
}

export interface TracedFunction {
  graph: Graph;
  inputs: Tensor[];
  outputs: Record<string, Tensor>;
}

export type Feed = HostArray | HostTensor | readonly number[];

export interface Executable {
  /** The ONNX model this executable runs: exactly what export writes. */
  readonly onnx: Uint8Array;
  readonly inputs: EmittedModel['inputs'];
  readonly outputs: EmittedModel['outputs'];
  /**
   * Runs on host arrays. Parameters are read from their modules' current host arrays unless a
   * feed overrides them. Batch sizes are inferred from the data lengths.
   */
  run(feeds: Record<string, Feed>): Promise<Record<string, HostTensor>>;
  endProfiling(): string | undefined;
  dispose(): Promise<void>;
}

function specShape(spec: InputSpec): Dim[] {
  return spec.shape.map((d) => (d === 'batch' ? BATCH : d));
}

/** Traces `fn` over fresh inputs, returning the graph and its named outputs. */
export function trace(fn: (...inputs: Tensor[]) => Traced, specs: readonly InputSpec[]): TracedFunction {
  const graph = new Graph();
  const inputs = specs.map((s) => graph.input(s.name, specShape(s), s.dtype ?? 'float32'));
  const result = fn(...inputs);
  let outputs: Record<string, Tensor>;
  if (result instanceof Tensor) outputs = { output: result };
  else if (Array.isArray(result)) outputs = Object.fromEntries(result.map((t, i) => [`output${i}`, t]));
  else outputs = { ...(result as Record<string, Tensor>) };
  for (const [name, t] of Object.entries(outputs)) {
    if (!(t instanceof Tensor)) throw new GraphError(`output "${name}" is not a tensor`);
  }
  return { graph, inputs, outputs };
}

/** Adds `grad/<name>` outputs to a traced function. */
export function withGradients(traced: TracedFunction, { loss = 'loss', wrt }: GradOptions): TracedFunction {
  const target = traced.outputs[loss];
  if (!target) throw new GraphError(`grad: no output named "${loss}"; outputs are ${Object.keys(traced.outputs).join(', ')}`);
  const byName = new Map<string, Tensor>();
  for (const n of traced.graph.nodes) {
    if (n.kind === 'input' || n.kind === 'param') byName.set(n.name, traced.graph.tensor(n.id));
  }
  // 'params': the trainable ones; buffers (BatchNorm statistics…) are state, not variables
  const names = wrt === 'params' ? traced.graph.params().filter((p) => !p.buffer).map((p) => p.name) : [...wrt];
  const tensors = names.map((n) => byName.get(n) ?? fail(`grad: no parameter or input named "${n}"`));
  const grads = grad(target, tensors);
  const outputs = { ...traced.outputs };
  names.forEach((n, i) => { outputs[`grad/${n}`] = grads[i]!; });
  return { ...traced, outputs };
}

const fail = (msg: string): never => { throw new GraphError(msg); };

export async function compile(fn: (...inputs: Tensor[]) => Traced, specs: readonly InputSpec[], options: CompileOptions = {}): Promise<Executable> {
  const traced = trace(fn, specs);
  if (!options.grad) return compileTraced(traced, options);
  // emitModel writes a gradient graph so that ORT's execution order frees each layer's saved
  // values as its weight gradient is taken; ReshapeFusion would renumber the gradients' last
  // nodes and undo that (cvt_13, batch 32: 5.7 GB peak RSS with it, 4.9 GB without, 6.0 GB before)
  const disabledOptimizers = [...new Set([...(options.disabledOptimizers ?? []), 'ReshapeFusion'])];
  return compileTraced(withGradients(traced, options.grad), { ...options, disabledOptimizers });
}

export async function compileTraced(traced: TracedFunction, options: CompileOptions = {}): Promise<Executable> {
  const emitted = emitModel(traced.graph, traced.outputs, options);
  const session = await openSession(emitted.bytes, options);
  return new CompiledExecutable(emitted, session);
}

class CompiledExecutable implements Executable {
  readonly onnx: Uint8Array;
  readonly inputs: EmittedModel['inputs'];
  readonly outputs: EmittedModel['outputs'];

  constructor(emitted: EmittedModel, private readonly session: Session) {
    this.onnx = emitted.bytes;
    this.inputs = emitted.inputs;
    this.outputs = emitted.outputs;
  }

  async run(feeds: Record<string, Feed>): Promise<Record<string, HostTensor>> {
    const known = new Set(this.inputs.map((i) => i.name));
    for (const name of Object.keys(feeds)) {
      if (!known.has(name)) throw new GraphError(`run: unknown input "${name}"; inputs are ${[...known].filter((n) => !this.inputs.find((i) => i.name === n)?.param).join(', ')}`);
    }
    const prepared: Parameters<Session['run']>[0] = {};
    for (const spec of this.inputs) {
      const feed = feeds[spec.name] ?? spec.param?.data;
      if (feed === undefined) throw new GraphError(`run: missing input "${spec.name}" (${spec.dtype}${formatShape(spec.shape)})`);
      prepared[spec.name] = prepareFeed(spec.name, spec.dtype, spec.shape, feed);
    }
    return this.session.run(prepared);
  }

  endProfiling(): string | undefined {
    return this.session.endProfiling();
  }

  dispose(): Promise<void> {
    return this.session.release();
  }
}

function isHostTensor(f: Feed): f is HostTensor {
  return typeof f === 'object' && f !== null && 'data' in f && 'shape' in f;
}

function prepareFeed(name: string, dtype: DType, shape: Shape, feed: Feed) {
  const raw = isHostTensor(feed) ? feed.data : feed;
  const data = matchesDtype(raw, dtype) ? (raw as HostArray) : toHost(dtype, raw as ArrayLike<number>);
  const dims = isHostTensor(feed) ? [...feed.shape] : inferDims(name, shape, data.length);
  const expected = dims.reduce((a, b) => a * b, 1);
  if (expected !== data.length) throw new GraphError(`run: input "${name}" has ${data.length} values, shape [${dims.join(', ')}] needs ${expected}`);
  const ok = dims.length === shape.length && shape.every((d, i) => isBatchDim(d) ? dims[i]! % d.batch === 0 : d === dims[i]);
  if (!ok) throw new GraphError(`run: input "${name}" has shape [${dims.join(', ')}], expected ${formatShape(shape)}`);
  return { dtype, data, shape: dims };
}

function inferDims(name: string, shape: Shape, length: number): number[] {
  const fixed = shape.reduce<number>((a, d) => a * (isBatchDim(d) ? d.batch : d), 1);
  const batchAxes = shape.filter(isBatchDim).length;
  const batch = batchAxes === 0 ? 1 : Math.round((length / fixed) ** (1 / batchAxes));
  if (batchAxes > 0 && (fixed * batch ** batchAxes !== length || batch < 1)) {
    throw new GraphError(`run: input "${name}" has ${length} values, which is no whole batch of ${formatShape(shape)}`);
  }
  return shape.map((d) => (isBatchDim(d) ? d.batch * batch : d));
}

function matchesDtype(data: unknown, dtype: DType): boolean {
  switch (dtype) {
    case 'float32': return data instanceof Float32Array;
    case 'float64': return data instanceof Float64Array;
    case 'int64': return data instanceof BigInt64Array;
    case 'int32': return data instanceof Int32Array;
    case 'uint8':
    case 'bool': return data instanceof Uint8Array;
  }
}

export { allocHost };
