"""The PyTorch anchor of the GPU bench: the project's own reference UNet (tools/reference/sd_torch.py)
at SD 1.5 width, random init, one dense step at CFG batch 2, fp32 and fp16, at each image size.
Same shapes as bench/gpu/bench.ts's dense rows, so the two print side by side (bench/gpu/run.sh).

    python3 bench/gpu/torch_anchor.py [--device cuda] [--sizes 256,512] [--reps 10] [--out FILE.json]
    /usr/bin/python3 bench/gpu/torch_anchor.py --quick      (CPU, narrow UNet, 64 px, one thread)

Timing: warm-up runs, then each rep between torch.cuda.synchronize() calls; median and min in ms.
fp16 uses .half() weights and inputs (what diffusers' torch_dtype=float16 does); the attention is the
reference's plain matmul/softmax, as the engine's graphs are checked against it.
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "reference"))

import torch  # noqa: E402

from sd_torch import UNet2DConditionModel  # noqa: E402

# SD 1.5's UNet config (the same as test/helpers/sd15Configs.ts, which bench/gpu/randomModel.ts writes).
SD15_UNET = {
    "act_fn": "silu", "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": False,
    "cross_attention_dim": 768, "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2, "mid_block_scale_factor": 1,
    "norm_eps": 1e-5, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
# bench/gpu/randomModel.ts's 'narrow' preset.
NARROW_UNET = dict(SD15_UNET, block_out_channels=[32, 64, 64, 64], cross_attention_dim=64, attention_head_dim=2)


def time_step(unet, dtype, device, latent, reps, warmup):
    cfg = unet.config
    g = torch.Generator(device="cpu").manual_seed(1)
    sample = torch.randn(2, cfg["in_channels"], latent, latent, generator=g).to(device, dtype)
    ctx = torch.randn(2, 77, cfg["cross_attention_dim"], generator=g).to(device, dtype)
    t = torch.tensor([500.0, 500.0], device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            out = unet(sample, t, ctx)
        sync()
        for _ in range(reps):
            a = time.perf_counter()
            out = unet(sample, t, ctx)
            sync()
            times.append((time.perf_counter() - a) * 1000)
    finite = bool(torch.isfinite(out).all())
    return {"median": statistics.median(times), "min": min(times), "runs": [round(x, 2) for x in times], "finite": finite}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="CPU, narrow UNet, 64 px, one thread")
    ap.add_argument("--device", default=None)
    ap.add_argument("--sizes", default=None)
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--dtypes", default="fp32,fp16")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    device = a.device or ("cpu" if a.quick else "cuda")
    sizes = [int(s) for s in (a.sizes or ("64" if a.quick else "256,512")).split(",")]
    reps = a.reps or (3 if a.quick else 10)
    if device == "cpu":
        torch.set_num_threads(1)
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    cfg = NARROW_UNET if a.quick else SD15_UNET
    t0 = time.perf_counter()
    torch.manual_seed(0)
    if hasattr(torch.device(device), "__enter__"):  # torch >= 2.0: initialise on the device (seconds, not a minute)
        with torch.device(device):
            unet = UNet2DConditionModel(cfg).eval()
    else:
        unet = UNet2DConditionModel(cfg).eval().to(device)
    # The sinusoidal timestep embedding is built in float32; diffusers casts it to the model's dtype
    # before the time MLP, so an fp16 model gets an fp16 input here too.
    unet.time_embedding.register_forward_pre_hook(lambda m, args: (args[0].to(m.linear_1.weight.dtype),))
    params = sum(p.numel() for p in unet.parameters())
    info = {"torch": torch.__version__, "device": device, "params": params, "unetChannels": cfg["block_out_channels"]}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    print(f"torch anchor: {info}, built in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    rows = []
    for dtype_name in a.dtypes.split(","):
        dtype = {"fp32": torch.float32, "fp16": torch.float16}[dtype_name]
        if dtype == torch.float16 and device == "cpu":
            continue  # CPU half kernels are not what the anchor is for
        unet.to(dtype)
        for size in sizes:
            try:
                r = time_step(unet, dtype, device, size // 8, reps, warmup=3)
            except RuntimeError as e:  # keep the other rows: the JSON is written at the end
                print(f"torch {device} {dtype_name} {size} px failed: {e}", file=sys.stderr)
                continue
            rows.append({"dtype": dtype_name, "size": size, **r})
            print(f"torch {device} {dtype_name} {size} px: {r['median']:.2f} ms (min {r['min']:.2f}){'' if r['finite'] else ' NON-FINITE OUTPUT'}", file=sys.stderr)
    print(f"\nPyTorch reference UNet ({device}{', ' + info.get('gpu', '') if device == 'cuda' else ''}), CFG batch 2, median ms of {reps}")
    print("size   | " + " | ".join(f"{d:>8}" for d in a.dtypes.split(",")))
    for size in sizes:
        cells = []
        for d in a.dtypes.split(","):
            r = next((x for x in rows if x["size"] == size and x["dtype"] == d), None)
            cells.append(f"{r['median']:8.2f}" if r else f"{'—':>8}")
        print(f"{size:<6} | " + " | ".join(cells))
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump({"bench": "torch-anchor", **info, "rows": rows, "totalS": time.perf_counter() - t0}, f, indent=1)


if __name__ == "__main__":
    main()
