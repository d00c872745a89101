"""Stage 2: train the UNet + CLIP text encoder on VAE latents of scenes (needs runs/<run>/vae.pt from train_vae.py
or vae_from_folder.py). One loop for the 2-core CPU and for a CUDA GPU:

    nohup nice -n 10 /usr/bin/python3 training/train.py --run default --stop-at 17:25 \\
        >> training/runs/default/train.log 2>&1 &
    python3 training/train.py --device cuda --batch 256 --seconds 330 --arch v2 --out $OUT ...   (training/gpu/run.sh)

Re-running the same command resumes from runs/<run>/ckpt.pt (model, EMA, optimiser, step, RNG).
Objective: ε-prediction with the SD 1.5 scaled_linear schedule (β 0.00085..0.012, 1000 steps) and offset noise
(noise += 0.1·N(0,1) per sample and channel), which lets the model move the mean colour of a flat background;
the engine samples with plain N(0,1) noise and needs no change. 10% of captions are dropped to "" for CFG.
Batches: scene specs drawn per (seed, step) in --workers processes, rendered on the device (scene_batch.py).
Every --ckpt-min minutes: checkpoint, export of the EMA weights (--export-to), loss curve copy.
Every --eval-min minutes (or --eval-every-s seconds): --eval-n held-out captions sampled with the EMA weights
(DPM-Solver++ 2M, 20 steps, CFG 4.5), scored by checker.py, appended to --curve.
--seconds N: stop after N s of this launch (checkpoint + export + eval), lr cosine to 10% over the N s.
--out DIR: also write the EMA weights there (split into <= 15 MiB files, gpu/import_weights.py joins them).
"""
import argparse
import datetime
import json
import math
import os

# torch's two intra-op threads each calling a 2-thread OpenBLAS oversubscribe the 2 cores: measured 1.3–1.6 s
# per UNet step (40 % system time) against 0.81–0.86 s with OpenBLAS single-threaded. Must precede import torch.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import contextlib
import io
import itertools
import shutil
import time

import numpy as np
import torch

import checker
import common
import export
import scene_batch
from common import sd_torch

p = argparse.ArgumentParser()
p.add_argument("--run", default="default")
p.add_argument("--arch", choices=common.ARCHS, default="v1", help="v1: the shipped layout; v2: common.UNET_CONFIG_V2")
p.add_argument("--device", default="auto", help="cuda, cpu, or auto (cuda when available)")
p.add_argument("--batch", type=int, default=32)
p.add_argument("--workers", type=int, default=None, help="data worker processes (default 0 on CPU, 6 on CUDA)")
p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
p.add_argument("--lr", type=float, default=8e-4)
p.add_argument("--warmup", type=int, default=200)
p.add_argument("--ema", type=float, default=0.999)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--p-uncond", type=float, default=0.1)
p.add_argument("--offset-noise", type=float, default=0.1)
p.add_argument("--ckpt-min", type=float, default=5.0)
p.add_argument("--eval-min", type=float, default=20.0)
p.add_argument("--eval-every-s", type=float, default=None, help="evaluation interval in seconds (overrides --eval-min)")
p.add_argument("--eval-at-start", action="store_true", help="also evaluate before the first step (the curve's t=0)")
p.add_argument("--eval-n", type=int, default=30, help="held-out captions per evaluation (100: all; 30: every 3rd)")
p.add_argument("--guidance", type=float, default=4.5)
p.add_argument("--stop-at", default=None, help="UTC HH:MM: stop (checkpoint + export) then; lr decays over the last --decay-min")
p.add_argument("--decay-min", type=float, default=20.0)
p.add_argument("--seconds", type=float, default=None,
               help="stop after this many seconds of this launch; the lr decays (cosine to 10%%) over all of them")
