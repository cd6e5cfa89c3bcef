/**
 * Shared pieces of the fuzz suite (test/fuzz/*.test.ts): the run counts and seed, corpora of
 * mutated valid files, and the one assertion every parser is held to.
 *
 * The allowed outcome for any input is a result or tessera's own one-line error: an instance of
 * one of the parser's error classes (plain `Error` means exactly Error, never a TypeError,
 * RangeError or SyntaxError from deep inside), with a non-empty message on one line, returned
 * within a time bound and without holding memory beyond a small multiple of the input's size.
 *
 * CI runs each parser's `runs(n)` cases with the fixed seed; locally, `FUZZ_SCALE=20` runs 20×
 * as many and `FUZZ_SEED=<int>` picks another seed (fast-check prints the seed and the shrunk
 * input of a failure, so it can be replayed and kept as a regression case).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';

export { fc };

export const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 20_220_522);
export const FUZZ_SCALE = Number(process.env.FUZZ_SCALE ?? 1);
if (!Number.isSafeInteger(FUZZ_SEED)) throw new Error(`FUZZ_SEED must be an integer, got ${process.env.FUZZ_SEED}`);
if (!(FUZZ_SCALE > 0)) throw new Error(`FUZZ_SCALE must be a positive number, got ${process.env.FUZZ_SCALE}`);

/** The number of cases of a property: its CI count times FUZZ_SCALE. */
export const runs = (ciCount: number): number => Math.max(1, Math.round(ciCount * FUZZ_SCALE));
/** fast-check parameters: the fixed (or FUZZ_SEED) seed and `runs(ciCount)` cases. */
export const params = (ciCount: number): fc.Parameters<unknown> => ({ seed: FUZZ_SEED, numRuns: runs(ciCount), verbose: 1 });
/**
 * Checks `predicate` on `runs(ciCount)` cases drawn from `arbs`. A failure is reported in a few
 * lines (the error, and the seed and path that replay it); the shrunk counterexample, often
 * kilobytes of bytes, goes to a file in the temp directory named in the message.
 * With FUZZ_DISCOVER=1 nothing fails: every case runs and the distinct failures are printed,
 * grouped, to see all a parser's problems at once.
 */
export function fuzz<Ts extends unknown[]>(name: string, arbs: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> }, predicate: (...args: Ts) => void, ciCount: number): void {
  const found = discovering ? new Map<string, [number, string]>() : undefined;
  const run = found ? (...args: Ts) => { try { predicate(...args); } catch (e) { note(found, e); } } : predicate;
  const prop = (fc.property as unknown as (...a: unknown[]) => fc.IProperty<Ts>)(...arbs, run);
  report(name, fc.check(prop, params(ciCount)) as fc.RunDetails<Ts>, found);
}

export async function fuzzAsync<Ts extends unknown[]>(name: string, arbs: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> }, predicate: (...args: Ts) => Promise<void>, ciCount: number): Promise<void> {
  const found = discovering ? new Map<string, [number, string]>() : undefined;
  const run = found ? async (...args: Ts) => { try { await predicate(...args); } catch (e) { note(found, e); } } : predicate;
  const prop = (fc.asyncProperty as unknown as (...a: unknown[]) => fc.IAsyncProperty<Ts>)(...arbs, run);
  report(name, await fc.check(prop, params(ciCount)) as fc.RunDetails<Ts>, found);
}

const discovering = process.env.FUZZ_DISCOVER === '1';

function note(found: Map<string, [number, string]>, e: unknown): void {
  const message = e instanceof Error ? e.message.split('\n')[0]! : String(e);
  const kind = message.replace(/"(?:[^"\\]|\\.)*"/g, '"…"').replace(/\d+/g, 'N').slice(0, 120);
  const seen = found.get(kind) ?? [0, message.slice(0, 300)];
  seen[0]++;
  found.set(kind, seen);
}

