/**
 * The compiled training step of a run: one ORT run maps (parameters and buffers, images, the
 * objective's inputs, the model's noise inputs) to (loss, gradients of the trainable parameters,
 * new values of the buffers the model updates in training).
 */
import type { ImageModel, NoiseInput } from '../models/model.js';
import { tracedBufferUpdates } from '../nn/module.js';
import { compile, type Executable, type InputSpec } from '../runtime/compile.js';
import type { SessionOptions } from '../runtime/session.js';
import type { Objective } from './objectives/objective.js';

export interface TrainExecutable {
  exe: Executable;
  /** Parameter keys with a `grad/<key>` output. */
  trainable: string[];
  /** The model's noise inputs, drawn on the host for every micro-batch. */
  noise: NoiseInput[];
  /** Buffer keys with a `buffer/<key>` output (their value after the step). */
  bufferUpdates: string[];
}

export async function compileTrainStep(model: ImageModel, objective: Objective, session: SessionOptions): Promise<TrainExecutable> {
  const [c, h, w] = model.inputShape;
  const trainable = model.namedParameters().filter(([, p]) => p.requiresGrad).map(([k]) => k);
  const noise = model.noiseInputs();
  const own = objective.inputs(model);
  const specs: InputSpec[] = [
    { name: 'x', shape: ['batch', c, h, w] },
    ...own,
    ...noise.map((n) => ({ name: n.name, shape: ['batch', n.perSample] as const })),
  ];
  let bufferUpdates: string[] = [];
  const exe = await compile((x, ...rest) => {
    const inputs = Object.fromEntries(own.map((s, i) => [s.name, rest[i]!]));
    const noiseTensors = Object.fromEntries(noise.map((n, i) => [n.name, rest[own.length + i]!]));
    const loss = objective.loss(model, x, inputs, { train: true, noise: noiseTensors });
    const updates = tracedBufferUpdates(x.graph);
    bufferUpdates = [...updates.keys()];
    return { loss, ...Object.fromEntries([...updates].map(([k, t]) => [`buffer/${k}`, t])) };
  }, specs, { ...session, grad: { wrt: trainable } });
  return { exe, trainable, noise, bufferUpdates };
}

