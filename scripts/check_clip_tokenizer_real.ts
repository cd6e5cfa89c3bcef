/**
 * Script-level check of the CLIP tokenizer on OpenAI's real vocabulary (not committed: 49,408
 * tokens, OpenAI's file). Get bpe_simple_vocab_16e6.txt.gz from openai/CLIP (clip/), then:
 *   /usr/bin/python3 scripts/make_clip_tokenizer_goldens.py --real VOCAB | tail -1 > real.json
 *   npx tsx scripts/check_clip_tokenizer_real.ts VOCAB real.json
 * Prints the rows whose ids differ, and exits 1 if any do.
 */
import { readFileSync } from 'node:fs';
import { ClipTokenizer } from '../src/text/clip_tokenizer.js';

const [vocab, goldens] = process.argv.slice(2);
if (!vocab || !goldens) throw new Error('usage: check_clip_tokenizer_real.ts VOCAB.txt.gz GOLDENS.json');
const expected = JSON.parse(readFileSync(goldens, 'utf8')) as { vocab_size: number; rows: { text: string; ids77_truncated: number[] }[] };
const tok = ClipTokenizer.fromMergesFile(vocab);
let differing = 0;
console.log(`vocabulary: ${tok.vocabSize} tokens (reference ${expected.vocab_size})`);
for (const row of expected.rows) {
  const ids = Array.from(tok.tokenize([row.text], { truncate: true }), Number);
  if (JSON.stringify(ids) !== JSON.stringify(row.ids77_truncated)) {
    differing++;
    console.log(`differs: ${JSON.stringify(row.text)}\n  tessera   ${JSON.stringify(ids.filter(Boolean))}\n  reference ${JSON.stringify(row.ids77_truncated.filter(Boolean))}`);
  }
}
console.log(`${expected.rows.length - differing} of ${expected.rows.length} texts identical`);
process.exit(differing || tok.vocabSize !== expected.vocab_size ? 1 : 0);