function report<Ts>(name: string, d: fc.RunDetails<Ts>, found?: Map<string, [number, string]>): void {
  if (found) {
    console.log(`fuzz ${name}: ${d.numRuns} cases, ${found.size} kind(s) of failure${[...found.values()].map(([n, m]) => `\n  [${n}×] ${JSON.stringify(m)}`).join('')}`);
    return;
  }
  if (!d.failed) return;
  const file = join(tmpdir(), `tessera-fuzz-${name.replace(/\W+/g, '_')}-${d.seed}.txt`);
  writeFileSync(file, `${fc.stringify(d.counterexample)}\n`);
  const error = d.errorInstance instanceof Error ? d.errorInstance.message : String(d.errorInstance);
  throw new Error(`fuzz ${name}: failed after ${d.numRuns} case(s) (seed ${d.seed}, path "${d.counterexamplePath}"); counterexample in ${file}\n${error.split('\n').slice(0, 12).join('\n')}`);
}

/** A vitest timeout that grows with FUZZ_SCALE (3× the idle time of a CI-sized run, at least). */
export const timeout = (ciMs: number): number => Math.max(ciMs, 3 * ciMs * FUZZ_SCALE);

// ---------------------------------------------------------------------------------------------
// The allowed outcome

type ErrorClass = abstract new (...args: never[]) => Error;

export interface OutcomeOptions<T> {
  /** The parser's own error classes. `Error` itself admits exactly Error (not its built-in subclasses). */
  errors: readonly ErrorClass[];
  /** The input's size in bytes, bounding what the call may allocate and hold. */
  inputBytes: number;
  /** Checks a result (it must be a well-formed one, not just "no exception"). */
  check?: (result: T) => void;
  /** Per-call wall-clock bound. Default 5 s: the parsers take milliseconds on these inputs, and a loaded machine may be 10× slower. */
  maxMs?: number;
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: Error };

/** Bytes of ArrayBuffers (Buffers, typed arrays) a call may hold beyond its input: generous slack for GC timing. */
const memoryBound = (inputBytes: number) => 16 * inputBytes + 64 * 2 ** 20;

/** Longest message a person should be shown: a value quoted from the input is quoted in part. */
const MAX_MESSAGE = 2000;

function checkError(e: unknown, errors: readonly ErrorClass[], what: string): Error {
  if (!(e instanceof Error)) throw new Error(`${what} threw a non-Error: ${String(e)}`);
  const known = errors.some((c) => (c === Error ? e.constructor === Error : e instanceof c));
  if (!known) {
    throw new Error(`${what} threw ${e.constructor.name} (allowed: ${errors.map((c) => c.name).join(', ')}): ${e.message}\n${e.stack}`);
  }
  if (typeof e.message !== 'string' || e.message.trim() === '') throw new Error(`${what} threw ${e.name} with an empty message`);
  if (/[\r\n]/.test(e.message)) throw new Error(`${what} threw a multi-line message: ${JSON.stringify(e.message.slice(0, 500))}`);
  if (e.message.length > MAX_MESSAGE) throw new Error(`${what} threw a ${e.message.length}-character message: ${JSON.stringify(e.message.slice(0, 300))}…`);
  return e;
}

function checkCost(started: number, before: number, o: { inputBytes: number; maxMs?: number }, what: string): void {
  const ms = performance.now() - started;
  if (ms > (o.maxMs ?? 5000)) throw new Error(`${what} took ${ms.toFixed(0)} ms on a ${o.inputBytes}-byte input`);
  const held = process.memoryUsage().arrayBuffers - before;
  if (held > memoryBound(o.inputBytes)) throw new Error(`${what} holds ${held} bytes of buffers after a ${o.inputBytes}-byte input`);
}

/**
 * Runs `fn` and asserts the allowed outcome (see the file's comment); returns it so a property can
 * check more. Throws (failing the property) on anything else.
 */
export function expectAllowed<T>(what: string, fn: () => T, o: OutcomeOptions<T>): Outcome<T> {
  const before = process.memoryUsage().arrayBuffers;
  const started = performance.now();
  let out: Outcome<T>;
  try {
    out = { ok: true, value: fn() };
  } catch (e) {
    out = { ok: false, error: checkError(e, o.errors, what) };
  }
  checkCost(started, before, o, what);
  if (out.ok) o.check?.(out.value);
  return out;
}

/** expectAllowed for async parsers. */
export async function expectAllowedAsync<T>(what: string, fn: () => Promise<T>, o: OutcomeOptions<T>): Promise<Outcome<T>> {
  const before = process.memoryUsage().arrayBuffers;
  const started = performance.now();
  let out: Outcome<T>;
  try {
    out = { ok: true, value: await fn() };
  } catch (e) {
    out = { ok: false, error: checkError(e, o.errors, what) };
  }
  checkCost(started, before, o, what);
  if (out.ok) o.check?.(out.value);
  return out;
}

