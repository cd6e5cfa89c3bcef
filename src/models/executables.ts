/**
 * The inference executable of any model: images [B, C, H, W] → logits, with the parameters and
 * buffers as inputs, so other weights of the same names (the EMA) can be fed in their place.
 */
import { div } from '../ops/elementwise.js';
import { compile, type Executable } from '../runtime/compile.js';
import type { SessionOptions } from '../runtime/session.js';
import type { ImageModel } from './model.js';

/** `temperature` (a calibrated checkpoint's) divides the logits inside the graph, as the export does. */
export async function compileInference(model: ImageModel, session: SessionOptions = {}, temperature?: number): Promise<Executable> {
  const [c, h, w] = model.inputShape;
  const scaled = temperature !== undefined && temperature !== 1;
  return compile((x) => {
    const logits = model.forward(x).logits;
    return { logits: scaled ? div(logits, temperature) : logits };
  }, [{ name: 'x', shape: ['batch', c, h, w] }], session);
}
