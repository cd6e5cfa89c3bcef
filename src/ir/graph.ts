/**
 * The traced graph: an append-only list of nodes in topological order.
 *
 * Leaves are user inputs, parameters (host arrays owned by modules) and constants. Every other
 * node applies one primitive (see `src/ops`) to earlier nodes. Nodes remember the module path
 * that was active when they were created, so errors and dumps can say `blocks.3.attn`.
 */
import { scalarHost, type DType, type HostArray } from './dtype.js';
import type { Shape } from './shape.js';
import { Tensor } from './tensor.js';
import { GraphError } from './errors.js';

export type LeafKind = 'input' | 'param' | 'constant';

export interface NodeBase {
  readonly id: number;
  readonly dtype: DType;
  readonly shape: Shape;
  /** Module path active when the node was traced, e.g. `blocks.3.attn`; '' at top level. */
  readonly scope: string;
}

export interface InputNode extends NodeBase { readonly kind: 'input'; readonly name: string }
/** Where a parameter's values live; read when the graph is emitted or run, not when traced. */
export interface ParamSource { readonly data: Float32Array }
export interface ParamNode extends NodeBase {
  readonly kind: 'param';
  readonly name: string;
  readonly source: ParamSource;
  /** Non-trainable state (a module buffer): fed and emitted like a parameter, never in `grad wrt 'params'`. */
  readonly buffer?: boolean;
}
export interface ConstantNode extends NodeBase { readonly kind: 'constant'; readonly data: HostArray }
export interface OpNode extends NodeBase {
  readonly kind: 'op';
  readonly prim: string;
  readonly inputs: readonly number[];
  readonly attrs: unknown;
}
export type Node = InputNode | ParamNode | ConstantNode | OpNode;

export class Graph {
  readonly nodes: Node[] = [];
  private readonly scopes: string[] = [];
  private readonly paramsByName = new Map<string, ParamNode>();
  private readonly scalarCache = new Map<string, Tensor>();

  get scope(): string {
    return this.scopes.join('.');
  }

  /** Runs `fn` with `name` appended to the module path (used by modules' forward). */
  withScope<T>(name: string, fn: () => T): T {
    if (name === '') return fn();
    this.scopes.push(name);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  /** Runs `fn` with the module path replaced by `path` (autodiff traces a node's VJP in its scope). */
  atScope<T>(path: string, fn: () => T): T {
    const saved = this.scopes.splice(0, this.scopes.length);
    if (path) this.scopes.push(path);
    try {
      return fn();
    } finally {
      this.scopes.splice(0, this.scopes.length, ...saved);
    }
  }

  node(id: number): Node {
    const n = this.nodes[id];
    if (!n) throw new GraphError(`no node ${id} in this graph`);
    return n;
  }

  tensor(id: number): Tensor {
    return new Tensor(this, id);
  }

  input(name: string, shape: Shape, dtype: DType = 'float32'): Tensor {
    if (this.nodes.some((n) => (n.kind === 'input' || n.kind === 'param') && n.name === name)) {
      throw new GraphError(`input name "${name}" is already used in this graph`);
    }
    return this.push({ kind: 'input', name, shape, dtype });
  }

  /**
   * A trainable parameter backed by a host array. Tracing the same name twice returns the same
   * tensor, so a module used twice shares its weights.
   */
  param(name: string, source: Float32Array | ParamSource, shape: readonly number[], { buffer = false } = {}): Tensor {
    const src: ParamSource = source instanceof Float32Array ? { data: source } : source;
    const existing = this.paramsByName.get(name);
    if (existing) {
      const same = existing.source === src || existing.source.data === src.data;
      if (!same) throw new GraphError(`parameter "${name}" was traced twice with different data`);
      return this.tensor(existing.id);
    }
    if (source instanceof Float32Array) {
      const size = shape.reduce((a, b) => a * b, 1);
      if (size !== source.length) {
        throw new GraphError(`parameter "${name}": shape [${shape.join(', ')}] needs ${size} values, got ${source.length}`);
      }
    }
    const t = this.push({ kind: 'param', name, shape, dtype: 'float32', source: src, ...(buffer ? { buffer } : {}) });
    this.paramsByName.set(name, this.node(t.id) as ParamNode);
    return t;
  }

  constant(data: HostArray, shape: readonly number[], dtype: DType): Tensor {
    const size = shape.reduce((a, b) => a * b, 1);
    if (size !== data.length) {
      throw new GraphError(`constant: shape [${shape.join(', ')}] needs ${size} values, got ${data.length}`);
    }
    return this.push({ kind: 'constant', shape, dtype, data });
  }

  /** A rank-0 constant, deduplicated so `x * 2` traced many times adds one node. */
  scalar(value: number, dtype: DType): Tensor {
    const key = `${dtype}:${Object.is(value, -0) ? '-0' : value}`;
    let t = this.scalarCache.get(key);
    if (!t) {
      t = this.constant(scalarHost(value, dtype), [], dtype);
      this.scalarCache.set(key, t);
    }
    return t;
  }

  addOp(prim: string, inputs: readonly Tensor[], attrs: unknown, dtype: DType, shape: Shape): Tensor {
    for (const t of inputs) {
      if (t.graph !== this) throw new GraphError(`${prim}: inputs come from different graphs`);
    }
    return this.push({ kind: 'op', prim, inputs: inputs.map((t) => t.id), attrs, dtype, shape });
  }

  params(): ParamNode[] {
    return [...this.paramsByName.values()];
  }

  inputs(): InputNode[] {
    return this.nodes.filter((n): n is InputNode => n.kind === 'input');
  }

  private push(fields: Omit<InputNode, 'id' | 'scope'> | Omit<ParamNode, 'id' | 'scope'>
    | Omit<ConstantNode, 'id' | 'scope'> | Omit<OpNode, 'id' | 'scope'>): Tensor {
    const id = this.nodes.length;
    this.nodes.push({ ...fields, id, scope: this.scope } as Node);
    return new Tensor(this, id);
  }
}
