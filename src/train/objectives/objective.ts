/**
 * A training objective: what one step takes (images, and inputs of its own such as targets),
 * the loss it traces, how it fills those inputs from a batch on the host, what it evaluates at an
 * epoch's end, which metric picks the best checkpoint, and the state it keeps between steps. The
 * training loop (trainer.ts) runs any objective; supervised classification and adversarial
 * training are two of them.
 */
import type { Tensor } from '../../ir/tensor.js';
import type { Batch, BatchSource } from '../../data/loader/batch_source.js';
import type { EvalTransform } from '../../data/transforms/transform_config.js';
import type { InputSpec, Feed, Executable } from '../../runtime/compile.js';
import type { SessionOptions } from '../../runtime/session.js';
import type { ForwardOptions, ImageModel } from '../../models/model.js';
import type { ModelEma } from '../ema.js';
import type { ClassificationSummary } from '../metrics.js';
import type { TrainConfig } from '../config.js';
import type { Optimizer } from '../../optim/adamw.js';

/** What an objective evaluates at an epoch's end: fields of the epoch record, and a summary for the report. */
export interface ObjectiveEvaluation {
  record: Record<string, number>;
  /** Classification objectives: top-k, per-class accuracy and the confusion matrix (report, progress line). */
  summary?: ClassificationSummary;
  /** Every eval image's logits and label behind `summary` (temperature fit, the report's detailed metrics), so the loop needs no second pass. */
  outputs?: { logits: Float32Array; labels: Int32Array };
  /** Images the evaluation wrote into the run directory, shown in report.html's charts (MAE's reconstruction grid). */
  figures?: ReportFigure[];
}

/** An image file in the run directory, with its description for the report. */
export interface ReportFigure {
  /** File name inside the run directory. */
  file: string;
  /** Its size in pixels; the page shows it at twice that, pixelated (a grid of 28-pixel images is small). */
  width: number;
  height: number;
  alt: string;
  caption: string;
}

export interface EvaluationContext {
  /** Images → logits of the current weights; parameters can be overridden by name (`weights`). */
  inference: Executable;
  loader: BatchSource;
  classNames: readonly string[];
  ema?: ModelEma;
  /** The run directory, for pictures an objective draws each epoch (MAE's reconstructions). */
  runDir?: string;
}

export interface Objective {
  readonly name: string;
  /** The epoch-record field that picks best.safetensors, and whether higher is better. */
  readonly best: { metric: string; mode: 'max' | 'min' };
  /** The step's inputs besides the images `x` (shapes may use 'batch'). */
  inputs(model: ImageModel): InputSpec[];
  /** Traces the step's scalar loss for images `x` and the objective's inputs (by name). */
  loss(model: ImageModel, x: Tensor, inputs: Record<string, Tensor>, opts: ForwardOptions): Tensor;
  /**
   * The host feeds of micro-batch `micro` (counted over the whole run): the images `x` — the
   * batch's, or e.g. their attacked version — and the objective's inputs.
   */
  feeds(batch: Batch, micro: number): Promise<Record<string, Feed>> | Record<string, Feed>;
  evaluate(ctx: EvaluationContext): Promise<ObjectiveEvaluation>;
  /** Called at the start of every epoch (0-based), with the run's length: objectives with schedules of their own (DINO). */
  startEpoch?(epoch: number, run: { epochs: number; stepsPerEpoch: number; microPerEpoch: number }): void;
  /** True when beforeOptimizerStep clips the gradients itself (DINO, per tensor); the loop's global --clip-grad is then skipped. */
  readonly clipsGradients?: boolean;
  /** Before optimiser step `step` (0-based, counted over the run): may change the gradients and the optimiser's weight decay. */
  beforeOptimizerStep?(s: { grads: Map<string, Float32Array>; step: number; epoch: number; optimizer: Optimizer }): void;
  /** After optimiser step `step` (0-based), before the model EMA: DINO's teacher update, CLIP's clamp of its learnable temperature (as open_clip). */
  afterOptimizerStep?(step: number): void;
  /** State kept between steps (saved in state.safetensors under `objective.<key>`). */
  stateTensors?(): Record<string, Float32Array>;
  loadStateTensors?(tensors: Record<string, Float32Array>): void;
  dispose?(): Promise<void>;
}

export interface ObjectiveContext {
  model: ImageModel;
  cfg: TrainConfig;
  /** The eval transform of the run's data (mean/std for attacks in pixel space). */
  transform: EvalTransform;
  classes: number;
  /** The data's class names (an image–caption manifest's captions). */
  classNames?: readonly string[];
  /** Training images per class, in label order. */
  classCounts?: readonly number[];
  session: SessionOptions;
}

export type ObjectiveFactory = (ctx: ObjectiveContext) => Promise<Objective> | Objective;

const objectives = new Map<string, ObjectiveFactory>();

/** Makes an objective available to `train --method NAME` (and the config key `method`). */
export function registerObjective(name: string, factory: ObjectiveFactory): void {
  if (objectives.has(name)) throw new Error(`objective "${name}" is registered twice`);
  objectives.set(name, factory);
}

export function listObjectives(): string[] {
  return [...objectives.keys()];
}

export async function createObjective(name: string, ctx: ObjectiveContext): Promise<Objective> {
  const factory = objectives.get(name);
  if (!factory) throw new RangeError(`unknown training method "${name}"; known methods: ${listObjectives().join(', ')}`);
  return factory(ctx);
}