/** Peak RSS (bytes) of this process so far; a suite checks that fuzzing did not raise it by much. */
export const peakRss = (): number => process.resourceUsage().maxRSS * 1024;
/** What a whole fuzz file may add to the process's peak RSS. */
export const RSS_GROWTH_LIMIT = 512 * 2 ** 20;

// ---------------------------------------------------------------------------------------------
// Mutations of valid files

/** Values that break length fields: 0, ±1 around the byte/word edges, 2^31, 2^32 − 1, 2^53, 2^60, 2^64 − 1. */
const INTERESTING = [0n, 1n, 2n, 7n, 8n, 0x7fn, 0x80n, 0xffn, 0x100n, 0x7fffn, 0x8000n, 0xffffn, 0x10000n, 0x7fffffffn, 0x80000000n,
  0xffffffffn, 0x100000000n, 2n ** 53n, 2n ** 60n, 2n ** 63n, 2n ** 64n - 1n];

export type Mutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'byte'; at: number; value: number }
  | { op: 'truncate'; at: number }
  | { op: 'drop'; at: number; len: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'duplicate'; from: number; len: number; at: number }
  | { op: 'splice'; other: number; cut: number; otherCut: number }
  | { op: 'field'; at: number; width: 1 | 2 | 4 | 8; bigEndian: boolean; value: bigint | number };

const pos = (at: number, len: number) => (len === 0 ? 0 : at % (len + 1));

/** Applies mutations to a copy of `base`; `corpus` supplies the other half of splices. */
export function mutate(base: Uint8Array, mutations: readonly Mutation[], corpus: readonly Uint8Array[]): Uint8Array {
  let b: Uint8Array = Uint8Array.from(base);
  for (const m of mutations) {
    const n = b.length;
    switch (m.op) {
      case 'flip': if (n) b[m.at % n]! ^= 1 << m.bit; break;
      case 'byte': if (n) b[m.at % n] = m.value; break;
      case 'truncate': b = b.slice(0, pos(m.at, n)); break;
      case 'drop': { const a = pos(m.at, n); b = concat(b.subarray(0, a), b.subarray(Math.min(n, a + m.len))); break; }
      case 'insert': { const a = pos(m.at, n); b = concat(b.subarray(0, a), m.bytes, b.subarray(a)); break; }
      case 'duplicate': { const f = pos(m.from, n); const piece = b.slice(f, f + m.len); const a = pos(m.at, n); b = concat(b.subarray(0, a), piece, b.subarray(a)); break; }
      case 'splice': { const o = corpus[m.other % corpus.length]!; b = concat(b.subarray(0, pos(m.cut, n)), o.subarray(pos(m.otherCut, o.length))); break; }
      case 'field': {
        if (n < m.width) break;
        const a = m.at % (n - m.width + 1);
        const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
        // a number is a small delta to the field's current value (an off-by-a-few length)
        const current = m.width === 8 ? view.getBigUint64(a, !m.bigEndian) : BigInt(m.width === 4 ? view.getUint32(a, !m.bigEndian) : m.width === 2 ? view.getUint16(a, !m.bigEndian) : view.getUint8(a));
        const v = BigInt.asUintN(8 * m.width, typeof m.value === 'number' ? current + BigInt(m.value) : m.value);
        if (m.width === 8) view.setBigUint64(a, v, !m.bigEndian);
        else if (m.width === 4) view.setUint32(a, Number(v), !m.bigEndian);
        else if (m.width === 2) view.setUint16(a, Number(v), !m.bigEndian);
        else view.setUint8(a, Number(v));
        break;
      }
    }
  }
  return b;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

export interface CorpusOptions {
  /** Byte strings worth inserting (format keywords, magic numbers, opcodes). */
  dictionary?: readonly Uint8Array[];
  /** Offsets of known length fields, targeted by 'field' mutations half the time. */
  fieldOffsets?: readonly number[];
  /** Longest all-random input. Default 2048. */
  maxRandomBytes?: number;
  /** Most mutations stacked on one file. Default 4. */
  maxMutations?: number;
}

const at = fc.nat({ max: 1 << 30 });

function mutationArb(corpusSize: number, o: CorpusOptions): fc.Arbitrary<Mutation> {
  const dict = o.dictionary?.length ? [fc.constantFrom(...o.dictionary)] : [];
  const fieldAt = o.fieldOffsets?.length ? fc.oneof(at, fc.constantFrom(...o.fieldOffsets)) : at;
  return fc.oneof(
    { weight: 3, arbitrary: fc.record({ op: fc.constant('flip' as const), at, bit: fc.integer({ min: 0, max: 7 }) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('byte' as const), at, value: fc.oneof(fc.constantFrom(0, 1, 0x7f, 0x80, 0xff), fc.integer({ min: 0, max: 255 })) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('truncate' as const), at }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('drop' as const), at, len: fc.integer({ min: 1, max: 64 }) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('insert' as const), at, bytes: fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 16 }), ...dict) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('duplicate' as const), from: at, len: fc.integer({ min: 1, max: 256 }), at }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('splice' as const), other: fc.nat({ max: Math.max(0, corpusSize - 1) }), cut: at, otherCut: at }) },
    {
      weight: 3,
      arbitrary: fc.record({
        op: fc.constant('field' as const), at: fieldAt, width: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const), bigEndian: fc.boolean(),
        value: fc.oneof(fc.constantFrom(...INTERESTING), fc.integer({ min: -16, max: 16 })),
      }),
    },
  );
}

