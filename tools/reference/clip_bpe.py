"""Independent Python CLIP BPE tokenizer and a small CLIP-format vocab builder.

Written from shared/reference/sd-architecture.md §4 (the transformers slow CLIPTokenizer path
*without* ftfy), not copied from transformers. Dev-time reference only: the product's tokenizer is
TypeScript (src/engine/tokenizer/) and is tested against tokens.json goldens written with this file.

Tokenizer steps (§4):
  1. clean: drop NUL, U+FFFD and control chars (category C*, except \\t\\n\\r); every whitespace char
     becomes a space; spaces around CJK ideographs; NFC; split on whitespace; lower-case.
  2. pre-tokenise with the CLIP regex (IGNORECASE); digits are one token each.
  3. map each token's UTF-8 bytes through bytes_to_unicode.
  4. BPE with "</w>" glued to the last symbol; merge the lowest-rank adjacent pair until none is ranked.
  5. ids from vocab.json; [BOS] + ids[:75] + [EOS], padded with PAD (= EOS) to 77.

Vocab builder: ids 0-255 byte symbols, 256-511 the same + "</w>", then merges learned by plain BPE
training over a built-in English corpus, then <|startoftext|>, <|endoftext|> as the last two ids
(the layout of OpenAI's vocab, §4.5, at a small size).
"""
import json
import os
import unicodedata

import regex

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
MAX_LENGTH = 77

# §4.2: the pre-tokenisation pattern, applied to already lower-cased text.
PAT = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)


def bytes_to_unicode():
    """§4.3: printable bytes map to themselves, the other 68 (0-32, 127-160, 173) to chr(256+n) in order.
    Insertion order is OpenAI's (printable bytes first, then the 68 others), which is the order of
    vocab ids 0-255: id 0 is "!", id 188 is "Ā" (byte 0)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    table = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    return table


BYTE_ENCODER = bytes_to_unicode()


# ----------------------------------------------------------------------------------------------
# 1. cleaning (transformers BasicTokenizer(do_lower_case, strip_accents=False, do_split_on_punc=False))
# ----------------------------------------------------------------------------------------------
def _is_whitespace(ch):
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def _is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def clean_text(text):
    """Returns the lower-cased, whitespace-collapsed string the regex runs on."""
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or _is_control(ch):
            continue
        if _is_whitespace(ch):
            out.append(" ")
        elif _is_cjk(cp):
            out.append(" " + ch + " ")
        else:
            out.append(ch)
    text = unicodedata.normalize("NFC", "".join(out))
    return " ".join(w.lower() for w in text.split())


# ----------------------------------------------------------------------------------------------
# 2-5. tokenizer
# ----------------------------------------------------------------------------------------------
def _pairs(word):
    return {(word[i], word[i + 1]) for i in range(len(word) - 1)}


class ClipTokenizer:
    def __init__(self, folder):
        with open(os.path.join(folder, "vocab.json"), encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(os.path.join(folder, "merges.txt"), encoding="utf-8") as f:
            lines = f.read().strip().split("\n")
        # Line 0 is "#version: 0.2"; rank = line order after it.
        merges = [tuple(l.split()) for l in lines[1:] if l]
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.bos = self.encoder[BOS]
        self.eos = self.encoder[EOS]
        self.pad = self.eos  # tokenizer_config pad_token = <|endoftext|>
        self.unk = self.eos
        self.cache = {BOS: BOS, EOS: EOS}

    def bpe(self, token):
        """token: byte-mapped string -> space-joined BPE pieces."""
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = _pairs(word)
        if not pairs:
            return token + "</w>"
        while True:
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            first, second = best
            merged = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
            if len(word) == 1:
                break
            pairs = _pairs(word)
        out = " ".join(word)
        self.cache[token] = out
        return out

    def content_ids(self, text):
        ids = []
        for tok in PAT.findall(clean_text(text)):
            mapped = "".join(BYTE_ENCODER[b] for b in tok.encode("utf-8"))
            for piece in self.bpe(mapped).split(" "):
                ids.append(self.encoder.get(piece, self.unk))
        return ids

    def __call__(self, text, max_length=MAX_LENGTH):
        """-> (ids [max_length], truncated). SD's padding="max_length", truncation=True (§4.6)."""
        content = self.content_ids(text)
        keep = max_length - 2
        ids = [self.bos] + content[:keep] + [self.eos]
        ids += [self.pad] * (max_length - len(ids))
        return ids, len(content) > keep