p.add_argument("--bf16", choices=["auto", "on", "off"], default="auto", help="bf16 autocast (auto: on for CUDA)")
p.add_argument("--no-export", action="store_true")
p.add_argument("--export-to", default=os.path.join(common.REPO, "models", "default"))
p.add_argument("--curve", default=os.path.join(common.HERE, "eval_curve.csv"), help="held-out curve CSV ('' = none)")
p.add_argument("--loss-curve", default=os.path.join(common.HERE, "loss_curve.csv"), help="loss curve copy ('' = none)")
p.add_argument("--out", default=None, help="directory for the transferable EMA weights (e.g. the GPU machine's $OUT)")
p.add_argument("--dec-every", type=int, default=4, help="one VAE-decoder fine-tuning step every N UNet steps (0: off)")
p.add_argument("--dec-steps", type=int, default=1500, help="total decoder fine-tuning steps")
p.add_argument("--dec-batch", type=int, default=8)
p.add_argument("--dec-lr", type=float, default=3e-4)
p.add_argument("--min-snr", type=float, default=5.0,
               help="Min-SNR-γ loss weight min(SNR, γ)/SNR (Hang et al. 2023): stops the nearly clean steps, which "
                    "teach little about layout and colour, from dominating the gradient; 0 turns it off")
p.add_argument("--layout-weight", type=float, default=0.0,
               help="also weight each sample's loss by min(1/alpha_bar_t, this) (0: off). The epsilon loss at high t, "
                    "where sampling decides the layout, is small whatever the caption says (measured: 'left' and "
                    "'right' captions of the same scene differ by ~1 %% there), so placement learns slowly; 1/alpha_bar "
                    "is what a v-prediction loss puts on those steps")
p.add_argument("--mirror-pairs", action="store_true",
               help="half of each batch is the other half mirrored left-right with the caption redone (scene_batch.py)")
p.add_argument("--init-from", default=None,
               help="with no checkpoint yet: start UNet, text encoder and their EMA from a diffusers folder "
                    "(e.g. models/default, the committed resume point)")
args = p.parse_args()

t_launch = time.time()
dev = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                   "cpu" if args.device == "auto" else args.device)
if dev.type == "cuda" and not torch.cuda.is_available():
    raise SystemExit("--device cuda: no CUDA device here")
cuda = dev.type == "cuda"
use_bf16 = args.bf16 == "on" or (args.bf16 == "auto" and cuda)
workers = args.workers if args.workers is not None else (6 if cuda else 0)
torch.set_num_threads(args.threads)
if cuda:
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    print("fused attention:", common.use_fused_attention(), flush=True)
common.np_seed_all(args.seed)
run = os.path.join(common.RUNS, args.run)
os.makedirs(run, exist_ok=True)
ckpt_path = os.path.join(run, "ckpt.pt")
vae, vae_cfg = common.load_vae(run)
vae.to(dev)
sf = vae_cfg["scaling_factor"]
# The encoder (and so the latent space the UNet learns) is frozen; the decoder keeps training on the side
# (decoder fine-tuning), which improves reconstructions without invalidating the UNet.
for n_, p_ in vae.named_parameters():
    p_.requires_grad_(n_.startswith("decoder.") or n_.startswith("post_quant_conv."))
dec_params = [p_ for p_ in vae.parameters() if p_.requires_grad]
dec_opt = torch.optim.AdamW(dec_params, lr=args.dec_lr, weight_decay=0.0)
dec_step = 0
tok = common.Tokenizer()
unet_cfg = common.unet_config(args.arch)
text_cfg = common.text_config(tok.vocab_size, args.arch)
unet = sd_torch.UNet2DConditionModel(unet_cfg)
te = sd_torch.CLIPTextModel(text_cfg)
ema_unet, ema_te = common.clone(unet), common.clone(te)

step, elapsed = 0, 0.0
ck = None
if args.init_from and not os.path.exists(ckpt_path):
    for m_ in (unet, ema_unet):
        common.load_folder_weights(m_, os.path.join(args.init_from, "unet", "diffusion_pytorch_model.safetensors"))
    for m_ in (te, ema_te):
        common.load_folder_weights(m_, os.path.join(args.init_from, "text_encoder", "model.safetensors"))
    print("initialised UNet and text encoder from", args.init_from, flush=True)
    # Continue the committed curve: step numbers (and so the step-indexed batches) pick up where the run that
    # produced those weights stopped, instead of restarting at 0 and overwriting its loss history.
    prev_curve = os.path.join(common.HERE, "loss_curve.csv")
    if os.path.exists(prev_curve):
        last = open(prev_curve).read().strip().splitlines()[-1].split(",")
        if last[0].isdigit():
            step, elapsed = int(last[0]), float(last[1])
            shutil.copyfile(prev_curve, os.path.join(run, "loss.csv"))
            print(f"continuing the committed loss curve at step {step} ({elapsed / 60:.1f} min)", flush=True)
