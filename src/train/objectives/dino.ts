/**
 * DINO pretraining (Caron et al. 2021) as facebookresearch/dino's train_dino computes it. The
 * student is the run's model (a `dino_*` entry, src/models/dino.ts); the teacher is a second set
 * of the same weights kept on the host: it runs on the two global views in `feeds` (a compiled
 * forward of the same graph, fed the teacher's weights), and after each optimiser step it moves
 * towards the student with the cosine momentum 0.996 → 1. The teacher's outputs are centred
 * (the centre is an EMA 0.9 of their batch mean, updated after they are used, as update_center)
 * and sharpened by the teacher temperature on the host, then fed to the step as constants, so no
 * gradient reaches the teacher (DINO's detach).
 *
 * The step's loss is the student's cross-entropy to the teacher over every pair of different
 * views (student log_softmax at temperature 0.1 on all 2 + N crops), divided by the pair count.
 * Before each optimiser step the gradients are clipped per tensor (DINO's clip_gradients, not a
 * global norm), the head's last layer gets no update during the first --freeze-last-layer epochs
 * and the weight decay follows a cosine to --weight-decay-end. The multi-crop views are drawn
 * from each loader image on the host (src/data/transforms/multi_crop.ts) from the run's seeded
 * stream, so a resumed run draws the same crops; so is the student's drop-path, one draw per
 * image and view (the teacher has none). The centre and the teacher are the objective's state,
 * saved with the optimiser's in state.safetensors.
 */
import type { Batch } from '../../data/loader/batch_source.js';
import type { Tensor } from '../../ir/tensor.js';
import { add, div, logSoftmax, mean, mul, neg, reshape, slice, sum } from '../../ops/index.js';
import { compile, type Executable, type Feed } from '../../runtime/compile.js';
import type { SessionOptions } from '../../runtime/session.js';
import { Random, mixSeed } from '../../random.js';
import type { ImageModel } from '../../models/model.js';
import { DinoViT } from '../../models/dino.js';
import { dinoViews, pixelsFromNormalizedChw, type MultiCropOptions } from '../../data/transforms/multi_crop.js';
import { releasePixels } from '../../data/transforms/pixels.js';
import { dropPathScales } from '../../nn/drop_path.js';
import type { Optimizer } from '../../optim/adamw.js';
import type { TrainConfig } from '../config.js';
import type { EvaluationContext, Objective, ObjectiveContext, ObjectiveEvaluation } from './objective.js';
import type { EvalTransform } from '../../data/transforms/transform_config.js';
import { metaFor } from '../../checkpoint/checkpoint.js';
import { writeSafetensors } from '../../checkpoint/safetensors.js';
import { join } from 'node:path';

/** Salts of the multi-crop and student drop-path streams (mixed with the run seed and the micro-batch index). */
const CROP_SALT = 0xd1e0;
const DROP_PATH_SALT = 0xd1e1;
/** DINO's student temperature and centre momentum (fixed in main_dino.py's DINOLoss). */
export const STUDENT_TEMP = 0.1;
export const CENTER_MOMENTUM = 0.9;
/** The head's last layer, frozen during the first epochs (cancel_gradients_last_layer matches "last_layer" in the name). */
const LAST_LAYER = /(^|\.)last_layer\./;

export function asDino(model: ImageModel): DinoViT {
  if (!(model instanceof DinoViT)) throw new RangeError(`DINO pretraining needs a DINO model (e.g. dino_vit_tiny_patch4_28), got a ${model.family} model`);
  return model;
}

/** utils.cosine_scheduler at iteration `it` of `total`: final + ½(base − final)(1 + cos(π·it/total)). */
export function cosineValue(base: number, final: number, total: number, it: number): number {
  return final + 0.5 * (base - final) * (1 + Math.cos((Math.PI * it) / Math.max(1, total)));
}

/** DINOLoss's teacher_temp_schedule at `epoch`: linear warm-up over `warmupEpochs` (np.linspace, both ends), then constant. */
export function teacherTemperature(cfg: Pick<TrainConfig, 'warmupTeacherTemp' | 'teacherTemp' | 'warmupTeacherTempEpochs'>, epoch: number): number {
  const n = cfg.warmupTeacherTempEpochs;
  if (epoch >= n) return cfg.teacherTemp;
  return n === 1 ? cfg.warmupTeacherTemp : cfg.warmupTeacherTemp + ((cfg.teacherTemp - cfg.warmupTeacherTemp) * epoch) / (n - 1);
}

