/**
 * Modules hold named parameters and buffers on the host and build graph ops in `forward`. Names
 * are dotted paths identical to timm's state-dict keys (`blocks.0.attn.qkv.weight`,
 * `stages.0.0.bn.running_mean`).
 *
 * A buffer is non-trainable state (BatchNorm running statistics, fixed position tables): it is
 * saved and loaded with the parameters, fed to every executable like them, never differentiated,
 * and updated by a training step where its module says so (`updateBuffer`): the step returns the
 * new values as `buffer/<key>` outputs and the trainer copies them back on the host.
 */
import type { Graph } from '../ir/graph.js';
import type { Tensor } from '../ir/tensor.js';
import { Random } from '../random.js';
import type { Initializer } from './init.js';

/**
 * A parameter's host data is created on first use, so building a model to inspect it (shapes,
 * FLOPs) costs nothing. Each parameter draws its initial values from its own seed.
 */
export class Parameter {
  private values?: Float32Array;
  /** Frozen parameters get no gradient and no update. */
  requiresGrad = true;

  constructor(readonly shape: readonly number[], private readonly init: Initializer, private readonly seed: number) {}

  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  get data(): Float32Array {
    this.values ??= this.init(this.size, new Random(this.seed));
    return this.values;
  }

  set data(v: Float32Array) {
    if (v.length !== this.size) throw new RangeError(`parameter of shape [${this.shape.join(', ')}] needs ${this.size} values, got ${v.length}`);
    this.values = v;
  }
}

/**
 * Non-trainable module state. `persistent: false` buffers (timm's `register_buffer(...,
 * persistent=False)`, e.g. index tables rebuilt from the config) are traced but not saved.
 */
export class Buffer {
  private values?: Float32Array;

  constructor(readonly shape: readonly number[], private readonly init: Initializer, readonly persistent = true) {}

  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  get data(): Float32Array {
    this.values ??= this.init(this.size, new Random(0));
    return this.values;
  }

  set data(v: Float32Array) {
    if (v.length !== this.size) throw new RangeError(`buffer of shape [${this.shape.join(', ')}] needs ${this.size} values, got ${v.length}`);
    this.values = v;
  }
}

/** The new values of buffers that a traced training step computes, by graph (see `updateBuffer`). */
const bufferUpdates = new WeakMap<Graph, Map<string, Tensor>>();

/** Buffer updates traced into `g` so far, keyed by the buffer's state-dict key. */
export function tracedBufferUpdates(g: Graph): Map<string, Tensor> {
  return bufferUpdates.get(g) ?? new Map();
}

export interface StateTensor {
  data: Float32Array;
  shape: readonly number[];
}
export type StateDict = Record<string, StateTensor>;

export class StateDictError extends Error {
  override name = 'StateDictError';
}

export abstract class Module {
  /** Dotted path from the root model; '' for the root. */
  path = '';
  private readonly ownParams = new Map<string, Parameter>();
  private readonly ownBuffers = new Map<string, Buffer>();
  private readonly children = new Map<string, Module>();

  /** `rng` supplies this parameter's seed (deterministic in construction order). */
  protected addParam(name: string, shape: readonly number[], init: Initializer, rng?: Random): Parameter {
    const p = new Parameter(shape, init, rng ? rng.nextU32() : 0);
    this.ownParams.set(name, p);
    return p;
  }

  protected addBuffer(name: string, shape: readonly number[], init: Initializer, { persistent = true } = {}): Buffer {
    const b = new Buffer(shape, init, persistent);
    this.ownBuffers.set(name, b);
    return b;
  }

  protected addChild<M extends Module>(name: string, m: M): M {
    this.children.set(name, m);
    m.setPath(this.path ? `${this.path}.${name}` : name);
    return m;
  }

  private setPath(path: string): void {
    this.path = path;
    for (const [name, c] of this.children) c.setPath(`${path}.${name}`);
  }

  /** This module's parameter `name` as a tensor of graph `g` (traced once per graph). */
  protected p(g: Graph, name: string): Tensor {
    const param = this.ownParams.get(name);
    if (!param) throw new StateDictError(`${this.path || 'model'} has no parameter "${name}"`);
    return g.param(this.stateKey(name), param, param.shape);
  }