/** 1..maxMutations mutations (for `mutate`), splices drawing on a corpus of `corpusSize` files. */
export const mutationList = (corpusSize: number, o: CorpusOptions = {}): fc.Arbitrary<Mutation[]> =>
  fc.array(mutationArb(corpusSize, o), { minLength: 1, maxLength: o.maxMutations ?? 4 });

/**
 * Inputs for a binary parser: 9 in 10 are 1..maxMutations mutations of a valid file of the
 * corpus, the rest random bytes.
 */
export function mutatedBytes(corpus: readonly Uint8Array[], o: CorpusOptions = {}): fc.Arbitrary<Uint8Array> {
  if (corpus.length === 0) throw new Error('mutatedBytes needs a corpus of valid files');
  const mutated = fc.record({ base: fc.nat({ max: corpus.length - 1 }), mutations: mutationList(corpus.length, o) }).map(({ base, mutations }) => mutate(corpus[base]!, mutations, corpus));
  return fc.oneof({ weight: 9, arbitrary: mutated }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: o.maxRandomBytes ?? 2048 }) });
}

const enc = new TextEncoder();
export const utf8 = (s: string): Uint8Array => enc.encode(s);

/** Tokens that break text formats (JSON, YAML, CSV, JSONL) in interesting ways. */
export const TEXT_TOKENS = ['"', "'", ',', '\n', '\r\n', '\r', '{', '}', '[', ']', ':', ': ', '- ', '#', '\\', '\\u0000', '\u0000', '\uFEFF', '\uFFFD',
  'null', 'true', '-1', '0', '1e999', '-0', 'NaN', '1.5', '9007199254740993', '__proto__', 'constructor', '"__proto__": {}', '&a ', '*a', '<<: *a',
  '!!binary ', '!!str ', '!!js/function ', '---\n', '...\n', '  ', '\t', '""', '"a""b"', '%YAML 1.1\n', '?'].map(utf8);

/** Text inputs: mutations of valid files (bytes and the tokens above), and random strings. */
export function mutatedText(corpus: readonly string[], o: CorpusOptions = {}): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 8, arbitrary: mutatedBytes(corpus.map(utf8), { ...o, dictionary: [...TEXT_TOKENS, ...(o.dictionary ?? [])] }) },
    { weight: 1, arbitrary: fc.string({ maxLength: 200, unit: 'binary' }).map(utf8) },
    { weight: 1, arbitrary: fc.jsonValue().map((v) => utf8(JSON.stringify(v) ?? 'null')) },
  );
}

// ---------------------------------------------------------------------------------------------
// Files

/** A scratch directory for parsers that read paths; removed by the returned function. */
export function scratchDir(prefix: string): { dir: string; path: (name: string) => string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `tessera-fuzz-${prefix}-`));
  return { dir, path: (name) => join(dir, name), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A compact, replayable form of a failing input for a regression case. */
export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
export const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
