"""Exports a diffusers-layout UNet with torch.onnx.export: the "torch exporter" baseline for the dense bench.

    /usr/bin/python3 tools/reference/export_unet_onnx.py MODEL_FOLDER [--name NAME]
    /usr/bin/python3 tools/reference/export_unet_onnx.py --sd15-random
    /usr/bin/python3 tools/reference/export_unet_onnx.py --sd15-random --sd-vae --folder-only --name sd15-sdvae

MODEL_FOLDER holds unet/config.json and unet/diffusion_pytorch_model.safetensors (F32 or F16; the
`.fp16` variant is used when it is the only one). --sd15-random first writes a seeded random
SD 1.5-width model to bench/.cache/sd15-random/ (the real SD 1.5 UNet config and tensor names,
3.44 GB of F32) plus a minimal text_encoder / vae / tokenizer / scheduler so the folder loads as a
pipeline: those three are deliberately small (1-layer CLIP at width 768, 4-level VAE at 32..64
channels) since only the UNet is benchmarked.

Output: bench/.cache/<name>/unet_torch.onnx, opset 17.
  inputs  sample [B,4,h,w] f32, timestep [B] f32, encoder_hidden_states [B,L,C] f32
  output  out_sample [B,4,h,w] f32
  dynamic axes: B (batch), h/w (latent height/width), L (sequence).
When the weights pass 2 GB, torch writes one file per tensor; they are gathered into
unet_torch.onnx.data next to the model (onnx_external_data.consolidate).
"""
import argparse
import json
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import clip_bpe  # noqa: E402
import onnx_external_data  # noqa: E402
import safetensors_io  # noqa: E402
from sd_torch import AutoencoderKL, CLIPTextModel, UNet2DConditionModel  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CACHE = os.path.join(ROOT, "bench", ".cache")

SD15_UNET_CONFIG = {  # sd-architecture.md §1.3
    "_class_name": "UNet2DConditionModel",
    "_diffusers_version": "0.6.0",
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}

MINI_VAE_CONFIG = {
    "_class_name": "AutoencoderKL",
    "_diffusers_version": "0.6.0",
    "act_fn": "silu",
    "block_out_channels": [32, 32, 64, 64],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 1,
    "norm_num_groups": 16,
    "out_channels": 3,
    "sample_size": 512,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}


# SD 1.5's own VAE (sd-architecture.md §1.4): with it an end-to-end edit bench pays the real decoder cost,
# which the region decode of an edit is there to cut.
SD15_VAE_CONFIG = {
    "_class_name": "AutoencoderKL",
    "_diffusers_version": "0.6.0",
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "scaling_factor": 0.18215,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def make_sd15_random(folder, seed=0, vae_config=MINI_VAE_CONFIG):
    """Seeded random SD 1.5-width UNet + minimal companions, diffusers layout. Returns the UNet."""
    # Imported here so the fixture constants stay in one place.
    from make_fixtures import MODEL_INDEX, SCHEDULER_CONFIG, text_encoder_config

    for sub in ("unet", "text_encoder", "vae", "scheduler", "tokenizer"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(SD15_UNET_CONFIG).eval()
    write_json(os.path.join(folder, "unet", "config.json"), SD15_UNET_CONFIG)
    safetensors_io.save_file(unet.state_dict(), os.path.join(folder, "unet", "diffusion_pytorch_model.safetensors"))

    vocab_size = clip_bpe.write_tokenizer_folder(os.path.join(folder, "tokenizer"))
    te_cfg = dict(text_encoder_config(vocab_size), hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                  num_hidden_layers=1, projection_dim=768, _name_or_path="fisedit/sd15-random-mini")
    te = CLIPTextModel(te_cfg).eval()
    write_json(os.path.join(folder, "text_encoder", "config.json"), te_cfg)
    safetensors_io.save_file(te.state_dict(), os.path.join(folder, "text_encoder", "model.safetensors"))
    vae = AutoencoderKL(vae_config).eval()
    write_json(os.path.join(folder, "vae", "config.json"), vae_config)
    safetensors_io.save_file(vae.state_dict(), os.path.join(folder, "vae", "diffusion_pytorch_model.safetensors"))
    write_json(os.path.join(folder, "scheduler", "scheduler_config.json"), SCHEDULER_CONFIG)
    write_json(os.path.join(folder, "model_index.json"), MODEL_INDEX)
    return unet


def load_unet(folder):
    with open(os.path.join(folder, "unet", "config.json")) as f:
        cfg = json.load(f)
    for fname in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"):
        path = os.path.join(folder, "unet", fname)
        if os.path.exists(path):
            break
    else:
        raise FileNotFoundError(f"{folder}/unet: no diffusion_pytorch_model[.fp16].safetensors")
    sd = {k: v.float() for k, v in safetensors_io.load_file(path).items()}
    unet = UNet2DConditionModel(cfg).eval()
    unet.load_state_dict(sd, strict=True)
    return unet


def export(unet, out_path, latent=8, seq=77):
    """Traces at batch 2 (CFG), latent `latent`, and exports with dynamic batch/height/width/sequence."""
    cfg = unet.config
    sample = torch.randn(2, cfg.get("in_channels", 4), latent, latent)
    timestep = torch.tensor([500.0, 500.0])
    ctx = torch.randn(2, seq, cfg.get("cross_attention_dim", 1280))
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            unet, (sample, timestep, ctx), out_path,
            input_names=["sample", "timestep", "encoder_hidden_states"],
            output_names=["out_sample"],
            dynamic_axes={
                "sample": {0: "batch", 2: "height", 3: "width"},
                "timestep": {0: "batch"},
                "encoder_hidden_states": {0: "batch", 1: "sequence"},
                "out_sample": {0: "batch", 2: "height", 3: "width"},
            },
            opset_version=17,
            do_constant_folding=True,
        )
    return onnx_external_data.consolidate(out_path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?", help="diffusers model folder")
    ap.add_argument("--sd15-random", action="store_true", help="create bench/.cache/sd15-random and export it")
    ap.add_argument("--name", help="output name under bench/.cache (default: the folder's name)")
    ap.add_argument("--sd-vae", action="store_true", help="with --sd15-random: SD 1.5's VAE width instead of a mini VAE")
    ap.add_argument("--folder-only", action="store_true", help="with --sd15-random: write the model folder, skip the ONNX export")
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.time()
    if args.sd15_random:
        name = args.name or "sd15-random"
        folder = os.path.join(CACHE, name)
        unet_file = os.path.join(folder, "unet", "diffusion_pytorch_model.safetensors")
        vae_config = SD15_VAE_CONFIG if args.sd_vae else MINI_VAE_CONFIG
        unet = load_unet(folder) if os.path.exists(unet_file) else make_sd15_random(folder, vae_config=vae_config)
        if args.folder_only:
            print(f"wrote {folder} in {time.time() - t0:.1f}s")
            return
    elif args.model:
        name = args.name or os.path.basename(os.path.normpath(args.model))
        unet = load_unet(args.model)
    else:
        ap.error("give a model folder or --sd15-random")
    print(f"unet ready ({sum(p.numel() for p in unet.parameters()):,} params) in {time.time() - t0:.1f}s")
    out = os.path.join(CACHE, name, "unet_torch.onnx")
    moved = export(unet, out)
    print(f"wrote {out}{f' + {moved} tensors in unet_torch.onnx.data' if moved else ''} in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
