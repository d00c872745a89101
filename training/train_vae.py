"""Stage 1: train the 64x64x3 <-> 32x32x4 AutoencoderKL on scenes, then set scaling_factor = 1/std(latents).

    nice -n 10 /usr/bin/python3 training/train_vae.py --run default --steps 700

Loss: L1 + MSE on the decode of a posterior sample z = mean + std*N(0,1), + 1e-5 * mean KL per latent
element (a tiny KL: in practice an autoencoder whose latents stay near unit scale and which tolerates small
latent noise, which the diffusion model's outputs have). Resumes from runs/<run>/vae_ckpt.pt; writes
runs/<run>/vae.pt (final weights + config with scaling_factor) and vae_loss.csv.
"""
import argparse
import math
import os

# torch's two intra-op threads each calling a 2-thread OpenBLAS oversubscribe the 2 cores: measured 1.3–1.6 s
# per UNet step (40 % system time) against 0.81–0.86 s with OpenBLAS single-threaded. Must precede import torch.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import time

import torch
import torch.nn.functional as F

import common
import scenes
from common import sd_torch

p = argparse.ArgumentParser()
p.add_argument("--run", default="default")
p.add_argument("--minutes", type=float, default=25.0, help="wall-clock cap")
p.add_argument("--steps", type=int, default=700, help="stop after this many steps (the usual end)")
p.add_argument("--batch", type=int, default=16)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--kl", type=float, default=1e-5)
p.add_argument("--init-from", default=None, help="start from a diffusers folder's vae/ (e.g. models/default)")
args = p.parse_args()

torch.set_num_threads(2)
common.np_seed_all(args.seed)
run = os.path.join(common.RUNS, args.run)
os.makedirs(run, exist_ok=True)
ckpt_path = os.path.join(run, "vae_ckpt.pt")
if os.path.exists(os.path.join(run, "vae.pt")):
    print("vae.pt exists: VAE stage done", flush=True)
    raise SystemExit(0)

cfg = dict(common.VAE_CONFIG)
vae = sd_torch.AutoencoderKL(cfg)
if args.init_from and not os.path.exists(ckpt_path):
    common.load_folder_weights(vae, os.path.join(args.init_from, "vae", "diffusion_pytorch_model.safetensors"))
    print("initialised from", args.init_from, flush=True)
opt = torch.optim.AdamW(vae.parameters(), lr=args.lr, weight_decay=0.0)
step, elapsed = 0, 0.0
if os.path.exists(ckpt_path):
    ck = torch.load(ckpt_path)
    vae.load_state_dict(ck["model"])
    opt.load_state_dict(ck["opt"])
    step, elapsed = ck["step"], ck["elapsed"]
    print(f"resumed at step {step}, {elapsed / 60:.1f} min", flush=True)
print("vae params", sum(p.numel() for p in vae.parameters()), flush=True)

budget = args.minutes * 60
log = open(os.path.join(run, "vae_loss.csv"), "a")
if step == 0:
    log.write("step,elapsed_s,loss,l1,kl\n")
t_last_ck = time.time()
t0 = time.time() - elapsed
while time.time() - t0 < budget and step < args.steps:
    frac = max((time.time() - t0) / budget, step / args.steps)
    lr = args.lr * min(1.0, (step + 1) / 50) * (0.5 * (1 + math.cos(math.pi * frac)) * 0.9 + 0.1)
    for g in opt.param_groups:
        g["lr"] = lr
    imgs, _ = scenes.train_batch(args.seed + 1000, step, args.batch)
    x = common.to_tensor(imgs)
    mean, logvar = vae.encode(x)
    z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
    y = vae.decode(z)
    l1 = (y - x).abs().mean()
    mse = F.mse_loss(y, x)
    kl = 0.5 * (mean ** 2 + logvar.exp() - 1 - logvar).mean()
    loss = l1 + mse + args.kl * kl
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
    opt.step()
    step += 1
    if step % 10 == 0:
        el = time.time() - t0
        log.write(f"{step},{el:.1f},{loss.item():.5f},{l1.item():.5f},{kl.item():.4f}\n")
        log.flush()
        print(f"step {step} {el:.0f}s ({el / step:.2f} s/step) loss {loss.item():.4f} l1 {l1.item():.4f} "
              f"kl {kl.item():.3f} lr {lr:.2e}", flush=True)
    if time.time() - t_last_ck > 180:
        common.save_atomic({"model": vae.state_dict(), "opt": opt.state_dict(), "step": step,
                            "elapsed": time.time() - t0}, ckpt_path)
        t_last_ck = time.time()

# scaling_factor = 1 / std of the latent means over 1024 scenes (SD's recipe; the latent mean is not removed).
vae.eval()
with torch.no_grad():
    zs, errs = [], []
    for i in range(32):
        imgs, _ = scenes.train_batch(args.seed + 2000, i, 32)
        x = common.to_tensor(imgs)
        m, _ = vae.encode(x)
        zs.append(m)
        errs.append((vae.decode(m) - x).abs().mean().item())
    z = torch.cat(zs)
std = z.std().item()
cfg["scaling_factor"] = round(1.0 / std, 5)
print(f"latent mean {z.mean().item():.4f} std {std:.4f} per-channel mean {z.mean(dim=(0, 2, 3)).tolist()} "
      f"std {z.std(dim=(0, 2, 3)).tolist()} -> scaling_factor {cfg['scaling_factor']}; recon L1 (0..2 scale) "
      f"{sum(errs) / len(errs):.4f}", flush=True)
common.save_atomic({"model": vae.state_dict(), "config": cfg, "step": step}, os.path.join(run, "vae.pt"))
print("wrote", os.path.join(run, "vae.pt"), flush=True)
