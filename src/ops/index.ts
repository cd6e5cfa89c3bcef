/** Every op, primitive or composite, as a plain function over symbolic tensors. */
export * from './elementwise.js';
export * from './reduce.js';
export * from './movement.js';
export * from './linalg.js';
export * from './conv.js';
export * from './nn.js';
export * from './attention.js';
export * from './token_shuffle.js';
export * from './composites.js';
export { apply, type TensorLike } from './apply.js';
export type { Prim, PrimAttrs } from './prim.js';
