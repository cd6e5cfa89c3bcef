/**
 * The training configuration: one schema for CLI flags, config files (JSON/YAML) and the library
 * API. Defaults are the Fashion-MNIST recipe. Unknown keys and bad values are rejected with a
 * message that names the key, the value and what was expected. Key names follow timm's
 * train.py flags (camelCase here; kebab-case and snake_case are accepted in files).
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { SMALL_INPUT_SIDE, imageAugmentSchema } from '../data/transforms/transform_config.js';
import { getFamily, listFamilies } from '../models/model.js';
import { familyOf } from '../models/registry.js';
import { mixupSchema } from '../data/transforms/mixup.js';
import { oneLine, quote, quoteName } from '../quote.js';

const prob = z.number().min(0).max(1);
const positive = z.number().positive();
const count = z.number().int().positive();
/** An area fraction range lo,hi of a crop (DINO's multi-crop scales). */
const dinoRange = z.array(z.number().gt(0).max(1)).length(2).refine(([lo, hi]) => lo! <= hi!, 'must be lo,hi with lo ≤ hi');

// timm's image augmentation flags that the tensor datasets' augmentation (crop padding, flip,
// erasing, shared above) does not have: they apply to image folders and manifests
const { hflip: _hflip, reprob: _reprob, remode: _remode, scale, ratio, colorJitter, ...imageOnly } = imageAugmentSchema.shape;
// no fixed default for these three: the data picks timm's or, for a small model input, none (sizeAwareAugment)
const sizeAware = (s: { description?: string }, photo: string, small: string) =>
  `image datasets: ${s.description}; default ${photo}, or ${small} when the model input is at most ${SMALL_INPUT_SIDE} px`;
const imageAugmentKeys = {
  ...Object.fromEntries(Object.entries(imageOnly).map(([k, s]) => [k, s.describe(`image datasets: ${s.description}`)])) as typeof imageOnly,
  scale: scale.unwrap().optional().describe(sizeAware(scale, '0.08,1', '1,1')),
  ratio: ratio.unwrap().optional().describe(sizeAware(ratio, '0.75,1.333', '1,1')),
  colorJitter: colorJitter.unwrap().optional().describe(sizeAware(colorJitter, '0.4', '0')),
};

/**
 * Architecture overrides on top of the registered model (timm's --model-kwargs): checked against
 * the model family's own schema (`kwargsSchema` in its file) once the model is known. The head
 * size, drop rates and seed come from their own options. Checkpoints store the resulting config,
 * so eval/predict/export need no kwargs.
 */
