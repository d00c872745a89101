"""The autoencoder's ceiling on the checker: encode and decode ground-truth scenes (no diffusion) and score them.

    /usr/bin/python3 training/vae_ceiling.py --model models/default [--vae-pt runs/default/vae_ft.pt] [--n 400]

Whatever the UNet learns, an object the VAE's round trip draws as another shape is scored wrong; this is the
shape score's upper bound. Prints the checker's scores and shape accuracy by (shape, size class), and with
--json writes them. Scenes: scenes.random_spec(seed 7, full=True), the checker's own ground-truth set.
"""
import argparse
import collections
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402
import common  # noqa: E402
import scenes  # noqa: E402
import sd_torch  # noqa: E402  (tools/reference, on the path via common)


def load_vae(model_dir, vae_pt=None):
    """The folder's VAE, or a checkpoint {"model": state_dict, "config": cfg} (finetune_decoder.py, train_vae.py)."""
    if vae_pt:
        if not os.path.isfile(vae_pt):
            raise SystemExit(f"--vae-pt {vae_pt}: no such file")
        ck = common.load_pt(vae_pt)
        vae = sd_torch.AutoencoderKL(ck["config"])
        vae.load_state_dict(ck["model"])
        return vae.eval()
    cfg_path = os.path.join(model_dir, "vae", "config.json")
    if not os.path.isfile(cfg_path):
        raise SystemExit(f"--model {model_dir}: not a diffusers folder with a VAE (no vae/config.json)")
    cfg = json.load(open(cfg_path))
    vae = sd_torch.AutoencoderKL(cfg)
    common.load_folder_weights(vae, os.path.join(model_dir, "vae", "diffusion_pytorch_model.safetensors"))
    return vae.eval()


@torch.no_grad()
def round_trip(vae, imgs, batch=50):
    out = []
    for i in range(0, len(imgs), batch):
        x = torch.from_numpy(np.stack(imgs[i:i + batch])).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        y = vae.decode(vae.encode(x)[0])
        out += list(((y.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return out


def ceiling(vae, n=400, seed=7):
    rng = np.random.default_rng(seed)
    specs = [scenes.random_spec(rng, full=True) for _ in range(n)]
    imgs = [scenes.render(s) for s in specs]
    sc, res = checker.score(round_trip(vae, imgs), specs)
    by = collections.defaultdict(lambda: [0, 0])
    for s, r in zip(specs, res):
        for o, ro in zip(s["objects"], r["objects"]):
            k = f"{o['size']} {o['shape']}"
            by[k][0] += int(ro["shape"])
            by[k][1] += 1
    return sc, {k: {"right": v[0], "of": v[1]} for k, v in sorted(by.items())}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=os.path.join(common.REPO, "models", "default"))
    p.add_argument("--vae-pt", default=None)
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    torch.set_num_threads(2)
    sc, by = ceiling(load_vae(a.model, a.vae_pt), a.n)
    print("round trip:", {k: round(v, 3) for k, v in sc.items()})
    for k, v in by.items():
        print(f"  {k:16s} {v['right']:3d} / {v['of']:3d}")
    if a.json:
        common.write_json(a.json, {"model": a.model, "vae_pt": a.vae_pt, "n": a.n, "scores": sc, "shape_by_kind": by})
