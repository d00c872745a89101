"""Turn the weights a GPU run wrote to $OUT (weights_<run>.part<i>of<n>: EMA UNet + text encoder, F32, split to
fit the transfer limit) back into a diffusers-layout folder, with the VAE of an existing folder (the run trained
on that VAE's latents; run.sh does no decoder fine-tuning).

    /usr/bin/python3 training/gpu/import_weights.py --parts <files_at>/weights_v2 --vae-from models/default --out /tmp/model-v2
"""
import argparse
import io
import json
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402
import export  # noqa: E402
import safetensors_io  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--parts", required=True, help="path prefix of the parts, e.g. OUT/weights_v2")
p.add_argument("--vae-from", default=os.path.join(common.REPO, "models", "default"))
p.add_argument("--out", required=True, help="diffusers folder to write (not models/default unless you mean it)")
a = p.parse_args()

folder, base = os.path.split(os.path.abspath(a.parts))
found = {}
for f in os.listdir(folder):
    m = re.fullmatch(re.escape(base) + r"\.part(\d+)of(\d+)", f)
    if m:
        found[int(m.group(1))] = (int(m.group(2)), os.path.join(folder, f))
if not found:
    raise SystemExit(f"no {base}.part<i>of<n> files in {folder}")
n = {v[0] for v in found.values()}
if len(n) != 1 or sorted(found) != list(range(n.pop())):
    raise SystemExit(f"incomplete or mixed parts in {folder}: {sorted(os.path.basename(v[1]) for v in found.values())}")
data = b"".join(open(found[i][1], "rb").read() for i in sorted(found))
ck = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
vae_cfg = json.load(open(os.path.join(a.vae_from, "vae", "config.json")))
if vae_cfg["scaling_factor"] != ck["vae_config"]["scaling_factor"]:
    raise SystemExit(f"{a.vae_from} has scaling_factor {vae_cfg['scaling_factor']}, the run trained with "
                     f"{ck['vae_config']['scaling_factor']}: not the VAE these weights were trained on")
vae_sd = {k: v.float() for k, v in safetensors_io.load_file(
    os.path.join(a.vae_from, "vae", "diffusion_pytorch_model.safetensors")).items()}
info = export.export_weights(ck["unet"], ck["unet_config"], ck["text_encoder"], ck["text_config"], vae_sd, vae_cfg, a.out)
print(f"wrote {a.out}: arch {ck['arch']}, run {ck['run']}, step {ck['step']}, {info}")