if os.path.exists(ckpt_path):
    ck = common.load_pt(ckpt_path)
    unet.load_state_dict(ck["model"]["unet"])
    te.load_state_dict(ck["model"]["text_encoder"])
    ema_unet.load_state_dict(ck["ema"]["unet"])
    ema_te.load_state_dict(ck["ema"]["text_encoder"])
    torch.set_rng_state(ck["rng"])
    if "vae" in ck:
        vae.load_state_dict(ck["vae"])
        dec_opt.load_state_dict(ck["dec_opt"])
        for g_ in dec_opt.param_groups:  # the command line's decoder lr wins over the saved one
            g_["lr"] = args.dec_lr
        dec_step = ck["dec_step"]
    step, elapsed = ck["step"], ck["elapsed"]
    print(f"resumed from {ckpt_path} at step {step} ({elapsed / 60:.1f} min trained)", flush=True)
for m_ in (unet, te, ema_unet, ema_te):
    m_.to(dev)
params = list(unet.parameters()) + list(te.parameters())
opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
if ck is not None:
    opt.load_state_dict(ck["opt"])  # after .to(dev): the state follows the parameters' device
    del ck


def bf16_probe():
    """One tiny forward + backward under bf16 autocast; False (train in F32) if this torch/device refuses it
    (e.g. CPU autocast in older torch has no F32 GroupNorm) or returns non-finite values."""
    try:
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            out = unet(torch.randn(2, 4, 32, 32, device=dev), torch.tensor([1.0, 500.0], device=dev),
                       te(tok(["a red circle on the left", ""]).to(dev))).float()
        out.square().mean().backward()
        ok = bool(torch.isfinite(out).all())
    except Exception as e:  # noqa: BLE001
        print(f"bf16 autocast failed here ({type(e).__name__}: {e}); training in F32", flush=True)
        ok = False
    opt.zero_grad(set_to_none=True)
    return ok


if use_bf16:
    use_bf16 = bf16_probe()
start_step = step  # warm-up restarts with every launch (a fresh optimiser after --init-from needs it)
print(f"torch {torch.__version__}, numpy {np.__version__}; arch {args.arch} on {dev} (bf16 {use_bf16}, batch {args.batch}, {workers} data workers): "
      f"unet {sum(p.numel() for p in unet.parameters())} params, text encoder {sum(p.numel() for p in te.parameters())}, "
      f"vae scaling_factor {sf}", flush=True)
betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float32) ** 2
ac = torch.cumprod(1.0 - betas, 0).to(dev)

stop_ts = None
if args.stop_at:
    now = datetime.datetime.utcnow()
    hh, mm = map(int, args.stop_at.split(":"))
    stop = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
    if stop < now - datetime.timedelta(hours=1):
        stop += datetime.timedelta(days=1)
    stop_ts = stop.replace(tzinfo=datetime.timezone.utc).timestamp()
decay_s = args.decay_min * 60
if args.seconds is not None:
    stop_ts = t_launch + args.seconds if stop_ts is None else min(stop_ts, t_launch + args.seconds)
    decay_s = stop_ts - time.time()

heldout = json.load(open(os.path.join(common.HERE, "heldout_captions.json")))["scenes"]
eval_specs = heldout if args.eval_n >= len(heldout) else heldout[::3][: args.eval_n]  # a 1/2/3-object mix
empty_ids = tok([""])
autocast = (lambda: torch.autocast("cuda" if cuda else "cpu", dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext


def lr_at(step):
    lr = args.lr * min(1.0, (step - start_step + 1) / args.warmup)
    if stop_ts is not None:
        left = stop_ts - time.time()
        if left < decay_s:  # cosine to 10% over the last decay_s seconds
            frac = min(1.0, max(0.0, 1 - left / decay_s))
            lr *= 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))
    return lr