export type ModelKwargs = Record<string, unknown>;
const modelKwargsSchema = z.record(z.string(), z.unknown());
/** A camelCase key as timm and the option help write it (stemStrides → stem_strides). */
export function snake(k: string): string {
  return k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
/** Each registered family's --model-kwargs keys, for the option's help. */
const familyKwargKeys = () => listFamilies().map((f) => `${f}: ${Object.keys(getFamily(f).kwargsSchema.shape).map(snake).join(', ')}`).join('; ');

export const trainConfigSchema = z.object({
  model: z.string().default('vit_tiny_patch4_28').describe('Registered architecture (`tessera models`).'),
  modelKwargs: modelKwargsSchema.optional().describe(`architecture overrides, as timm's --model-kwargs: key=value pairs separated by commas or spaces, e.g. embed_dim=128,depth=8,global_pool=avg; a list as [1,2,2]. The keys are the model family's (${familyKwargKeys()})`),
  method: z.string().default('supervised').describe(`training objective: ${'supervised'} (cross-entropy on the labels; --adv switches it to adversarial training), or another registered method`),
  maskRatio: z.number().gt(0).lt(1).default(0.75).describe('--method mae: the share of patches removed from each image (MAE: 0.75)'),
  localCrops: z.number().int().min(0).default(8).describe('--method dino: local crops per image besides the 2 global ones (DINO: 8)'),
  localCropSize: count.optional().describe('--method dino: side of the local crops, a multiple of the patch (default: 3/7 of the model input rounded to patches, as DINO\'s 96 of 224)'),
  globalCropsScale: dinoRange.default([0.4, 1]).describe('--method dino: area fraction range of the global crops (DINO: 0.4,1)'),
  localCropsScale: dinoRange.default([0.05, 0.4]).describe('--method dino: area fraction range of the local crops (DINO: 0.05,0.4)'),
  teacherTemp: positive.default(0.04).describe('--method dino: teacher softmax temperature after its warm-up (DINO: 0.04)'),
  warmupTeacherTemp: positive.default(0.04).describe('--method dino: teacher temperature at the first epoch, rising linearly (DINO: 0.04)'),
  warmupTeacherTempEpochs: z.number().int().min(0).default(0).describe('--method dino: epochs of the teacher temperature warm-up (DINO: 0; 30 in its boosted runs)'),
  momentumTeacher: z.number().gt(0).max(1).default(0.996).describe('--method dino: teacher EMA momentum at the start; it follows a cosine to 1 (DINO: 0.996)'),
  weightDecayEnd: z.number().min(0).optional().describe('--method dino: final weight decay of a per-step cosine from --weight-decay (DINO: 0.04 → 0.4)'),
  freezeLastLayer: z.number().int().min(0).default(1).describe('--method dino: epochs during which the head\'s last layer is not updated (DINO: 1)'),
  dataset: z.string().default('fashion-mnist').describe('a built-in dataset (fashion-mnist, mnist, cifar10, cifar100), an image folder (one subfolder per class, or train/ and val/) or a CSV/JSONL manifest of path,label; for pretrain also a flat folder of unlabelled images'),
  dataDir: z.string().optional().describe('Where built-in datasets are looked for first (and downloaded to).'),
  output: z.string().optional().describe('Run directory; default runs/<model>-<dataset>-<timestamp>.'),
  epochs: count.default(10).describe('number of epochs'),
  batchSize: count.default(128).describe('images per micro-batch; with --grad-accum-steps k, each optimiser step sees k·batch-size images'),
  evalBatchSize: count.default(500).describe('Batch size for evaluation.'),
  opt: z.enum(['adamw', 'sgd']).default('adamw').describe('optimiser: adamw or sgd'),
  lr: positive.default(2e-3).describe('peak learning rate'),
  weightDecay: z.number().min(0).default(0.05).describe('Decoupled for AdamW; added to the gradient for SGD. Never applied to biases, norms, pos_embed, tokens.'),
  momentum: z.number().min(0).max(1).default(0.9).describe('SGD momentum'),
  nesterov: z.boolean().default(false).describe('Nesterov momentum for SGD'),
  sched: z.enum(['cosine', 'step', 'constant']).default('cosine').describe('per-step LR schedule after warmup: cosine, step or constant'),
  warmupEpochs: z.number().min(0).default(1).describe('epochs of linear LR warmup'),
  warmupLr: z.number().min(0).default(1e-6).describe('LR at the start of the linear warmup.'),
  minLr: z.number().min(0).default(1e-5).describe('Floor of the cosine schedule.'),
  decayEpochs: positive.default(30).describe('Step schedule: decay the LR by decayRate every decayEpochs.'),
  decayRate: positive.default(0.1).describe('step schedule: LR factor at each decay'),
  smoothing: z.number().min(0).lt(1).default(0.1).describe('Label smoothing ε.'),
  loss: z.enum(['ce', 'focal']).default('ce').describe('supervised loss: ce (cross-entropy) or focal (softmax focal loss, Lin et al. 2017: each class term scaled by (1 − p)^γ)'),
  focalGamma: z.number().refine((g) => g === 0 || g >= 1, 'must be 0 or at least 1 (between them the gradient is infinite where p = 1)').default(2).describe('focal loss exponent γ (--loss focal)'),
  sampler: z.enum(['random', 'balanced']).default('random').describe('training order: random (a seeded permutation each epoch) or balanced (as many draws as images, with replacement, every class equally likely per draw, as PyTorch\'s WeightedRandomSampler with 1/count weights; seeded, so resume draws the same)'),
  classWeights: z.string().regex(/^(balanced|\s*\d*\.?\d+(e-?\d+)?(\s*,\s*\d*\.?\d+(e-?\d+)?)*\s*)$/, 'must be "balanced" or positive numbers separated by commas, one per class').optional()
    .describe('weights of the classes in the supervised loss: balanced (n / (classes · count of the class) over the training images, as sklearn) or w1,w2,… in class order; the loss is the weighted mean, as PyTorch\'s cross_entropy(weight=…), and with --loss focal they are its α'),
  hflip: prob.default(0.5).describe('Probability of a horizontal flip.'),
  cropPadding: z.number().int().min(0).default(0).describe('Random crop after zero-padding by this many pixels (0: off).'),
  reprob: prob.default(0).describe("Random erasing probability (timm's --reprob)."),
  remode: z.enum(['pixel', 'const']).default('pixel').describe("Random erasing fill: per-pixel normal noise or zeros (timm's --remode)."),
  dropPath: z.number().min(0).lt(1).default(0).describe("Stochastic depth rate of the last block (timm's --drop-path)."),
  drop: z.number().min(0).lt(1).default(0).describe("Dropout before the head (timm's --drop)."),
  clipGrad: positive.optional().describe('Clip gradients to this global L2 norm (--method dino: each tensor to this norm, as DINO\'s clip_gradients; pretrain\'s DINO default 3).'),
  gradAccumSteps: count.default(1).describe('Sum gradients over this many micro-batches per optimiser step.'),
  modelEma: z.boolean().default(false).describe('Keep an exponential moving average of the weights and evaluate it too.'),
  modelEmaDecay: z.number().gt(0).lt(1).default(0.9998).describe('EMA decay per optimiser step'),
  seed: z.number().int().min(0).default(42).describe('seed of initialisation, data order, augmentation and drop-path'),
  trainLimit: count.optional().describe('Train on the first N training images only (quick runs, tests).'),
  evalLimit: count.optional().describe('Evaluate on the first N test images only.'),
  threads: count.optional().describe('ORT threads (default: physical cores).'),
  classes: z.array(z.number().int().min(0)).min(2).optional().describe('train on these class indices only (relabelled in this order), e.g. 5,6,7,8,9'),
  pretrained: z.string().optional().describe('start from these weights: a tessera or timm .safetensors file (fine-tuning defaults then apply)'),
  numClasses: count.optional().describe('classifier size (default: the dataset\'s class count); a pretrained head of another size is re-initialised'),
  freeze: z.enum(['none', 'backbone']).default('none').describe('backbone: train only the head and final norm (linear probing)'),
  unfreezeSchedule: count.optional().describe('with --freeze backbone: unfreeze one more block, top first, every N epochs'),
  layerDecay: z.number().gt(0).max(1).optional().describe("layer-wise LR decay (timm's --layer-decay), e.g. 0.75"),
  valSplit: z.number().min(0).lt(1).optional().describe('image datasets without a validation folder or split column: hold out this seeded, stratified fraction of each class for evaluation (default 0.1)'),
  stats: z.string().optional().describe('image datasets: a tessera stats --out JSON file; its per-channel mean/std normalise the data and are stored in the checkpoint'),
  imgSize: count.optional().describe("image datasets: the model's input size (square; default the model's); pretrained position embeddings are resampled"),
  workers: z.number().int().min(0).optional().describe('image datasets: decoding threads (default: the core count; 0 decodes on the main thread)'),
  strict: z.boolean().default(false).describe('image datasets: stop at the first unreadable image instead of skipping it'),
  calibrate: z.boolean().default(true).describe('image datasets: after each epoch fit temperature scaling on the validation part and store T in the checkpoints (predict, serve, export use it); built-in datasets evaluate on their test split and are not calibrated; --no-calibrate turns it off'),
  ...imageAugmentKeys,
  ...mixupSchema.shape,
  adv: z.enum(['none', 'fgsm', 'pgd']).default('none').describe('adversarial training: fgsm ("fast" FGSM with a random start, Wong et al. 2020) or pgd (Madry et al. 2018), in pixel space [0, 1]'),
  advEps: z.number().min(0).optional().describe('attack radius in pixel units (default 0.1 for grayscale, 8/255 for RGB under linf)'),
  advAlpha: z.number().positive().optional().describe('attack step size (default 1.25·eps for fgsm, 2.5·eps/steps for pgd)'),
  advSteps: count.default(7).describe('PGD steps per training batch'),
  advNorm: z.enum(['linf', 'l2']).default('linf').describe('threat model of --adv and of the robust evaluation'),
  advEvalImages: z.number().int().min(0).default(1000).describe('with --adv: evaluation images attacked by PGD-10 each epoch for robust_top1 (0: off)'),
}).strict();

/** Defaults that replace the from-scratch ones when --pretrained is given and the key is not set. */
export const finetuneDefaults = { lr: 5e-4, warmupEpochs: 0.2, smoothing: 0.1 } as const;

export type TrainConfig = z.infer<typeof trainConfigSchema>;
export const trainDefaults: TrainConfig = trainConfigSchema.parse({});

export class ConfigError extends Error {
  override name = 'ConfigError';
  /** The command-line flag whose value was refused, when it came from one: a usage error (exit 2). */
  readonly flag?: string;

  constructor(message: string, flag?: string) {
    super(message);
    this.flag = flag;
  }
}

/** keyName's result names a flag (`--lr`) rather than a key of a file (`"lr" in run.yaml`). */
const asFlag = (name: string) => (name.startsWith('--') ? name : undefined);

const camel = (k: string) => k.replace(/[-_]([a-z])/g, (_, c: string) => c.toUpperCase());
const camelKeys = (o: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined).map(([k, v]) => [camel(k), v]));

