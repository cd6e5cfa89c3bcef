/** A compiled training step for any model: forward, cross-entropy, backward in one ORT run, then the optimiser on the host. */
import type { ImageModel } from '../models/model.js';
import { compile, type CompileOptions, type Executable } from '../runtime/compile.js';
import { crossEntropy } from '../ops/index.js';
import { AdamW, paramSpecs } from '../optim/adamw.js';

export interface BenchTrainStep {
  exe: Executable;
  optimizer: AdamW;
  step(x: Float32Array, y: BigInt64Array, lr: number): Promise<number>;
}

export async function buildBenchTrainStep(model: ImageModel, options: CompileOptions = {}): Promise<BenchTrainStep> {
  const [c, h, w] = model.inputShape;
  // train: true, as the trainer's step and the PyTorch peers' model.train(): BatchNorm normalises
  // with the batch's statistics (no drop-path noise is fed, as the peers run without drop path)
  const exe = await compile((x, y) => ({ loss: crossEntropy(model.forward(x, { train: true }).logits, y) }),
    [{ name: 'x', shape: ['batch', c, h, w] }, { name: 'y', shape: ['batch'], dtype: 'int64' }],
    { ...options, grad: { wrt: 'params' } });
  const optimizer = new AdamW(paramSpecs(model.namedParameters(), 0.05));
  return {
    exe,
    optimizer,
    async step(x, y, lr) {
      const out = await exe.run({ x, y });
      optimizer.step((name) => out[`grad/${name}`]!.data as Float32Array, lr);
      return Number(out.loss!.data[0]);
    },
  };
}
