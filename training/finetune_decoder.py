"""Fine-tune the VAE decoder for crisp object edges; the encoder stays frozen, so the latents the UNet learnt
(and the UNet itself) stay valid.

    /usr/bin/python3 training/finetune_decoder.py --model models/default --out /tmp/vae_ft.pt --minutes 20 \
        [--export-to /tmp/model-vae]

Why: the round trip alone (vae_ceiling.py) scores shape 0.89 — small and medium triangles come back with
their corners filled, so their bounding-box fill reads as a circle. Plain L1 + MSE spends almost all of its
weight on flat interiors; here pixels on an object's edge in the target (its 3x3 neighbourhood is not one
colour) weigh 1 + --edge-weight. Latents get the same small noise as train.py's decoder steps, so the decoder
also tolerates the UNet's imprecision. Writes {"model", "config"} to --out every --save-min and at the end;
--export-to writes a copy of --model with this VAE (F32).
"""
import argparse
import os
import shutil
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import export  # noqa: E402
import scene_batch  # noqa: E402
from vae_ceiling import ceiling, load_vae  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=os.path.join(common.REPO, "models", "default"))
    p.add_argument("--vae-pt", default=None, help="resume from this checkpoint instead of the folder's VAE")
    p.add_argument("--out", required=True)
    p.add_argument("--export-to", default=None)
    p.add_argument("--minutes", type=float, default=20.0)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--edge-weight", type=float, default=4.0)
    p.add_argument("--latent-noise", type=float, default=0.05, help="x 1/scaling_factor, as train.py's decoder steps")
    p.add_argument("--save-min", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=5000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--eval-n", type=int, default=400, help="ground-truth scenes for the ceiling at start and end")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dev = torch.device("cpu")
    vae = load_vae(a.model, a.vae_pt)
    cfg = vae.config
    sf = cfg["scaling_factor"]
    for n_, p_ in vae.named_parameters():
        p_.requires_grad_(n_.startswith("decoder.") or n_.startswith("post_quant_conv."))
    params = [p_ for p_ in vae.parameters() if p_.requires_grad]
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.0)

    sc, _ = ceiling(vae, a.eval_n)
    print(f"start: round trip {sc}", flush=True)

    def save():
        tmp = a.out + ".tmp"
        torch.save({"model": vae.state_dict(), "config": cfg}, tmp)
        os.replace(tmp, a.out)

    t0 = time.time()
    last_save = t0
    step = 0
    vae.train()
    while True:
        if a.steps is not None and step >= a.steps:
            break
        if a.steps is None and time.time() - t0 > a.minutes * 60:
            break
        specs = scene_batch.train_specs(a.seed, step, a.batch)
        x = scene_batch.to_model_input(scene_batch.render(scene_batch.pack(specs), dev))
        loss = common.decoder_fit_step(vae, opt, params, x, sf, a.latent_noise, a.edge_weight)
        step += 1
        if step % 25 == 0:
            print(f"step {step} {time.time() - t0:.0f}s loss {loss.item():.4f}", flush=True)
        if time.time() - last_save > a.save_min * 60:
            save()
            last_save = time.time()
    vae.eval()
    save()
    sc, by = ceiling(vae, a.eval_n)
    print(f"end ({step} steps, {(time.time() - t0) / 60:.1f} min): round trip {sc}", flush=True)
    for k, v in by.items():
        print(f"  {k:16s} {v['right']:3d} / {v['of']:3d}", flush=True)
    if a.export_to:
        if os.path.abspath(a.export_to) != os.path.abspath(a.model):
            shutil.copytree(a.model, a.export_to, dirs_exist_ok=True)
        d = os.path.join(a.export_to, "vae")
        export.write_safetensors(os.path.join(d, "diffusion_pytorch_model.safetensors"), vae.state_dict(), "F32")
        common.write_json(os.path.join(d, "config.json"), cfg)
        print("exported to", a.export_to, flush=True)


if __name__ == "__main__":
    main()
