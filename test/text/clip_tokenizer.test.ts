/**
 * CLIP's tokenizer against scripts/make_clip_tokenizer_goldens.py: a reference BPE tokenizer
 * written from OpenAI's simple_tokenizer.py / clip.tokenize (openai/CLIP d05afc4) with Python's
 * `regex` module, over a toy BPE vocabulary the script learned (committed in both OpenAI's and
 * Hugging Face's file formats). The table covers punctuation, numbers, contractions, accents
 * (composed and decomposed), curly quotes, emoji, CJK, HTML entities, the special tokens, empty
 * and long texts (an error, or truncated at 77 and at 16).
 */
import { describe, expect, it } from 'vitest';
import { ClipTokenizer, htmlUnescape } from '../../src/text/clip_tokenizer.js';
import { fixturePath, readJsonFixture } from '../helpers/fixtures.js';

const goldens = readJsonFixture('clip_tokenizer/goldens.json');
const openaiFormat = ClipTokenizer.fromMergesFile(fixturePath('clip_tokenizer/bpe_toy_vocab.txt.gz'));
const hfFormat = ClipTokenizer.find(fixturePath('clip_tokenizer/hf'));

describe('CLIP tokenizer', () => {
  for (const [name, tok] of [['OpenAI merges file', openaiFormat], ['Hugging Face vocab.json + merges.txt', hfFormat]] as const) {
    it(`${name}: ids of every text of the table equal the reference's`, () => {
      expect(tok.vocabSize).toBe(goldens.vocab_size);
      for (const row of goldens.rows) {
        const label = JSON.stringify(row.text.slice(0, 40));
        if (row.ids77) expect(Array.from(tok.tokenize([row.text]), Number), label).toEqual(row.ids77);
        else expect(() => tok.tokenize([row.text]), label).toThrow(/^text ".*" is \d+ tokens, longer than the context of 77$/);
        expect(Array.from(tok.tokenize([row.text], { truncate: true }), Number), label).toEqual(row.ids77_truncated);
        expect(Array.from(tok.tokenize([row.text], { contextLength: 16, truncate: true }), Number), label).toEqual(row.ids16_truncated);
      }
    });
  }

  it('the table has the cases it claims: some texts overflow 77 tokens, and non-ASCII text becomes byte tokens', () => {
    expect(goldens.rows.filter((r: any) => r.ids77 === null).length).toBeGreaterThanOrEqual(2);
    expect(goldens.rows.some((r: any) => r.text.includes('猫'))).toBe(true);
  });

  it("Python's html.unescape rules for numeric references and entities without a semicolon", () => {
    expect(htmlUnescape('&#128;&#0;&#xD800;&#1;&ampx &lt &apos &apos; &unknown;')).toBe("€\ufffd\ufffd&x < &apos ' &unknown;");
  });

  it('a folder without tokenizer files is one clear line', () => {
    expect(() => ClipTokenizer.find(fixturePath('clip_tiny_hf'))).toThrow(/clip_tiny_hf: no CLIP tokenizer files \(bpe_simple_vocab_16e6\.txt\.gz, or vocab\.json \+ merges\.txt\) beside the checkpoint$/);
  });
});