# ----------------------------------------------------------------------------------------------
# vocab builder
# ----------------------------------------------------------------------------------------------
CORPUS = """
a photo of a red cat sitting on a blue chair, high quality, 4k, detailed.
a painting of a green dog in the park; oil on canvas by an old master.
portrait of a woman with yellow hair, studio lighting, 85mm lens, f/1.8, bokeh!
landscape photograph of mountains at sunset, golden hour, wide angle, sharp focus.
colours: red orange yellow green blue indigo violet purple pink brown black white grey gray
silver gold beige cyan magenta teal turquoise navy maroon olive lime crimson scarlet amber
shapes: circle square triangle rectangle hexagon pentagon octagon oval sphere cube cone cylinder
pyramid star heart diamond ring line curve spiral arrow cross dot grid stripe pattern
positions: left right top bottom center middle above below behind front under over beside near far
inside outside between corner edge upper lower background foreground
photography: camera lens aperture shutter exposure iso focus depth field bokeh blur blurry sharp
portrait landscape macro zoom telephoto wide angle tripod flash studio natural light lighting
shadow shadows highlight contrast saturation vibrant muted cinematic film grain analog digital
raw jpeg resolution pixel pixels composition frame framing rule thirds symmetry reflection
night day morning evening sunrise sunset dusk dawn cloudy sunny rainy foggy misty snowy stormy
the a an of on in at to with by for from and or but not is are was were be been being this that
these those it its he she they we you i my your our their his her them us me
cat cats dog dogs bird birds horse horses fish cow sheep lion tiger bear wolf fox rabbit mouse
tree trees flower flowers grass forest river lake ocean sea beach sand rock rocks mountain hill
house houses city street road car cars bike boat ship train plane sky cloud clouds sun moon star
man woman boy girl child children person people face eyes hair hand hands smile smiling
table chair bed lamp window door wall floor roof kitchen room garden bridge tower castle church
apple banana orange cherry grape lemon bread cake coffee tea water wine cup glass bottle plate
small large big tiny huge tall short long round flat bright dark light heavy soft hard old new
young beautiful ugly happy sad calm wild quiet loud warm cold hot wet dry clean dirty empty full
highly detailed intricate elegant realistic photorealistic hyperrealistic artstation concept art
illustration drawing sketch watercolor watercolour painting oil acrylic pencil charcoal ink
render rendering unreal engine octane 3d 2d anime cartoon comic style trending masterpiece best
quality low worst jpeg artifacts deformed distorted disfigured bad anatomy extra limbs ugly
standing sitting walking running jumping flying swimming sleeping eating reading looking
wearing holding playing dancing singing laughing crying thinking watching waiting
0 1 2 3 4 5 6 7 8 9 10 20 100 1000 2024 1920s 80s 35mm 50mm 85mm 8k 4k hd uhd
. , ; : ! ? ' " ( ) [ ] { } - _ + = * / \\ | @ # $ % ^ & ~ ` < > ... !! ?? -- ::
it's don't can't i'm you're we've they'll she'd he's that's what's
one two three four five six seven eight nine ten hundred thousand first second third
north south east west spring summer autumn fall winter weather wind rain snow storm
glowing shiny matte glossy metallic wooden stone glass plastic paper fabric leather velvet
"""


def build_vocab(num_merges=1000, corpus=CORPUS):
    """Plain BPE training (most frequent adjacent pair, ties broken by the pair's string order).
    A pair whose concatenation already exists is never taken, so every merge adds one new vocab
    entry and len(vocab) == 512 + len(merges) + 2, as in OpenAI's layout.
    Returns (vocab dict token->id, merges list of (a, b))."""
    freqs = {}
    for tok in PAT.findall(clean_text(corpus)):
        mapped = "".join(BYTE_ENCODER[b] for b in tok.encode("utf-8"))
        word = tuple(mapped[:-1]) + (mapped[-1] + "</w>",)
        freqs[word] = freqs.get(word, 0) + 1

    symbols = list(BYTE_ENCODER.values())  # OpenAI's order
    vocab_list = symbols + [s + "</w>" for s in symbols]
    known = set(vocab_list)
    merges = []
    words = dict(freqs)
    while len(merges) < num_merges:
        counts = {}
        for word, f in words.items():
            for i in range(len(word) - 1):
                p = (word[i], word[i + 1])
                counts[p] = counts.get(p, 0) + f
        cands = [(-c, p) for p, c in counts.items() if p[0] + p[1] not in known]
        if not cands:
            break
        _, best = min(cands)
        a, b = best
        merges.append(best)
        known.add(a + b)
        vocab_list.append(a + b)
        new_words = {}
        for word, f in words.items():
            out = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == a and word[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            new_words[tuple(out)] = new_words.get(tuple(out), 0) + f
        words = new_words
    vocab_list += [BOS, EOS]
    vocab = {t: i for i, t in enumerate(vocab_list)}
    assert len(vocab) == len(vocab_list), "duplicate vocab entries"
    return vocab, merges


def write_tokenizer_folder(folder, num_merges=1000):
    """Writes vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json. Returns vocab size."""
    os.makedirs(folder, exist_ok=True)
    vocab, merges = build_vocab(num_merges)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    cfg = {
        "add_prefix_space": False,
        "bos_token": BOS,
        "do_lower_case": True,
        "eos_token": EOS,
        "errors": "replace",
        "model_max_length": MAX_LENGTH,
        "name_or_path": "fisedit/fixture",
        "pad_token": EOS,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": EOS,
    }
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    special = {"bos_token": BOS, "eos_token": EOS, "pad_token": EOS, "unk_token": EOS}
    with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
        json.dump(special, f, indent=2)
        f.write("\n")
    return len(vocab)
