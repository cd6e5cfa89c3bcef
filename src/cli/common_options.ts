/**
 * The options several commands share, declared once: the model to load, the preprocessing
 * overrides (timm validate.py's names), ORT threads, batch size, where built-in datasets live and
 * JSON output. `train` has the same names in its own schema (src/train/config.ts).
 *
 * Each option is a zod schema whose description is its help text. `sharedOption` makes it a
 * commander Option whose parser turns the raw string into a value (`parse`), checks it with the
 * schema and rejects a bad one naming the flag, the value and what was expected:
 * `--threads must be a positive integer, got "0"`.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { z } from 'zod';
import { kebab, parsePairs } from './schema_options.js';
import { modelKwargsSchema } from '../models/model_kwargs.js';

interface SharedOption {
  schema: z.ZodType;
  /** The value's placeholder in the help (`<n>`); a flag without one is a switch. */
  placeholder?: string;
  /** The raw string as the value the schema checks (default: the string itself). */
  parse?: (raw: string) => unknown;
  /** What a bad value should have been, for `--flag must be EXPECTED, got "raw"`. */
  expected?: string;
}

const count = z.number().int().positive();
/** "0.5,0.5,0.5" or "0.5 0.5 0.5" */
const numberList = (raw: string): number[] => raw.split(/[ ,]+/).filter(Boolean).map(Number);
const positiveInt = { parse: Number, expected: 'a positive integer' };

export const sharedOptions = {
  checkpoint: {
    placeholder: '<file>',
    schema: z.string().describe('a checkpoint (tessera/timm .safetensors, .pth, a Hugging Face directory) or an .onnx file from `tessera export` (run as it is, int8 too)'),
  },
  model: { placeholder: '<name>', schema: z.string().describe('architecture of a checkpoint without tessera metadata (a plain timm safetensors file)') },
  imgSize: { placeholder: '<n>', schema: count.describe('input size override (square)'), ...positiveInt },
  mean: {
    placeholder: '<list>', schema: z.array(z.number()).min(1).describe('normalisation mean override, e.g. 0.485,0.456,0.406'),
    parse: numberList, expected: 'numbers separated by commas',
  },
  std: {
    placeholder: '<list>', schema: z.array(z.number()).min(1).describe('normalisation std override, e.g. 0.229,0.224,0.225'),
    parse: numberList, expected: 'numbers separated by commas',
  },
  cropPct: { placeholder: '<f>', schema: z.number().gt(0).max(1).describe('eval resize is size / crop-pct before the centre crop'), parse: Number, expected: 'in (0, 1]' },
  interpolation: { placeholder: '<kind>', schema: z.enum(['bilinear', 'bicubic']).describe('resize interpolation') },
  threads: { placeholder: '<n>', schema: count.describe('ORT threads (default: physical cores)'), ...positiveInt },
  batchSize: { placeholder: '<n>', schema: count.describe('images per batch'), ...positiveInt },
  dataDir: { placeholder: '<dir>', schema: z.string().describe('where built-in datasets are looked for first') },
  json: { schema: z.boolean().describe('print JSON') },
  modelKwargs: { placeholder: '<key=value...>', schema: modelKwargsSchema, parse: (raw: string) => parsePairs('--model-kwargs')(raw, undefined), expected: 'key=value pairs' },
} satisfies Record<string, SharedOption>;

export type SharedOptionName = keyof typeof sharedOptions;

/** The parsed values, as commander hands them to an action (absent unless given or defaulted). */
export type SharedValues = { [K in SharedOptionName]?: z.infer<(typeof sharedOptions)[K]['schema']> };

/** How one command uses a shared option: its own help text (what its JSON holds), default, or a mandatory flag. */
export interface SharedOptionUse {
  description?: string;
  default?: unknown;
  required?: boolean;
}

export function sharedOption(name: SharedOptionName, use: SharedOptionUse = {}): Option {
  const o: SharedOption = sharedOptions[name];
  const flag = `--${kebab(name)}`;
  const opt = new Option(o.placeholder ? `${flag} ${o.placeholder}` : flag, use.description ?? o.schema.description);
  if (o.schema instanceof z.ZodEnum) opt.choices((o.schema.options as string[]).map(String));
  else if (o.parse) {
    const { schema, parse, expected } = o;
    opt.argParser((raw: string) => {
      const r = schema.safeParse(parse(raw));
      if (!r.success) throw new InvalidArgumentError(`${flag} must be ${expected}, got "${raw}"`);
      return r.data;
    });
  }
  if (use.default !== undefined) opt.default(use.default);
  if (use.required) opt.makeOptionMandatory();
  return opt;
}

/** The preprocessing flags of commands that load a model for inference (eval, predict, explain, attack). */
export const preprocessOptionNames = ['checkpoint', 'model', 'imgSize', 'mean', 'std', 'cropPct', 'interpolation', 'modelKwargs'] as const;

/** --checkpoint help of the commands that rebuild the model from an .onnx file's weights (modelFromOnnx). */
export const rebuiltOnnxCheckpointHelp = 'a checkpoint (tessera/timm .safetensors, .pth, a Hugging Face directory) or a float32 .onnx file from `tessera export` (the model is rebuilt from its weights)';

/** --checkpoint (mandatory, with the command's own help when given), --model and the preprocessing overrides, in that order. */
/** `omit`: options a command has no use for (zero-shot reads its architecture from the checkpoint: no --model). */
export function addPreprocessOptions(cmd: Command, checkpointHelp?: string, omit: readonly (typeof preprocessOptionNames)[number][] = []): Command {
  for (const name of preprocessOptionNames) {
    if (omit.includes(name)) continue;
    cmd.addOption(sharedOption(name, name === 'checkpoint' ? { required: true, description: checkpointHelp } : {}));
  }
  return cmd;
}

export type PreprocessFlags = Pick<SharedValues, Exclude<(typeof preprocessOptionNames)[number], 'checkpoint'>> & { checkpoint: string };
