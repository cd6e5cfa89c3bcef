/**
 * The inference executable of any model: images [B, C, H, W] → logits, with the parameters and
 * buffers as inputs, so other weights of the same names (the EMA) can be fed in their place.
 */
import { compile, type Executable } from '../runtime/compile.js';
import type { SessionOptions } from '../runtime/session.js';
import type { ImageModel } from './model.js';

export async function compileInference(model: ImageModel, session: SessionOptions = {}): Promise<Executable> {
  const [c, h, w] = model.inputShape;
  return compile((x) => ({ logits: model.forward(x).logits }), [{ name: 'x', shape: ['batch', c, h, w] }], session);
}
