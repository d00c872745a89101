"""Builds the bundled model's CLIP-format tokenizer over the scene vocabulary -> training/tokenizer/.

Uses tools/reference/clip_bpe.py (CLIP BPE encoder + plain BPE trainer): ids 0-255 byte symbols,
256-511 the same + "</w>", then the merges, then <|startoftext|>, <|endoftext|> last. BPE training
runs until no pair is left, so every scene word is one token.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools", "reference"))
import clip_bpe  # noqa: E402

import scenes  # noqa: E402

OUT = os.path.join(HERE, "tokenizer")


def scene_words():
    words = ["a", "an", "and", "on", "the", "at", "in", "background", "small", "large"]
    words += scenes.COLOURS + scenes.SHAPES
    for p in scenes.PLACES.values():
        words += p.split()
    return sorted(set(words))


def build():
    corpus = " ".join(scene_words())
    orig = clip_bpe.build_vocab

    def build_vocab(num_merges=1000, corpus=corpus):
        return orig(num_merges, corpus)

    clip_bpe.build_vocab = build_vocab  # write_tokenizer_folder calls build_vocab(num_merges)
    try:
        n = clip_bpe.write_tokenizer_folder(OUT, num_merges=100000)
    finally:
        clip_bpe.build_vocab = orig
    tok = clip_bpe.ClipTokenizer(OUT)
    for w in scene_words():
        assert len(tok.content_ids(w)) == 1, w
    p = os.path.join(OUT, "tokenizer_config.json")
    import json
    cfg = json.load(open(p))
    cfg["name_or_path"] = "fisedit/default"
    with open(p, "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    return n


if __name__ == "__main__":
    n = build()
    tok = clip_bpe.ClipTokenizer(OUT)
    print("vocab size", n, tok("a red circle on the left on a white background")[0][:12])
