"""Recreate runs/<run>/vae.pt from a diffusers folder's vae/ (e.g. models/default) so that train.py can resume
on a new machine without retraining the VAE: retraining would move the latent space the UNet has learnt.

    /usr/bin/python3 training/vae_from_folder.py --from models/default --run default
"""
import argparse
import json
import os

import torch

import common
import sd_torch

p = argparse.ArgumentParser()
p.add_argument("--from", dest="src", required=True, help="diffusers folder with vae/config.json + weights")
p.add_argument("--run", default="default")
a = p.parse_args()
cfg = json.load(open(os.path.join(a.src, "vae", "config.json")))
vae = sd_torch.AutoencoderKL(cfg)
common.load_folder_weights(vae, os.path.join(a.src, "vae", "diffusion_pytorch_model.safetensors"))
run = os.path.join(common.RUNS, a.run)
os.makedirs(run, exist_ok=True)
out = os.path.join(run, "vae.pt")
if os.path.exists(out):
    raise SystemExit(f"{out} exists: refusing to overwrite a trained VAE")
common.save_atomic({"model": vae.state_dict(), "config": cfg, "step": -1, "from": os.path.abspath(a.src)}, out)
print("wrote", out, "scaling_factor", cfg["scaling_factor"])
