/**
 * The compiled executables of a run. Training: one ORT run maps (params, images, soft targets,
 * drop-path scales, dropout scales) to (loss, gradients of the trainable parameters). Evaluation:
 * images → logits, with parameters as inputs so the EMA weights can be fed in their place.
 */
import type { VisionTransformer } from '../models/vit.js';
import { compile, type Executable } from '../runtime/compile.js';
import { crossEntropy } from '../ops/index.js';
import type { SessionOptions } from '../runtime/session.js';

export interface TrainExecutable {
  exe: Executable;
  trainable: string[];
  usesDropPath: boolean;
  usesHeadDrop: boolean;
}

export async function compileTrainStep(model: VisionTransformer, session: SessionOptions): Promise<TrainExecutable> {
  const [c, h, w] = model.inputShape;
  const classes = model.config.numClasses;
  const usesDropPath = model.config.dropPathRate > 0;
  const usesHeadDrop = model.config.dropRate > 0;
  const trainable = model.namedParameters().filter(([, p]) => p.requiresGrad).map(([k]) => k);
  const specs = [
    { name: 'x', shape: ['batch', c, h, w] as const },
    { name: 'targets', shape: ['batch', classes] as const },
    ...(usesDropPath ? [{ name: 'drop_path', shape: ['batch', model.config.depth * 2] as const }] : []),
    ...(usesHeadDrop ? [{ name: 'head_drop', shape: ['batch', model.numFeatures] as const }] : []),
  ];
  const exe = await compile((x, targets, ...noise) => {
    const dropPath = usesDropPath ? noise[0] : undefined;
    const headDrop = usesHeadDrop ? noise[usesDropPath ? 1 : 0] : undefined;
    const { logits } = model.forward(x, { noise: { dropPath, headDrop } });
    return { loss: crossEntropy(logits, targets) };
  }, specs, { ...session, grad: { wrt: trainable } });
  return { exe, trainable, usesDropPath, usesHeadDrop };
}

/** @deprecated use compileInference from src/models/executables.ts */
export { compileInference as compileEval } from '../models/executables.js';