/**
 * Validates a partial config (from a file, flags or code) and fills the defaults. `keyName`
 * says how to name a key in errors (`"lr"` in a file, `--lr` on the command line).
 */
export function resolveTrainConfig(input: Record<string, unknown>, source = 'config', keyName = (k: string) => `"${k}"`): TrainConfig {
  const given = camelKeys(input);
  if (given.modelKwargs && typeof given.modelKwargs === 'object' && !Array.isArray(given.modelKwargs)) given.modelKwargs = camelKeys(given.modelKwargs as Record<string, unknown>);
  const normalised = given.pretrained ? { ...finetuneDefaults, ...given } : given;
  const r = trainConfigSchema.safeParse(normalised);
  if (!r.success) throw configError(r.error.issues[0]!, normalised, source, keyName);
  if (r.data.modelKwargs) r.data.modelKwargs = checkModelKwargs(r.data.model, r.data.modelKwargs, source, keyName);
  return r.data;
}

/** Validates --model-kwargs with the family's schema, naming keys in snake_case as timm's flag and the help write them. */
function checkModelKwargs(model: string, kwargs: Record<string, unknown>, source: string, keyName: (k: string) => string): Record<string, unknown> {
  // in_chans is timm's create_model argument for every family (multispectral data, issue #24)
  const schema = getFamily(familyOf(model)).kwargsSchema.extend({ inChans: z.number().int().min(1).optional() });
  const r = schema.safeParse(kwargs);
  if (r.success) return r.data as Record<string, unknown>;
  const first = r.error.issues[0]!;
  const at = first.path[1] === undefined ? '' : `[${String(first.path[1])}]`;
  const bad = first.code === 'unrecognized_keys'
    ? `unknown key${first.keys.length > 1 ? 's' : ''} ${first.keys.map((k) => quoteName(snake(k))).join(', ')}`
    : `${snake(String(first.path[0] ?? ''))}${at}: ${first.message}`;
  return fail(new ConfigError(`${source}: ${keyName('modelKwargs')} ${bad}; known keys: ${Object.keys(schema.shape).map(snake).join(', ')}`, asFlag(keyName('modelKwargs'))));
}