def write_transfer():
    """EMA UNet + text encoder (F32) with their configs into --out, split into files of <= 15 MiB
    (gpu/import_weights.py joins them and writes a diffusers folder with a VAE)."""
    buf = io.BytesIO()
    torch.save({"unet": {k: v.cpu() for k, v in ema_unet.state_dict().items()}, "unet_config": unet_cfg,
                "text_encoder": {k: v.cpu() for k, v in ema_te.state_dict().items()}, "text_config": text_cfg,
                "vae_config": vae_cfg, "step": step, "arch": args.arch, "run": args.run}, buf)
    data, part = buf.getvalue(), 15 << 20
    n = (len(data) + part - 1) // part
    for i in range(n):
        path = os.path.join(args.out, f"weights_{args.run}.part{i}of{n}")
        with open(path + ".tmp", "wb") as f:
            f.write(data[i * part:(i + 1) * part])
        os.replace(path + ".tmp", path)
    for old in os.listdir(args.out):  # parts of an earlier split count
        if old.startswith(f"weights_{args.run}.part") and not old.endswith(f"of{n}"):
            os.remove(os.path.join(args.out, old))


def save_ckpt():
    common.save_atomic({
        "model": {"unet": unet.state_dict(), "text_encoder": te.state_dict()},
        "ema": {"unet": ema_unet.state_dict(), "text_encoder": ema_te.state_dict()},
        "opt": opt.state_dict(), "rng": torch.get_rng_state(), "step": step, "elapsed": time.time() - t0,
        "vae": vae.state_dict(), "vae_config": vae_cfg, "dec_opt": dec_opt.state_dict(), "dec_step": dec_step,
        "unet_config": unet_cfg, "text_config": text_cfg, "args": vars(args),
    }, ckpt_path)
    if args.loss_curve:
        shutil.copyfile(os.path.join(run, "loss.csv"), args.loss_curve)
    if not args.no_export:
        info = export.export(ckpt_path, os.path.join(run, "vae.pt"), args.export_to)
        print(f"checkpoint + export at step {step} to {args.export_to}: {info}", flush=True)


@torch.no_grad()
def sample(unet_m, te_m, captions, guidance, steps=20, seed=0):
    """DPM-Solver++ 2M (tools/reference/schedulers.py, the engine's schedule) with CFG -> uint8 [B,64,64,3]."""
    import schedulers
    g = torch.Generator().manual_seed(seed)
    n = len(captions)
    # F32 like the engine (no autocast): the scores are the exported model's.
    ctx = te_m(torch.cat([tok(captions), empty_ids.expand(n, -1)]).to(dev))
    x = torch.randn(n, 4, 32, 32, generator=g).to(dev)
    sch = schedulers.DPMSolverPP2M()
    sch.set_timesteps(steps)
    for t in sch.timesteps:
        e = unet_m(torch.cat([x, x]), torch.full((2 * n,), float(t), device=dev), ctx)
        ec, eu = e.chunk(2)
        x = sch.step(eu + guidance * (ec - eu), t, x)
    return common.to_uint8(vae.decode(x / sf).cpu())


def evaluate():
    t = time.time()
    ema_unet.eval()
    ema_te.eval()
    imgs = sample(ema_unet, ema_te, [s["caption"] for s in eval_specs], args.guidance)
    sc, _ = checker.score(imgs, eval_specs)
    np.save(os.path.join(run, f"eval_{step:06d}.npy"), imgs)
    if args.curve:
        new = not os.path.exists(args.curve)
        with open(args.curve, "a") as f:
            if new:
                f.write("utc,step,train_min,guidance,colour_pos,shape,background,scene\n")
            f.write(f"{datetime.datetime.utcnow():%Y-%m-%dT%H:%M:%S},{step},{(time.time() - t0) / 60:.2f},"
                    f"{args.guidance},{sc['colour_pos']:.3f},{sc['shape']:.3f},{sc['background']:.3f},{sc['scene']:.3f}\n")
    print(f"eval at step {step} ({len(eval_specs)} captions): {sc} ({time.time() - t:.1f}s)", flush=True)
    if args.out:
        write_transfer()


