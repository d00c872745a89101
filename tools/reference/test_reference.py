"""Checks the Python references against known facts (sd-architecture.md). Run:

    cd /work/main && /usr/bin/python3 tools/reference/test_reference.py

Exits non-zero on the first failed check. ~10 s.
"""
import os
import re
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import clip_bpe  # noqa: E402
import schedulers  # noqa: E402
import sd_torch  # noqa: E402

KEYS = os.path.join(HERE, "..", "..", "..", "shared", "reference", "sd15-keys")
if not os.path.isdir(KEYS):
    KEYS = "/work/shared/reference/sd15-keys"


def check_tokenizer():
    table = clip_bpe.bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[0] == "Ā" and table[127] == chr(289) and table[173] == chr(323)
    assert table[ord("a")] == "a" and table["é".encode()[0]] == "Ã"

    with tempfile.TemporaryDirectory() as d:
        n = clip_bpe.write_tokenizer_folder(d)
        with open(os.path.join(d, "merges.txt"), encoding="utf-8") as f:
            lines = f.read().split("\n")
        assert lines[0] == "#version: 0.2"
        n_merges = len([l for l in lines[1:] if l])
        assert n == 256 + 256 + n_merges + 2, (n, n_merges)
        tok = clip_bpe.ClipTokenizer(d)
        assert (tok.bos, tok.eos, tok.pad) == (n - 2, n - 1, n - 1)
        assert tok.encoder["!"] == 0 and tok.encoder["!</w>"] == 256 and tok.encoder["Ā"] == 188  # OpenAI order

        ids, truncated = tok("")
        assert ids == [tok.bos] + [tok.eos] * 76 and not truncated  # §4.6
        # Cleaning: case, whitespace runs, control chars and NFC do not change the ids.
        assert tok("A  Red\tCAT\n")[0] == tok("a red cat")[0]
        assert tok("ca\u200bt\x07")[0] == tok("cat")[0]
        assert tok("cafe\u0301")[0] == tok("café")[0]
        # Digits are one token each; punctuation runs are one pre-token.
        assert len(tok.content_ids("2024")) == 4
        assert clip_bpe.PAT.findall("it's 12 red!!") == ["it", "'s", "1", "2", "red", "!!"]
        # Truncation keeps 75 content tokens.
        assert tok(" ".join(["cat"] * 75)) == ([tok.bos] + [tok.encoder["cat</w>"]] * 75 + [tok.eos], False)
        ids, truncated = tok(" ".join(["cat"] * 80))
        assert truncated and ids[-1] == tok.eos and ids[1:76] == [tok.encoder["cat</w>"]] * 75
        # BPE: every merge result is a vocab entry; unseen words fall back to byte symbols (no unk).
        pieces = tok.bpe("zqxjkv")
        assert all(p in tok.encoder for p in pieces.split(" ")) and pieces.endswith("</w>")
        assert tok.eos not in tok.content_ids("zqxjkv \U0001F642")
    print("tokenizer ok")


def key_shapes(tsv):
    out = {}
    with open(tsv) as f:
        for line in f:
            if line.strip():
                name, shape = line.rstrip("\n").split("\t")
                out[name] = [int(x) for x in re.findall(r"\d+", shape)]
    return out


def check_sd15_keys():
    """sd_torch at SD 1.5 config: names and shapes equal the [K] lists (built without init, fast)."""
    saved = {}
    for cls in (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Embedding, torch.nn.LayerNorm, torch.nn.GroupNorm):
        saved[cls] = cls.reset_parameters
        cls.reset_parameters = lambda self: None
    try:
        from export_unet_onnx import SD15_UNET_CONFIG
        unet = sd_torch.UNet2DConditionModel(SD15_UNET_CONFIG)
        vae = sd_torch.AutoencoderKL({"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "norm_num_groups": 32})
        te = sd_torch.CLIPTextModel({"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                                     "num_attention_heads": 12, "max_position_embeddings": 77, "hidden_act": "quick_gelu"})
    finally:
        for cls, fn in saved.items():
            cls.reset_parameters = fn
    totals = {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}
    for name, model in (("unet", unet), ("vae", vae), ("text_encoder", te)):
        want = key_shapes(os.path.join(KEYS, f"{name}.tsv"))
        got = {k: list(v.shape) for k, v in model.state_dict().items()}
        if name == "text_encoder":
            want = {k: v for k, v in want.items() if k != "text_model.embeddings.position_ids"}
        assert got == want, (name, set(got) ^ set(want))
        assert sum(v.numel() for v in model.state_dict().values()) == totals[name], name
    print("sd15 key lists ok")


def main():
    torch.set_num_threads(2)
    schedulers.self_check()
    print("schedulers ok")
    check_tokenizer()
    check_sd15_keys()


if __name__ == "__main__":
    main()
