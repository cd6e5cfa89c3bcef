"""Goldens for tessera's CLIP tokenizer (src/text/clip_tokenizer.ts).

1. Learns a small byte-level BPE (200 merges) from a toy corpus and writes it in OpenAI's file
   format (test/fixtures/clip_tokenizer/bpe_toy_vocab.txt.gz: a header line, then one merge "a b"
   a line) and in Hugging Face's (vocab.json + merges.txt).
2. Encodes a table of texts with a reference tokenizer written here from OpenAI's
   clip/simple_tokenizer.py and clip/clip.py's tokenize (openai/CLIP
   d05afc436d78f1c48dc0dbf8e5980a9d471f35f6, read, not imported): bytes_to_unicode, the
   pre-tokenisation regex (Python's `regex` module, Unicode classes, IGNORECASE), BPE by merge rank,
   <|startoftext|> / <|endoftext|>, context length, truncation (cut, last id := end of text).
   Cleaning: ftfy is not installable here, so the reference cleans as tessera does: NFC (ftfy's
   fix_text normalises to NFC) and curly quotes straightened (ftfy's uncurl_quotes), then
   html.unescape twice, strip, whitespace runs → one space, lower-case.
3. With --real PATH (OpenAI's bpe_simple_vocab_16e6.txt.gz, not committed) prints the same table's
   ids for the real vocabulary (a script-level check, compared by scripts/check_clip_tokenizer_real.ts).

Run: /usr/bin/python3 scripts/make_clip_tokenizer_goldens.py [--real PATH]
"""
import gzip
import html
import json
import os
import sys
import unicodedata
from collections import Counter

import regex as re

FIX = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "clip_tokenizer")
PAT = re.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", re.IGNORECASE)
MAX_MERGES = 49152 - 256 - 2  # OpenAI's slice merges[1:49152-256-2+1]


def bytes_to_unicode():
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    table = {b: chr(b) for b in printable}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    return table


BYTE = bytes_to_unicode()
QUOTES = {"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"'}


def clean(text):
    text = unicodedata.normalize("NFC", text)
    text = "".join(QUOTES.get(c, c) for c in text)
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip().lower()


def words_of(text):
    return ["".join(BYTE[b] for b in w.encode("utf-8")) for w in re.findall(PAT, clean(text))]


def merge_pair(word, pair):
    """The symbols of `word` with every occurrence of `pair`, left to right, joined into one."""
    out, i = [], 0
    while i < len(word):
        if i < len(word) - 1 and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def learn(corpus, n_merges):
    counts = Counter()
    for line in corpus:
        for w in words_of(line):
            counts[tuple(w[:-1]) + (w[-1] + "</w>",)] += 1
    merges = []
    for _ in range(n_merges):
        pairs = Counter()
        for word, c in counts.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))  # most frequent, ties by the larger pair
        merges.append(best)
        merged = Counter()
        for word, c in counts.items():
            merged[tuple(merge_pair(word, best))] += c
        counts = merged
    return merges


class Reference:
    def __init__(self, merges):
        merges = merges[:MAX_MERGES]
        vocab = list(BYTE.values())
        vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = {v: i for i, v in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}

    def bpe(self, token):
        if token in ("<|startoftext|>", "<|endoftext|>"):
            return [token]
        word = list(token[:-1]) + [token[-1] + "</w>"]
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            word = merge_pair(word, best)
        return word

    def tokenize(self, text, context, truncate):
        ids = [self.encoder["<|startoftext|>"]]
        for w in words_of(text):
            ids += [self.encoder[t] for t in self.bpe(w)]
        ids.append(self.encoder["<|endoftext|>"])
        if len(ids) > context:
            if not truncate:
                return None
            ids = ids[:context]
            ids[-1] = self.encoder["<|endoftext|>"]
        return ids + [0] * (context - len(ids))


CORPUS = [f"a photo of a {w}." for w in ("cat", "dog", "bird", "car", "plane", "ship", "truck", "horse", "frog", "deer")] + [
    "a photo of the small t-shirt", "a blurry photo of a trouser", "a drawing of a pullover", "a photo of my dress",
    "the coat on a sandal", "a sneaker and a bag", "an ankle boot in the photo", "there's a photo of it, isn't there?",
    "she'll say we've done 42 things", "a photo of a café in zürich", "naïve photos of 12 dogs & 3 cats",
] * 3

TEXTS = [
    "a photo of a cat.", "A Photo Of A DOG!", "  lots   of\twhite\nspace  ", "punctuation!!! ... ?!?; (brackets) [x] {y}",
    "numbers 2024 and 3.14159 and 1,000,000", "contractions: it's, don't, we're, they've, I'm, you'll, he'd", "CAPS'S AND 'QUOTES'",
    "accents: café naïve zürich résumé", "decomposed: cafe\u0301", "curly \u2018quotes\u2019 and \u201cdouble\u201d",
    "emoji 🐱🐶 and 👍🏽 flags 🇫🇷", "CJK: 猫の写真 고양이 사진 一只猫", "html &amp; entities &lt;b&gt; &quot;x&quot; &#39;y&#39; &#x263A; &amp;amp;",
    "<|startoftext|> special <|endoftext|>", "", "t-shirt/top, trouser, pullover", "Ωmega ΣΑΣ straße İstanbul",
    "a " * 80, "word " * 100,
]


def main():
    os.makedirs(FIX, exist_ok=True)
    merges = learn(CORPUS, 200)
    with gzip.GzipFile(os.path.join(FIX, "bpe_toy_vocab.txt.gz"), "wb", mtime=0) as f:
        f.write(("#version: toy byte-level BPE learned by scripts/make_clip_tokenizer_goldens.py\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n").encode("utf-8"))
    ref = Reference(merges)
    hf = os.path.join(FIX, "hf")
    os.makedirs(hf, exist_ok=True)
    with open(os.path.join(hf, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(ref.encoder, f, ensure_ascii=False)
    with open(os.path.join(hf, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n")
    rows = [{"text": t, "ids77": ref.tokenize(t, 77, False), "ids77_truncated": ref.tokenize(t, 77, True), "ids16_truncated": ref.tokenize(t, 16, True)} for t in TEXTS]
    out = {"vocab_size": len(ref.encoder), "merges": len(merges), "rows": rows}
    with open(os.path.join(FIX, "goldens.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=0)
    print("vocab", len(ref.encoder), "merges", len(merges))
    if "--real" in sys.argv:
        path = sys.argv[sys.argv.index("--real") + 1]
        real = gzip.open(path).read().decode("utf-8").split("\n")[1:MAX_MERGES + 1]
        r = Reference([tuple(m.split()) for m in real])
        print(json.dumps({"vocab_size": len(r.encoder), "rows": [{"text": t, "ids77_truncated": r.tokenize(t, 77, True)} for t in TEXTS]}, ensure_ascii=False))


if __name__ == "__main__":
    main()
