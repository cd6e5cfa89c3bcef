/**
 * Modules hold named parameters on the host and build graph ops in `forward`. Parameter names
 * are dotted paths identical to timm's state-dict keys (`blocks.0.attn.qkv.weight`).
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
  private readonly children = new Map<string, Module>();

  /** `rng` supplies this parameter's seed (deterministic in construction order). */
  protected addParam(name: string, shape: readonly number[], init: Initializer, rng?: Random): Parameter {
    const p = new Parameter(shape, init, rng ? rng.nextU32() : 0);
    this.ownParams.set(name, p);
    return p;
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
    return g.param(this.path ? `${this.path}.${name}` : name, param, param.shape);
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

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  numParams(): number {
    return this.namedParameters().reduce((n, [, p]) => n + p.size, 0);
  }

  stateDict(): StateDict {
    return Object.fromEntries(this.namedParameters().map(([k, p]) => [k, { data: p.data, shape: p.shape }]));
  }

  /**
   * Copies tensors in by key. With `strict`, missing and unexpected keys are errors; shape
   * mismatches always are. The message lists every offending key.
   */
  loadStateDict(sd: StateDict, strict = true): { missing: string[]; unexpected: string[] } {
    const own = new Map(this.namedParameters());
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