  /** This module's buffer `name` as a (non-differentiated) tensor of graph `g`. */
  protected b(g: Graph, name: string): Tensor {
    const buffer = this.ownBuffer(name);
    return g.param(this.stateKey(name), buffer, buffer.shape, { buffer: true });
  }

  /** Records `value` as the new content of buffer `name` after a training step of graph `g`. */
  protected updateBuffer(g: Graph, name: string, value: Tensor): void {
    const buffer = this.ownBuffer(name);
    if (value.shape.length !== buffer.shape.length || value.shape.some((d, i) => d !== buffer.shape[i])) {
      throw new StateDictError(`${this.stateKey(name)}: an update of shape [${value.shape.join(', ')}] for a buffer of shape [${buffer.shape.join(', ')}]`);
    }
    let updates = bufferUpdates.get(g);
    if (!updates) bufferUpdates.set(g, (updates = new Map()));
    updates.set(this.stateKey(name), value);
  }

  private ownBuffer(name: string): Buffer {
    const buffer = this.ownBuffers.get(name);
    if (!buffer) throw new StateDictError(`${this.path || 'model'} has no buffer "${name}"`);
    return buffer;
  }

  private stateKey(name: string): string {
    return this.path ? `${this.path}.${name}` : name;
  }

  /** Runs `fn` with this module's path as the scope of the ops it creates. */
  protected scoped<T>(g: Graph, fn: () => T): T {
    return g.atScope(this.path, fn);
  }

  namedParameters(): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    const prefix = this.path ? `${this.path}.` : '';
    for (const [name, p] of this.ownParams) out.push([prefix + name, p]);
    for (const c of this.children.values()) out.push(...c.namedParameters());
    return out;
  }

  /** Every buffer, persistent or not, under its state-dict key. */
  namedBuffers(): [string, Buffer][] {
    const out: [string, Buffer][] = [];
    const prefix = this.path ? `${this.path}.` : '';
    for (const [name, b] of this.ownBuffers) out.push([prefix + name, b]);
    for (const c of this.children.values()) out.push(...c.namedBuffers());
    return out;
  }

  /** What a state dict holds: parameters and persistent buffers, in construction order per module. */
  namedState(): [string, Parameter | Buffer][] {
    const out: [string, Parameter | Buffer][] = [];
    const prefix = this.path ? `${this.path}.` : '';
    for (const [name, p] of this.ownParams) out.push([prefix + name, p]);
    for (const [name, b] of this.ownBuffers) if (b.persistent) out.push([prefix + name, b]);
    for (const c of this.children.values()) out.push(...c.namedState());
    return out;
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  numParams(): number {
    return this.namedParameters().reduce((n, [, p]) => n + p.size, 0);
  }

  stateDict(): StateDict {
    return Object.fromEntries(this.namedState().map(([k, p]) => [k, { data: p.data, shape: p.shape }]));
  }

  /**
   * Copies tensors in by key. With `strict`, missing and unexpected keys are errors; shape
   * mismatches always are. The message lists every offending key.
   */
  loadStateDict(sd: StateDict, strict = true): { missing: string[]; unexpected: string[] } {
    const own = new Map(this.namedState());
    const missing = [...own.keys()].filter((k) => !(k in sd));
    const unexpected = Object.keys(sd).filter((k) => !own.has(k));
    const badShapes = [...own].filter(([k, p]) => k in sd && !sameShape(sd[k]!.shape, p.shape))
      .map(([k, p]) => `${k}: checkpoint [${sd[k]!.shape.join(', ')}] vs model [${p.shape.join(', ')}]`);
    const problems: string[] = [];
    if (badShapes.length) problems.push(`shape mismatch for ${badShapes.join('; ')}`);
    if (strict && missing.length) problems.push(`missing keys: ${missing.join(', ')}`);
    if (strict && unexpected.length) problems.push(`unexpected keys: ${unexpected.join(', ')}`);
    if (problems.length) throw new StateDictError(`cannot load state dict: ${problems.join('; ')}`);
    for (const [k, p] of own) {
      const t = sd[k];
      if (t) p.data.set(t.data);
    }
    return { missing, unexpected };
  }
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