/** softmax((t − centre) / temp) per row of raw teacher outputs [rows, K]. */
export function teacherTargets(raw: Float32Array, k: number, center: Float32Array, temp: number): Float32Array {
  const out = new Float32Array(raw.length);
  const row = new Float64Array(k);
  for (let r = 0; r < raw.length / k; r++) {
    let max = -Infinity;
    for (let j = 0; j < k; j++) max = Math.max(max, (row[j] = (raw[r * k + j]! - center[j]!) / temp));
    let total = 0;
    for (let j = 0; j < k; j++) total += (row[j] = Math.exp(row[j]! - max));
    for (let j = 0; j < k; j++) out[r * k + j] = row[j]! / total;
  }
  return out;
}

/** update_center: centre ← m·centre + (1 − m)·(mean of the raw teacher rows), in place. */
export function updateCenter(center: Float32Array, raw: Float32Array, momentum = CENTER_MOMENTUM): void {
  const k = center.length;
  const rows = raw.length / k;
  for (let j = 0; j < k; j++) {
    let s = 0;
    for (let r = 0; r < rows; r++) s += raw[r * k + j]!;
    center[j] = center[j]! * momentum + (s / rows) * (1 - momentum);
  }
}

/** utils.clip_gradients: each tensor with norm > clip is scaled by clip / (norm + 1e-6). */
export function clipPerTensor(grads: Map<string, Float32Array>, clip: number): void {
  for (const g of grads.values()) {
    let s = 0;
    for (const v of g) s += v * v;
    const coef = clip / (Math.sqrt(s) + 1e-6);
    if (coef < 1) for (let i = 0; i < g.length; i++) g[i]! *= coef;
  }
}

/** [V, B, K] (DINO's crop-major chunks) → [B, V, K], so the batch leads as the step's inputs need. */
export function viewMajorToImageMajor(x: Float32Array, b: number, views: number, k: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < b; i++) for (let v = 0; v < views; v++) out.set(x.subarray((v * b + i) * k, (v * b + i + 1) * k), (i * views + v) * k);
  return out;
}

/**
 * The traced loss of one step. teacherProbs [B, 2, K]; locals [B, N, C, l, l] or none; dropPath
 * [B, 2 + N, depth·2] the student's stochastic-depth scales of each view, or none.
 */
export function dinoLoss(model: DinoViT, global1: Tensor, global2: Tensor, teacherProbs: Tensor, locals?: Tensor, dropPath?: Tensor): Tensor {
  const k = model.config.outDim;
  const d2 = 2 * model.config.depth;
  const views = (from: number, to: number) => dropPath && reshape(slice(dropPath, [1], [from], [to]), [-1, d2]); // [B·(to − from), depth·2], image-major
  const student = (x: Tensor, dp?: Tensor) => logSoftmax(div(model.project(x, dp), STUDENT_TEMP), -1);
  const s1 = student(global1, views(0, 1)); // [B, K]
  const s2 = student(global2, views(1, 2));
  const q1 = reshape(slice(teacherProbs, [1], [0], [1]), [-1, k]);
  const q2 = reshape(slice(teacherProbs, [1], [1], [2]), [-1, k]);
  // each term: the batch mean of Σ_k −q·log p (torch.sum(-q * log_softmax, -1).mean())
  const term = (q: Tensor, s: Tensor) => mean(sum(neg(mul(q, s)), -1));
  let total = add(term(q1, s2), term(q2, s1));
  let pairs = 2;
  if (locals) {
    const [, n, c, l] = locals.shape as [unknown, number, number, number];
    const sl = reshape(student(reshape(locals, [-1, c, l, l]), views(2, 2 + n)), [-1, n, k]); // [B, N, K]
    const perLocal = (q: Tensor) => mean(sum(sum(neg(mul(reshape(q, [-1, 1, k]), sl)), -1), -1)); // Σ over the N views of their batch means
    total = add(total, add(perLocal(q1), perLocal(q2)));
    pairs += 2 * n;
  }
  return div(total, pairs);
}

/** The side of the local crops: --local-crop-size, or 3/7 of the input in whole patches (DINO's 96 of 224 is 6 of 14 patches). */
export function localCropSize(model: DinoViT, cfg: Pick<TrainConfig, 'localCropSize'>): number {
  const p = model.config.patchSize;
  const size = cfg.localCropSize ?? p * Math.max(1, Math.round(((model.config.imgSize / p) * 3) / 7));
  if (size % p !== 0 || size > model.config.imgSize) throw new RangeError(`--local-crop-size must be a multiple of the patch size ${p} and at most the input ${model.config.imgSize}, got ${size}`);
  return size;
}

