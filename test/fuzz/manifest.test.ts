/**
 * Fuzzing the CSV and JSONL manifest readers: mutations of valid manifests (with and without a
 * header, quoted fields, a split column, CRLF) with the tokens that break CSV and JSON, and
 * random text. Any input gives rows with a path and a label, or a one-line DatasetError.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetError, readManifest, type ManifestRow } from '../../src/data/datasets/manifest.js';
import { expectAllowed, fc, fuzz, mutatedText, peakRss, RSS_GROWTH_LIMIT, scratchDir, timeout, utf8 } from './helpers.js';

const CSV = [
  'path,label\ncats/a.jpg,cat\ndogs/b.png,dog\n',
  'filename,class,split\r\n"img, 1.jpg",cat,train\r\nimg2.jpg,"dog ""big""",val\r\n',
  'a.jpg,0\nb.jpg,1,train\n\n',
  '\uFEFFimage_path,target\n"multi\nline.jpg",3\n',
];
const JSONL = [
  '{"path": "cats/a.jpg", "label": "cat"}\n{"path": "dogs/b.png", "label": "dog", "split": "val"}\n',
  '{"image": "x.png", "target": 3}\r\n\r\n{"file": "y.png", "class": 1}\n',
  '{"filepath": "z.jpg", "category": "bird", "split": "train"}',
];
const DICTIONARY = ['"path"', '"label"', '"split"', 'path', 'label', 'split', '"""', '",', ',"', '{}', '[]', '"path": 1'].map(utf8);

const wellFormed = (rows: ManifestRow[]) => {
  expect(rows.length).toBeGreaterThan(0);
  for (const r of rows) {
    expect(typeof r.path === 'string' && r.path.length > 0).toBe(true);
    expect(typeof r.label).toBe('string');
    expect(r.split === undefined || typeof r.split === 'string').toBe(true);
    expect(Number.isSafeInteger(r.line) && r.line >= 1).toBe(true);
  }
};

let rss0 = 0;
const scratch = scratchDir('manifest');
beforeAll(() => { rss0 = peakRss(); });
afterAll(() => {
  scratch.remove();
  expect(peakRss() - rss0).toBeLessThan(RSS_GROWTH_LIMIT);
});

describe('fuzz: manifests', () => {
  for (const [ext, corpus] of [['csv', CSV], ['jsonl', JSONL]] as const) {
    it(`${ext}: mutated manifests (CSV and JSON tokens, splices of both kinds) and random text`, () => {
      const file = scratch.path(`manifest.${ext}`);
      fuzz(`manifest-${ext}`, [fc.oneof(mutatedText(corpus, { dictionary: DICTIONARY }), mutatedText([...CSV, ...JSONL], { dictionary: DICTIONARY }))], (text) => {
        writeFileSync(file, text);
        expectAllowed('readManifest', () => readManifest(file), { errors: [DatasetError], inputBytes: text.length, check: wellFormed });
      }, 1500);
    }, timeout(60_000));
  }

  describe('regressions (found by the fuzz: messages quoted the file\'s newlines)', () => {
    const cases: [string, string, RegExp][] = [
      ['row.csv', 'path,label\n"multi\nline.jpg",\n', /line 2: expected path,label, got "multi\\nline\.jpg,"$/],
      ['header.csv', 'path,"cl\nass"\na.jpg,1\n', /the header \(path,cl ass\) needs/],
      ['cr.jsonl', '{"path":\r x}\n', /line 1: not valid JSON \(Unexpected token 'x', "\{"path":\s+x\}" is not valid JSON\)$/],
    ];
    for (const [name, text, message] of cases) {
      it(name, () => {
        const p = scratch.path(name);
        writeFileSync(p, text);
        const out = expectAllowed('readManifest', () => readManifest(p), { errors: [DatasetError], inputBytes: text.length });
        expect(out.ok).toBe(false);
        if (!out.ok) expect(out.error.message).toMatch(message);
      });
    }
  });
});
