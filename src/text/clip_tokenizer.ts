/**
 * CLIP's tokenizer: byte-level BPE over lower-cased, cleaned text, as OpenAI's
 * clip/simple_tokenizer.py and clip.tokenize: <|startoftext|> ids <|endoftext|>, zero-padded to
 * the context length (77 for every released CLIP). The vocabulary is the checkpoint's own: OpenAI's
 * / open_clip's `bpe_simple_vocab_16e6.txt.gz` (a header line, then one merge "a b" a line; the
 * vocabulary is the 256 byte symbols, the same with `</w>`, one per merge, then the two specials),
 * or Hugging Face's `vocab.json` + `merges.txt`.
 *
 * Cleaning. OpenAI runs ftfy.fix_text, html.unescape twice, strips, and collapses whitespace.
 * Of ftfy, this reproduces NFC normalisation and straightened curly quotes (uncurl_quotes); not
 * its mojibake repair, ligature and full-width folding, or control-character removal. html.unescape
 * is Python's for numeric references and for the named entities in NAMED_ENTITIES; other names of
 * HTML5's table stay as written.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

export const START = '<|startoftext|>';
export const END = '<|endoftext|>';
/** OpenAI keeps merges[1 : 49152 - 256 - 2 + 1] of its file: the vocabulary is 49,408 ids. */
const MAX_MERGES = 49152 - 256 - 2;

export class TokenizerError extends Error {
  override name = 'TokenizerError';
}

/** GPT-2's reversible byte → printable-character table. */
function bytesToUnicode(): string[] {
  const table: (string | undefined)[] = new Array(256);
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  for (let b = 0; b < 256; b++) if (printable(b)) table[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (!table[b]) table[b] = String.fromCharCode(256 + n++);
  return table as string[];
}
const BYTE = bytesToUnicode();
/** The first 256 ids: OpenAI's dict order, the printable bytes first, then the remapped ones. */
const BYTE_VOCAB = [...BYTE.filter((c) => c.charCodeAt(0) < 256), ...BYTE.filter((c) => c.charCodeAt(0) >= 256)];

// ---- cleaning ----------------------------------------------------------------------------------

const NAMED_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', nbsp: '\u00a0', copy: '©', reg: '®' };
/** HTML5 names that decode only with their semicolon (Python's html5 table has no bare "apos"). */
const SEMICOLON_ONLY: Record<string, string> = { apos: "'" };
/** Windows-1252 at 0x80–0x9F, Python's _invalid_charrefs (undefined bytes keep their code point). */
const CP1252 = '€\u0081‚ƒ„…†‡ˆ‰Š‹Œ\u008dŽ\u008f\u0090‘’“”•–—˜™š›œ\u009džŸ';

function isInvalidCodepoint(n: number): boolean {
  return (n >= 0x1 && n <= 0x8) || n === 0xb || (n >= 0xe && n <= 0x1f) || (n >= 0x7f && n <= 0x9f) || (n >= 0xfdd0 && n <= 0xfdef) || (n & 0xfffe) === 0xfffe;
}

/** Python's html.unescape for numeric references and NAMED_ENTITIES. */
export function htmlUnescape(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(/&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/g, (whole, ref: string) => {
    if (ref[0] === '#') {
      const num = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2).replace(';', ''), 16) : parseInt(ref.slice(1).replace(';', ''), 10);
      if (num === 0) return '\ufffd';
      if (num === 0x0d) return '\r';
      if (num >= 0x80 && num <= 0x9f) return CP1252[num - 0x80]!; // Python's _invalid_charrefs
      if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) return '\ufffd';
      if (isInvalidCodepoint(num)) return '';
      return String.fromCodePoint(num);
    }
    const name = ref.endsWith(';') ? ref.slice(0, -1) : ref;
    if (ref.endsWith(';') && (NAMED_ENTITIES[name] ?? SEMICOLON_ONLY[name])) return NAMED_ENTITIES[name] ?? SEMICOLON_ONLY[name]!;
    // the longest known prefix without a semicolon, the rest kept (Python: "&ampx" → "&x")
    for (let i = Math.min(name.length, 6); i > 1; i--) {
      const v = NAMED_ENTITIES[name.slice(0, i)];
      if (v) return v + ref.slice(i);
    }
    return whole;
  });
}