export class DinoObjective implements Objective {
  readonly name = 'dino';
  /** DINO has no held-out score; the best checkpoint is the lowest training loss (k-NN: `tessera eval --knn`). */
  readonly best = { metric: 'train_loss', mode: 'min' } as const;
  /** The gradients are clipped per tensor here, not to the global norm of --clip-grad. */
  readonly clipsGradients = true;

  readonly teacher = new Map<string, Float32Array>();
  readonly center: Float32Array;
  private readonly crops: MultiCropOptions;
  private teacherExe?: Executable;
  private epoch = 0;
  private totalSteps = 1;

  static create({ model, cfg, session, transform }: ObjectiveContext): DinoObjective {
    return new DinoObjective(asDino(model), cfg, session, transform);
  }

  constructor(private readonly model: DinoViT, private readonly cfg: TrainConfig, private readonly session: SessionOptions = {},
    private readonly transform: Pick<EvalTransform, 'mean' | 'std'> & Partial<Pick<EvalTransform, 'cropPct' | 'interpolation'>>) {
    if (cfg.mixup > 0 || cfg.cutmix > 0) throw new RangeError(`--mixup / --cutmix blend images before DINO draws its views from them (got ${cfg.mixup} / ${cfg.cutmix}); give 0 with --method dino`);
    // teacher_without_ddp.load_state_dict(student.module.state_dict())
    for (const [k, p] of model.namedParameters()) this.teacher.set(k, Float32Array.from(p.data));
    this.center = new Float32Array(model.config.outDim);
    this.crops = {
      globalSize: model.config.imgSize, localSize: localCropSize(model, cfg), localCrops: cfg.localCrops,
      globalScale: cfg.globalCropsScale as [number, number], localScale: cfg.localCropsScale as [number, number], mean: transform.mean, std: transform.std,
    };
  }

  inputs(model: ImageModel) {
    const m = asDino(model);
    const [c, g] = [m.config.inChans, m.config.imgSize];
    const l = this.crops.localSize;
    return [
      { name: 'global2', shape: ['batch', c, g, g] as const },
      { name: 'teacher_probs', shape: ['batch', 2, m.config.outDim] as const },
      ...(this.crops.localCrops > 0 ? [{ name: 'locals', shape: ['batch', this.crops.localCrops, c, l, l] as const }] : []),
      ...(m.config.dropPathRate > 0 ? [{ name: 'drop_path', shape: ['batch', 2 + this.crops.localCrops, 2 * m.config.depth] as const }] : []),
    ];
  }

  loss(model: ImageModel, x: Tensor, inputs: Record<string, Tensor>) {
    return dinoLoss(asDino(model), x, inputs.global2!, inputs.teacher_probs!, inputs.locals, inputs.drop_path);
  }

  startEpoch(epoch: number, { stepsPerEpoch, epochs }: { stepsPerEpoch: number; epochs: number; microPerEpoch?: number }): void {
    this.epoch = epoch;
    this.totalSteps = epochs * stepsPerEpoch;
  }

  /** The crops of every image, the teacher's centred, sharpened outputs on the global views, then the centre update. */
  async feeds(batch: Batch, micro: number): Promise<Record<string, Feed>> {
    const m = this.model;
    const [c, h, w] = m.inputShape;
    const g = this.crops.globalSize;
    const l = this.crops.localSize;
    const n = this.crops.localCrops;
    const b = batch.size;
    const gsz = c * g * g, lsz = c * l * l;
    const x1 = new Float32Array(b * gsz), x2 = new Float32Array(b * gsz), locals = new Float32Array(b * n * lsz);
    const rng = new Random(mixSeed(this.cfg.seed, micro, CROP_SALT));
    for (let i = 0; i < b; i++) {
      const img = pixelsFromNormalizedChw((batch.x as Float32Array).subarray(i * c * h * w, (i + 1) * c * h * w), [c, h, w], this.crops.mean, this.crops.std);
      const v = dinoViews(img, this.crops, rng);
      releasePixels(img);
      x1.set(v.globals[0], i * gsz);
      x2.set(v.globals[1], i * gsz);
      v.locals.forEach((t, j) => locals.set(t, (i * n + j) * lsz));
    }
    const raw = await this.teacherOutputs(x1, x2, b); // [2B, K]: chunk 0 the first views, chunk 1 the second
    const k = m.config.outDim;
    const probs = teacherTargets(raw, k, this.center, teacherTemperature(this.cfg, this.epoch));
    updateCenter(this.center, raw);
    const byImage = viewMajorToImageMajor(probs, b, 2, k);
    const rate = m.config.dropPathRate;
    const depth = m.config.depth;
    return {
      x: x1, global2: { data: x2, shape: [b, c, g, g] }, teacher_probs: { data: byImage, shape: [b, 2, k] },
      ...(n > 0 ? { locals: { data: locals, shape: [b, n, c, l, l] } } : {}),
      // one draw per image and view, from its own stream (the crops' draws do not shift it)
      ...(rate > 0 ? { drop_path: { data: dropPathScales(new Random(mixSeed(this.cfg.seed, micro, DROP_PATH_SALT)), rate, depth, b * (2 + n)), shape: [b, 2 + n, 2 * depth] } } : {}),
    };
  }

