/**
 * Command-line flags generated from a zod object schema, so the CLI, config files and the
 * library share one definition: `weightDecay` becomes `--weight-decay <number>`, its help text
 * is the schema's description and its default is shown.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { z } from 'zod';

export const kebab = (k: string): string => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

interface FieldInfo { kind: 'number' | 'boolean' | 'enum' | 'string' | 'numbers' | 'numberOrList' | 'pairs'; choices?: string[]; defaultValue?: unknown; description: string }

function fieldInfo(schema: z.ZodType): FieldInfo {
  let t = schema as z.ZodType;
  let defaultValue: unknown;
  const description = schema.description ?? '';
  while (t instanceof z.ZodDefault || t instanceof z.ZodOptional) {
    if (t instanceof z.ZodDefault) defaultValue = (t.def as { defaultValue: unknown }).defaultValue;
    t = t.unwrap() as z.ZodType;
  }
  if (t instanceof z.ZodNumber) return { kind: 'number', defaultValue, description };
  if (t instanceof z.ZodBoolean) return { kind: 'boolean', defaultValue, description };
  if (t instanceof z.ZodEnum) return { kind: 'enum', choices: (t.options as string[]).map(String), defaultValue, description };
  if (t instanceof z.ZodArray || t instanceof z.ZodTuple) return { kind: 'numbers', defaultValue, description };
  // key=value maps: a fixed object, or a record whose keys another schema checks (--model-kwargs)
  if (t instanceof z.ZodObject || t instanceof z.ZodRecord) return { kind: 'pairs', defaultValue, description };
  // e.g. --color-jitter 0.4 or 0.4,0.4,0.4,0.1: a single value stays a number
  if (t instanceof z.ZodUnion) return { kind: 'numberOrList', defaultValue, description };
  return { kind: 'string', defaultValue, description };
}

const parseNumbers = (flag: string) => (v: string): number[] => {
  const parts = v.split(',').map((p) => p.trim());
  const nums = parts.map(Number);
  if (parts.some((p) => p === '') || nums.some((n) => !Number.isFinite(n))) throw new InvalidArgumentError(`${flag} must be numbers separated by commas, got "${v}"`);
  return nums;
};

/**
 * `key=value` pairs, as timm's --model-kwargs takes them (space-separated words, each of which may
 * hold several pairs separated by commas or spaces); values become numbers or booleans where they
 * read as such.
 */
export const parsePairs = (flag: string) => (v: string, previous: Record<string, unknown> | undefined): Record<string, unknown> => {
  const out = { ...previous };
  const scalar = (raw: string): unknown => {
    const num = Number(raw);
    return raw === 'true' ? true : raw === 'false' ? false : raw !== '' && Number.isFinite(num) ? num : raw;
  };
  // pairs are separated by commas or spaces (a quoted "a=1 b=2" is one word); inside [...] they
  // belong to a list value
  for (const pair of v.split(/[,\s]+(?![^[]*\])/).filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq <= 0 || eq === pair.length - 1) throw new InvalidArgumentError(`${flag} takes key=value pairs, got "${pair}"`);
    const raw = pair.slice(eq + 1).trim();
    const list = /^\[(.*)\]$/.exec(raw);
    out[pair.slice(0, eq).trim()] = list ? list[1]!.split(',').map((x) => scalar(x.trim())) : scalar(raw);
  }
  return out;
};

const parseNumber = (flag: string) => (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`${flag} must be a number, got "${v}"`);
  return n;
};

/** Adds one flag per schema key. Values stay undefined unless given, so config files can fill them. */
export function addSchemaOptions(cmd: Command, shape: Record<string, z.ZodType>): void {
  for (const [key, schema] of Object.entries(shape)) {
    const flag = `--${kebab(key)}`;
    const info = fieldInfo(schema);
    const shown = info.defaultValue === undefined ? '' : ` (default: ${JSON.stringify(info.defaultValue)})`;
    if (info.kind === 'boolean') {
      cmd.addOption(new Option(flag, `${info.description}${shown}`));
      cmd.addOption(new Option(`--no-${kebab(key)}`, `turn off ${flag}`).hideHelp());
      continue;
    }
    if (info.kind === 'pairs') {
      cmd.addOption(new Option(`${flag} <key=value...>`, info.description).argParser(parsePairs(flag)));
      continue;
    }
    const placeholder = info.kind === 'enum' ? 'choice' : info.kind === 'numbers' || info.kind === 'numberOrList' ? 'list' : info.kind;
    const opt = new Option(`${flag} <${placeholder}>`, `${info.description}${shown}`);
    if (info.kind === 'number') opt.argParser(parseNumber(flag));
    if (info.kind === 'numbers') opt.argParser(parseNumbers(flag));
    if (info.kind === 'numberOrList') opt.argParser((v) => {
      const nums = parseNumbers(flag)(v);
      return nums.length === 1 ? nums[0] : nums;
    });
    if (info.kind === 'enum') opt.choices(info.choices!);
    cmd.addOption(opt);
  }
}

/** The schema keys the user actually set on the command line. */
export function pickSchemaValues(opts: Record<string, unknown>, shape: Record<string, z.ZodType>): Record<string, unknown> {
  return Object.fromEntries(Object.keys(shape).filter((k) => opts[k] !== undefined).map((k) => [k, opts[k]]));
}