const CURLY: Record<string, string> = { '\u2018': "'", '\u2019': "'", '\u201a': "'", '\u201b': "'", '\u201c': '"', '\u201d': '"', '\u201e': '"', '\u201f': '"' };
// Python's `regex` \s is Unicode's White_Space (JS's \s differs: it has U+FEFF, lacks U+0085)
const WHITESPACE = /\p{White_Space}+/gu;

export function cleanText(text: string): string {
  let t = text.normalize('NFC').replace(/[\u2018-\u201f]/g, (c) => CURLY[c] ?? c);
  t = htmlUnescape(htmlUnescape(t));
  return t.replace(WHITESPACE, ' ').replace(/^ | $/g, '').toLowerCase();
}

/** OpenAI's pre-tokenisation: the specials, contractions, letter runs, single digits, other runs. */
const PRE_TOKEN = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\p{White_Space}\p{L}\p{N}]+/giu;

// ---- BPE ---------------------------------------------------------------------------------------

export interface TokenizeOptions {
  contextLength?: number;
  /** Cut a text too long for the context and end it with <|endoftext|> (clip.tokenize's truncate=True); default: an error. */
  truncate?: boolean;
}

export class ClipTokenizer {
  readonly startId: number;
  readonly endId: number;
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();

  constructor(private readonly encoder: Map<string, number>, merges: [string, string][], readonly source: string) {
    merges.forEach(([a, b], i) => this.ranks.set(`${a} ${b}`, i));
    const id = (t: string) => {
      const v = encoder.get(t);
      if (v === undefined) throw new TokenizerError(`${source}: the vocabulary has no ${t} token`);
      return v;
    };
    this.startId = id(START);
    this.endId = id(END);
  }

  get vocabSize(): number {
    return this.encoder.size;
  }

  /** OpenAI's format: merges only; the vocabulary follows from them. */
  static fromMergesFile(path: string): ClipTokenizer {
    const text = path.endsWith('.gz') ? gunzipSync(readFileSync(path)).toString('utf8') : readFileSync(path, 'utf8');
    const merges = parseMerges(text.split('\n').slice(1, MAX_MERGES + 1), path);
    const vocab = [...BYTE_VOCAB, ...BYTE_VOCAB.map((b) => `${b}</w>`), ...merges.map(([a, b]) => a + b), START, END];
    return new ClipTokenizer(new Map(vocab.map((t, i) => [t, i])), merges, path);
  }

  /** Hugging Face's format: vocab.json (token → id) and merges.txt (a "#version" line, then merges). */
  static fromHfFiles(vocabPath: string, mergesPath: string): ClipTokenizer {
    let vocab: Record<string, number>;
    try {
      vocab = JSON.parse(readFileSync(vocabPath, 'utf8')) as Record<string, number>;
    } catch (e) {
      throw new TokenizerError(`${vocabPath}: not a JSON vocabulary (${(e as Error).message.split('\n')[0]})`);
    }
    const lines = readFileSync(mergesPath, 'utf8').split('\n');
    const merges = parseMerges(lines[0]?.startsWith('#') ? lines.slice(1) : lines, mergesPath);
    return new ClipTokenizer(new Map(Object.entries(vocab)), merges, vocabPath);
  }