  /** The teacher (the student's graph fed the teacher's weights) on both global views: [2B, K]. */
  async teacherOutputs(x1: Float32Array, x2: Float32Array, b: number): Promise<Float32Array> {
    const m = this.model;
    const [c, g] = [m.config.inChans, this.crops.globalSize];
    this.teacherExe ??= await compile((x) => ({ out: m.project(x) }), [{ name: 'x', shape: ['batch', c, g, g] }], this.session);
    const both = new Float32Array(x1.length + x2.length);
    both.set(x1);
    both.set(x2, x1.length);
    const out = await this.teacherExe.run({ x: { data: both, shape: [2 * b, c, g, g] }, ...Object.fromEntries(this.teacher) });
    return out.out!.data as Float32Array;
  }

  /** clip_gradients, cancel_gradients_last_layer and the weight-decay schedule of optimiser step `step`. */
  beforeOptimizerStep({ grads, step, epoch, optimizer }: { grads: Map<string, Float32Array>; step: number; epoch: number; optimizer: Optimizer }): void {
    if (this.cfg.clipGrad) clipPerTensor(grads, this.cfg.clipGrad);
    if (epoch < this.cfg.freezeLastLayer) for (const k of [...grads.keys()]) if (LAST_LAYER.test(k)) grads.delete(k);
    const end = this.cfg.weightDecayEnd;
    const wd = end === undefined ? this.cfg.weightDecay : cosineValue(this.cfg.weightDecay, end, this.totalSteps, step);
    // DINO's get_params_groups: every tensor but biases and 1-D ones is regularised (cls_token and pos_embed too)
    for (const s of optimizer.specs) s.weightDecay = s.name.endsWith('.bias') || s.param.shape.length <= 1 ? 0 : wd;
  }

  /** The teacher's EMA step at the momentum of iteration `step`. */
  afterOptimizerStep(step: number): void {
    const mom = cosineValue(this.cfg.momentumTeacher, 1, this.totalSteps, step);
    for (const [k, p] of this.model.namedParameters()) {
      const t = this.teacher.get(k)!;
      const s = p.data;
      for (let i = 0; i < t.length; i++) t[i] = t[i]! * mom + (1 - mom) * s[i]!;
    }
  }

  /**
   * No held-out score. With a run directory, writes teacher.safetensors: the teacher's weights as
   * a checkpoint of the run's model (DINO evaluates and releases the teacher; `eval --knn` and
   * `train --pretrained` take it as they take last.safetensors, the student).
   */
  async evaluate({ runDir, classNames }: EvaluationContext): Promise<ObjectiveEvaluation> {
    if (runDir) {
      const m = this.model;
      const tensors = Object.fromEntries(m.namedState().map(([k, p]) => [k, { shape: p.shape, data: this.teacher.get(k) ?? p.data }]));
      const t = this.transform;
      const meta = { ...metaFor(this.cfg.model, m, [...classNames], { mean: [...t.mean], std: [...t.std], cropPct: t.cropPct, interpolation: t.interpolation }), epoch: this.epoch + 1 };
      writeSafetensors(join(runDir, 'teacher.safetensors'), tensors, { format: 'pt', tessera: JSON.stringify(meta) });
    }
    return { record: {} };
  }

  stateTensors(): Record<string, Float32Array> {
    return { center: this.center, ...Object.fromEntries([...this.teacher].map(([k, v]) => [`teacher.${k}`, v])) };
  }

  loadStateTensors(tensors: Record<string, Float32Array>): void {
    if (tensors.center) this.center.set(tensors.center);
    for (const [k, v] of this.teacher) {
      const saved = tensors[`teacher.${k}`];
      if (!saved) throw new RangeError(`the resume state has no DINO teacher weights for ${k}`);
      v.set(saved);
    }
  }

  async dispose(): Promise<void> {
    await this.teacherExe?.dispose();
  }
}
