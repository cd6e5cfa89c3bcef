/**
 * CSV and JSONL manifests: one image per row, `path,label` (optionally `split`), paths relative
 * to the manifest's folder. A CSV header row is recognised by its column names; without one the
 * columns are path, label, split in that order. An image–caption manifest (`path,caption`, for
 * `pretrain --method clip`) reads its captions as the labels: each distinct caption is a "class"
 * whose name is the text, which the contrastive objective tokenises.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { oneLine, quote } from '../../quote.js';

export interface ManifestRow { path: string; label: string; split?: string; line: number }

export class DatasetError extends Error {
  override name = 'DatasetError';
}

const PATH_KEYS = ['path', 'file', 'filename', 'filepath', 'image', 'image_path'];
const LABEL_KEYS = ['label', 'class', 'target', 'class_name', 'category', 'caption', 'text'];

export const isManifestPath = (p: string): boolean => ['.csv', '.jsonl', '.ndjson'].includes(extname(p).toLowerCase());

export function readManifest(file: string): ManifestRow[] {
  const text = readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
  const rows = extname(file).toLowerCase() === '.csv' ? readCsv(text, file) : readJsonl(text, file);
  if (rows.length === 0) throw new DatasetError(`manifest ${file} lists no images (expected rows of path,label)`);
  return rows;
}

function readJsonl(text: string, file: string): ManifestRow[] {
  const rows: ManifestRow[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      throw new DatasetError(`manifest ${file}, line ${i + 1}: not valid JSON (${oneLine((e as Error).message)})`);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new DatasetError(`manifest ${file}, line ${i + 1}: expected an object like {"path": "a.jpg", "label": "cat"}`);
    const o = obj as Record<string, unknown>;
    const path = PATH_KEYS.map((k) => o[k]).find((v) => v !== undefined);
    const label = LABEL_KEYS.map((k) => o[k]).find((v) => v !== undefined);
    if (typeof path !== 'string' || !path) throw new DatasetError(`manifest ${file}, line ${i + 1}: missing "path" (a string)`);
    if (typeof label !== 'string' && typeof label !== 'number') throw new DatasetError(`manifest ${file}, line ${i + 1}: missing "label" (a class name or number)`);
    rows.push({ path, label: String(label), split: typeof o.split === 'string' ? o.split : undefined, line: i + 1 });
  });
  return rows;
}

/** RFC 4180 fields: commas, double quotes around fields, "" for a quote inside one. */
function csvRecords(text: string): { fields: string[]; line: number }[] {
  const records: { fields: string[]; line: number }[] = [];
  let fields: string[] = [], field = '', quoted = false, line = 1, start = 1;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (ch === '"') quoted = false;
      else { if (ch === '\n') line++; field += ch; }
    } else if (ch === '"' && field === '') quoted = true;
    else if (ch === ',') { fields.push(field); field = ''; }
    else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      fields.push(field);
      if (fields.some((f) => f.trim() !== '')) records.push({ fields, line: start });
      fields = []; field = ''; line++; start = line;
    } else field += ch;
  }
  fields.push(field);
  if (fields.some((f) => f.trim() !== '')) records.push({ fields, line: start });
  return records;
}

function readCsv(text: string, file: string): ManifestRow[] {
  const records = csvRecords(text);
  if (records.length === 0) return [];
  const head = records[0]!.fields.map((f) => f.trim().toLowerCase());
  let cols = { path: 0, label: 1, split: 2 };
  let body = records;
  if (head.some((h) => PATH_KEYS.includes(h)) || head.some((h) => LABEL_KEYS.includes(h))) {
    const find = (keys: string[]) => head.findIndex((h) => keys.includes(h));
    cols = { path: find(PATH_KEYS), label: find(LABEL_KEYS), split: head.indexOf('split') };
    if (cols.path < 0 || cols.label < 0) throw new DatasetError(`manifest ${file}: the header (${oneLine(records[0]!.fields.join(','), 200)}) needs a "path" and a "label" column`);
    body = records.slice(1);
  }
  return body.map(({ fields, line }) => {
    const path = fields[cols.path]?.trim() ?? '';
    const label = fields[cols.label]?.trim() ?? '';
    if (!path || !label) throw new DatasetError(`manifest ${file}, line ${line}: expected path,label, got ${quote(fields.join(','))}`);
    const split = cols.split >= 0 ? fields[cols.split]?.trim() || undefined : undefined;
    return { path, label, split, line };
  });
}