def decoder_step():
    global dec_step
    specs = scene_batch.train_specs(args.seed + 3000, dec_step, args.dec_batch)
    dx = scene_batch.to_model_input(scene_batch.render(scene_batch.pack(specs), dev))
    dloss = common.decoder_fit_step(vae, dec_opt, dec_params, dx, sf)
    dec_step += 1
    if dec_step % 10 == 0:
        print(f"decoder step {dec_step} loss {dloss.item():.4f}", flush=True)


if args.out:
    os.makedirs(args.out, exist_ok=True)
loss_path = os.path.join(run, "loss.csv")
if not os.path.exists(loss_path):
    with open(loss_path, "w") as f:
        f.write("step,train_s,loss,lr\n")
lossf = open(loss_path, "a")
data = scene_batch.loader(args.seed, args.batch, tok, args.p_uncond, step, workers, args.mirror_pairs)
try:  # worker processes need shared memory; a machine without it still trains, in-process
    first = next(data)
except Exception as e:  # noqa: BLE001
    print(f"data workers failed ({type(e).__name__}: {e}); building batches in-process", flush=True)
    data = scene_batch.loader(args.seed, args.batch, tok, args.p_uncond, step, 0, args.mirror_pairs)
    first = next(data)
data = itertools.chain([first], data)
t0 = time.time() - elapsed
if args.eval_at_start:
    evaluate()
eval_s = args.eval_every_s if args.eval_every_s is not None else args.eval_min * 60
t_ck = t_eval = time.time()
acc = torch.zeros((), device=dev)
nacc = 0
unet.train()
te.train()
while True:
    if stop_ts is not None and time.time() >= stop_ts:
        break
    lr = lr_at(step)
    for gr in opt.param_groups:
        gr["lr"] = lr
    item = next(data)
    assert item["step"] == step, (item["step"], step)
    with torch.no_grad():
        imgs = scene_batch.to_model_input(scene_batch.render(item["packed"], dev))
        z = vae.encode(imgs)[0] * sf
    ids = item["ids"].to(dev, non_blocking=True)
    b = z.shape[0]
    noise = torch.randn_like(z) + args.offset_noise * torch.randn(b, z.shape[1], 1, 1, device=dev)
    t = torch.randint(0, 1000, (b,), device=dev)
    a = ac[t][:, None, None, None]
    x = a.sqrt() * z + (1 - a).sqrt() * noise
    with autocast():
        pred = unet(x, t.float(), te(ids)).float()
    if args.min_snr > 0:
        snr = (a / (1 - a)).flatten()
        wgt = torch.clamp(snr, max=args.min_snr) / snr
    else:
        wgt = torch.ones(b, device=dev)
    if args.layout_weight > 0:
        wgt = wgt * torch.clamp(1 / a.flatten(), max=args.layout_weight)
    loss = (wgt * ((pred - noise) ** 2).mean(dim=(1, 2, 3))).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    step += 1
    decay = min(args.ema, (1 + step) / (10 + step))
    common.ema_update(ema_unet, unet, decay)
    common.ema_update(ema_te, te, decay)
    acc += loss.detach()
    nacc += 1
    if step % 10 == 0:  # the only host sync of a step, so the GPU queue stays full in between
        el = time.time() - t0
        lossf.write(f"{step},{el:.1f},{acc.item() / nacc:.5f},{lr:.3e}\n")
        lossf.flush()
        if step % (10 if not cuda else 100) == 0:
            print(f"step {step} {el / 60:.2f} min loss {acc.item() / nacc:.4f} lr {lr:.2e}", flush=True)
        acc.zero_()
        nacc = 0
    if args.dec_every > 0 and step % args.dec_every == 0 and dec_step < args.dec_steps:
        decoder_step()
    if time.time() - t_ck > args.ckpt_min * 60:
        save_ckpt()
        t_ck = time.time()
    if time.time() - t_eval > eval_s:
        evaluate()
        unet.train()
        te.train()
        t_eval = time.time()

save_ckpt()
evaluate()
print(f"stopped at step {step} after {time.time() - t_launch:.0f}s in this launch", flush=True)
