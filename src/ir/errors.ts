/** Errors raised while building a graph. They name the op, the shapes and the module path. */

export class GraphError extends Error {
  override name = 'GraphError';
}

/** Shape or dtype mismatch found while tracing. */
export class ShapeError extends GraphError {
  override name = 'ShapeError';
}
