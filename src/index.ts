/** tessera's public API. */
export * as ops from './ops/index.js';
export * from './ops/index.js';
export { Tensor } from './ir/tensor.js';
export { Graph } from './ir/graph.js';
export { GraphError, ShapeError } from './ir/errors.js';
export { BATCH, formatShape, type Dim, type Shape } from './ir/shape.js';
export type { DType, HostArray } from './ir/dtype.js';
export { grad } from './autodiff/grad.js';
export { emitModel, DEFAULT_OPSET, type EmitOptions, type EmittedModel } from './onnx/emit.js';
export { dumpModel } from './onnx/dump.js';
export { decodeModel } from './onnx/proto.js';
export {
  compile, compileTraced, trace, withGradients,
  type CompileOptions, type Executable, type Feed, type InputSpec, type TracedFunction,
} from './runtime/compile.js';
export type { HostTensor, SessionOptions, GraphOptimization } from './runtime/session.js';
export { physicalCores } from './runtime/cores.js';
export { Random, type RandomState } from './random.js';

// The toolkit above the engine. Each area is a namespace (`import { models, train } from
// 'tessera'`), so names such as `evaluate` or `Batch` cannot collide across areas.
export * as nn from './nn/index.js';
export * as models from './models/api.js';
export * as data from './data/api.js';
export * as checkpoint from './checkpoint/api.js';
export * as training from './train/api.js';
export * as explain from './explain/index.js';
export * as robust from './robust/index.js';
export * as deploy from './export/api.js';
export * as serve from './serve/api.js';