  /** The tokenizer files of a checkpoint: in `folder` (the checkpoint directory, or the weights file's folder). */
  static find(folder: string): ClipTokenizer {
    for (const name of ['bpe_simple_vocab_16e6.txt.gz', 'bpe_simple_vocab_16e6.txt']) {
      if (existsSync(join(folder, name))) return ClipTokenizer.fromMergesFile(join(folder, name));
    }
    if (existsSync(join(folder, 'vocab.json')) && existsSync(join(folder, 'merges.txt'))) return ClipTokenizer.fromHfFiles(join(folder, 'vocab.json'), join(folder, 'merges.txt'));
    throw new TokenizerError(`${folder}: no CLIP tokenizer files (bpe_simple_vocab_16e6.txt.gz, or vocab.json + merges.txt) beside the checkpoint`);
  }

  private bpe(word: string): number[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    let parts: string[];
    if (word === START || word === END) parts = [word];
    else {
      const chars = [...word];
      parts = [...chars.slice(0, -1), `${chars[chars.length - 1]}</w>`];
      while (parts.length > 1) {
        let best = -1;
        let bestRank = Infinity;
        for (let i = 0; i < parts.length - 1; i++) {
          const r = this.ranks.get(`${parts[i]} ${parts[i + 1]}`);
          if (r !== undefined && r < bestRank) { bestRank = r; best = i; }
        }
        if (best < 0) break;
        const [a, b] = [parts[best]!, parts[best + 1]!];
        const merged: string[] = [];
        for (let i = 0; i < parts.length; i++) {
          if (i < parts.length - 1 && parts[i] === a && parts[i + 1] === b) { merged.push(a + b); i++; } else merged.push(parts[i]!);
        }
        parts = merged;
      }
    }
    const ids = parts.map((p) => {
      const id = this.encoder.get(p);
      if (id === undefined) throw new TokenizerError(`${this.source}: the vocabulary has no token "${p}" for a merge it lists`);
      return id;
    });
    this.cache.set(word, ids);
    return ids;
  }

  /**
   * The tokenizer as files: Hugging Face's vocab.json and merges.txt ("#version: 0.2", then the
   * merges in rank order). The merges text with that header line is also OpenAI's
   * bpe_simple_vocab_16e6.txt format, whose vocabulary follows from the merges.
   */
  files(): { vocabJson: string; merges: string } {
    const vocab = Object.fromEntries([...this.encoder].sort((a, b) => a[1] - b[1]));
    return { vocabJson: `${JSON.stringify(vocab)}\n`, merges: `#version: 0.2\n${[...this.ranks.keys()].join('\n')}\n` };
  }

  /** Token ids of one text, without start/end tokens. */
  encode(text: string): number[] {
    const out: number[] = [];
    for (const m of cleanText(text).matchAll(PRE_TOKEN)) {
      const bytes = new TextEncoder().encode(m[0]);
      out.push(...this.bpe(Array.from(bytes, (b) => BYTE[b]!).join('')));
    }
    return out;
  }

  /** Rows of `contextLength` ids (clip.tokenize): start, the text's ids, end, zeros. */
  tokenize(texts: readonly string[], { contextLength = 77, truncate = false }: TokenizeOptions = {}): BigInt64Array {
    const out = new BigInt64Array(texts.length * contextLength);
    texts.forEach((text, r) => {
      let ids = [this.startId, ...this.encode(text), this.endId];
      if (ids.length > contextLength) {
        if (!truncate) throw new TokenizerError(`text "${text.length > 60 ? `${text.slice(0, 60)}…` : text}" is ${ids.length} tokens, longer than the context of ${contextLength}`);
        ids = [...ids.slice(0, contextLength - 1), this.endId];
      }
      ids.forEach((id, j) => { out[r * contextLength + j] = BigInt(id); });
    });
    return out;
  }
}

function parseMerges(lines: string[], source: string): [string, string][] {
  const merges: [string, string][] = [];
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    const parts = line.split(' ');
    if (parts.length !== 2) throw new TokenizerError(`${source}: line ${i + 2} is not a merge "a b": ${JSON.stringify(line.slice(0, 40))}`);
    merges.push(parts as [string, string]);
  });
  return merges;
}