const fail = (e: Error): never => { throw e; };

function configError(first: z.core.$ZodIssue, normalised: Record<string, unknown>, source: string, keyName: (k: string) => string): ConfigError {
  if (first.code === 'unrecognized_keys') {
    return new ConfigError(`${source}: unknown key${first.keys.length > 1 ? 's' : ''} ${first.keys.map((k) => quote(k)).join(', ')}; known keys: ${Object.keys(trainConfigSchema.shape).join(', ')}`);
  }
  const key = String(first.path[0]);
  const got = quote(normalised[key]); // a YAML alias inside its own anchor is a cycle; values may be long
  const what = first.message.replace(/^(Invalid input|Too small|Too big): /, '').replace(/^expected number to be /, 'must be ')
    .replace(/^expected array to have ([<>]=?)(\d+) items?$/, (_, op: string, n: string) => `needs ${op.startsWith('>') ? 'at least' : 'at most'} ${n} values`);
  return new ConfigError(`${source}: ${keyName(key)} ${what}, got ${got}`, asFlag(keyName(key)));
}

/** Reads a .json, .yaml or .yml config file (keys as in the schema). */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new ConfigError(`config file ${path} does not exist or cannot be read`);
  }
  const ext = extname(path).toLowerCase();
  let value: unknown;
  try {
    // logLevel 'error': YAML's warnings (an unresolved tag) would print as multi-line process warnings
    value = ext === '.json' ? JSON.parse(text) : ext === '.yaml' || ext === '.yml' ? parseYaml(text, { logLevel: 'error' }) : undefined;
  } catch (e) {
    throw new ConfigError(`config file ${path} is not valid ${ext.slice(1).toUpperCase()}: ${oneLine((e as Error).message.split('\n')[0]!)}`);
  }
  if (value === undefined) throw new ConfigError(`config file ${path}: expected a .json, .yaml or .yml file`);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`config file ${path}: expected a mapping of keys to values`);
  return value as Record<string, unknown>;
}
