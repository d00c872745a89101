"""Builds the jest fixtures: two tiny diffusers-layout SD models with seeded random weights and the
golden tensors computed on them by the PyTorch reference (sd_torch.py, schedulers.py, clip_bpe.py).

    cd /work/main && /usr/bin/python3 tools/reference/make_fixtures.py

Writes test/fixtures/models/{sd-narrow,tiny-2level}/ and test/fixtures/golden/{same}/, replacing
what is there. Deterministic (fixed seeds, CPU, 2 threads). The contract for these paths is in
tools/reference/README.md.
"""
import json
import os
import shutil
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import clip_bpe  # noqa: E402
import safetensors_io  # noqa: E402
import schedulers  # noqa: E402
from sd_torch import AutoencoderKL, CLIPTextModel, UNet2DConditionModel, rename_vae_attention_to_old  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
FIXTURES = os.path.join(ROOT, "test", "fixtures")

PROMPT = "a photo of a red cat sitting on a blue chair, highly detailed"
NEGATIVE = "blurry"
STEPS = 4
GUIDANCE = 7.5
UNET_TIMESTEP = 751.0  # DDIM's first timestep for 4 steps

SCHEDULER_CONFIG = {  # SD 1.5's scheduler_config.json (§1.7)
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}

MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "_diffusers_version": "0.6.0",
    "feature_extractor": [None, None],
    "requires_safety_checker": False,
    "safety_checker": [None, None],
    "scheduler": ["diffusers", "PNDMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


def text_encoder_config(vocab_size):
    # bos/eos/pad ids are SD 1.5's legacy placeholders on purpose (§1.5: the tokenizer's ids win).
    return {
        "_name_or_path": "fisedit/fixture",
        "architectures": ["CLIPTextModel"],
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "dropout": 0.0,
        "eos_token_id": 2,
        "hidden_act": "quick_gelu",
        "hidden_size": 32,
        "initializer_factor": 1.0,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": 77,
        "model_type": "clip_text_model",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "pad_token_id": 1,
        "projection_dim": 32,
        "torch_dtype": "float32",
        "transformers_version": "4.22.0.dev0",
        "vocab_size": vocab_size,
    }


def unet_base(**over):
    cfg = {
        "_class_name": "UNet2DConditionModel",
        "_diffusers_version": "0.6.0",
        "act_fn": "silu",
        "center_input_sample": False,
        "downsample_padding": 1,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "in_channels": 4,
        "mid_block_scale_factor": 1,
        "norm_eps": 1e-05,
        "out_channels": 4,
    }
    cfg.update(over)
    return dict(sorted(cfg.items()))


MODELS = {
    # SD-1.5-shaped, every block type; use_linear_projection absent (= false) exactly like SD 1.5's
    # config; VAE without scaling_factor (default 0.18215) and with the OLD attention names.
    "sd-narrow": {
        "seed": 1234,
        "image": 64,
        "unet": unet_base(
            attention_head_dim=4,
            block_out_channels=[32, 64, 64, 64],
            cross_attention_dim=32,
            down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
            layers_per_block=2,
            norm_num_groups=16,
            sample_size=8,
            up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        ),
        "vae": {
            "_class_name": "AutoencoderKL",
            "_diffusers_version": "0.6.0",
            "act_fn": "silu",
            "block_out_channels": [16, 32, 32, 32],
            "down_block_types": ["DownEncoderBlock2D"] * 4,
            "in_channels": 3,
            "latent_channels": 4,
            "layers_per_block": 1,
            "norm_num_groups": 8,
            "out_channels": 3,
            "sample_size": 64,
            "up_block_types": ["UpDecoderBlock2D"] * 4,
        },
        "vae_old_names": True,
        # F16 UNet file: keeps the fixture small and exercises the F16 weight path; the reference
        # computes with the same fp16-rounded values, widened to float32.
        "unet_f16": True,
    },
    # Two levels, linear proj_in/out, NEW VAE attention names, explicit scaling_factor 0.5.
    "tiny-2level": {
        "seed": 5678,
        "image": 32,
        "unet": unet_base(
            attention_head_dim=2,
            block_out_channels=[32, 64],
            cross_attention_dim=32,
            down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
            layers_per_block=1,
            norm_num_groups=8,
            sample_size=16,
            up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
            use_linear_projection=True,
        ),
        "vae": {
            "_class_name": "AutoencoderKL",
            "_diffusers_version": "0.27.0",
            "act_fn": "silu",
            "block_out_channels": [16, 32],
            "down_block_types": ["DownEncoderBlock2D"] * 2,
            "force_upcast": True,
            "in_channels": 3,
            "latent_channels": 4,
            "layers_per_block": 1,
            "norm_num_groups": 8,
            "out_channels": 3,
            "sample_size": 32,
            "scaling_factor": 0.5,
            "up_block_types": ["UpDecoderBlock2D"] * 2,
        },
        "vae_old_names": False,
    },
}

TOKEN_PROMPTS = [
    "",
    PROMPT,
    NEGATIVE,
    "hello, world!!! (masterpiece:1.2) [best quality] -- 'quoted' \"double\" ... ?!",
    "3 cats and 12 dogs in 2024, 85mm f/1.8 at 1/250s",
    "A Photo Of A RED Cat, UnReal EnGine, HDR",
    "  a   blue \t\n square   on\u3000the   left  ",
    "it's the dog's toy; they'll say we've won, I'm sure",
    "café naïve crème brûlée cafe\u0301 \U0001F642 日本の猫",
    "\x00ctrl\x07chars\u200bzero\ufffdwidth",
    "supercalifragilisticexpialidocious photographic undetailed reblurry",
    "<|startoftext|>a cat<|endoftext|>",
    " ".join(["cat"] * 75),  # exactly 75 content tokens: not truncated
    " ".join(["cat"] * 76),  # 76: truncated
    ", ".join(["a red cat"] * 30) + ", highly detailed photograph",  # far over 75
]


def perturb_for_sensitivity(model, qk_gain):
    """Default PyTorch init leaves norm weights at 1 / biases at 0 and makes attention nearly uniform;
    a fixture built that way cannot catch a swapped gamma/beta or a wrong softmax scale. So: norm
    weight = 1 + 0.1·N(0,1), norm bias = 0.1·N(0,1), and q/k projections scaled by qk_gain."""
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
                m.weight.copy_(1 + 0.1 * torch.randn_like(m.weight))
                m.bias.copy_(0.1 * torch.randn_like(m.bias))
        for name, p in model.named_parameters():
            if name.endswith(("to_q.weight", "to_k.weight", "q_proj.weight", "k_proj.weight")):
                p.mul_(qk_gain)


def build_models(spec, vocab_size):
    torch.manual_seed(spec["seed"])
    te_cfg = text_encoder_config(vocab_size)
    te = CLIPTextModel(te_cfg).eval()
    perturb_for_sensitivity(te, 2.0)
    unet = UNet2DConditionModel(spec["unet"]).eval()
    perturb_for_sensitivity(unet, 2.0)
    vae = AutoencoderKL(spec["vae"]).eval()
    perturb_for_sensitivity(vae, 2.0)
    if spec.get("unet_f16"):
        with torch.no_grad():
            for p in unet.parameters():
                p.copy_(p.half().float())
    with torch.no_grad():
        # Keep the random decoder's output in roughly [-1, 1] as a trained one is (image std ~0.5).
        vae.decoder.conv_out.weight.mul_(0.5)
    return te_cfg, te, unet, vae


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def save_npy(path, t):
    np.save(path, np.ascontiguousarray(t.detach().numpy().astype(np.float32)))


def write_model_folder(folder, spec, te_cfg, te, unet, vae):
    if os.path.exists(folder):
        shutil.rmtree(folder)
    for sub in ("text_encoder", "unet", "vae", "scheduler", "tokenizer"):
        os.makedirs(os.path.join(folder, sub))
    write_json(os.path.join(folder, "model_index.json"), MODEL_INDEX)
    write_json(os.path.join(folder, "scheduler", "scheduler_config.json"), SCHEDULER_CONFIG)
    clip_bpe.write_tokenizer_folder(os.path.join(folder, "tokenizer"))
    write_json(os.path.join(folder, "text_encoder", "config.json"), te_cfg)
    write_json(os.path.join(folder, "unet", "config.json"), spec["unet"])
    write_json(os.path.join(folder, "vae", "config.json"), spec["vae"])
    safetensors_io.save_file(te.state_dict(), os.path.join(folder, "text_encoder", "model.safetensors"))
    unet_sd = unet.state_dict()
    if spec.get("unet_f16"):
        unet_sd = {k: v.half() for k, v in unet_sd.items()}
    safetensors_io.save_file(unet_sd, os.path.join(folder, "unet", "diffusion_pytorch_model.safetensors"))
    vae_sd = vae.state_dict()
    if spec["vae_old_names"]:
        vae_sd = rename_vae_attention_to_old(vae_sd)
    safetensors_io.save_file(vae_sd, os.path.join(folder, "vae", "diffusion_pytorch_model.safetensors"))


def sample_loop(name, unet, text_embeds, init_noise):
    """diffusers' loop (§6): x = noise·init_σ; each t: ε = unet(scale(cat[x,x]), t, [neg, pos]); CFG; step."""
    sch = schedulers.SCHEDULERS[name]()
    sch.set_timesteps(STEPS)
    x = init_noise * sch.init_noise_sigma
    for t in sch.timesteps:
        x_in = sch.scale_model_input(torch.cat([x, x]), t)
        eps = unet(x_in, float(t), text_embeds)
        eps_u, eps_c = eps.chunk(2)
        x = sch.step(eps_u + GUIDANCE * (eps_c - eps_u), t, x)
    return x


def make_model(name, spec, stats):
    tok_dir_tmp = None
    vocab_size = len(clip_bpe.build_vocab()[0])
    te_cfg, te, unet, vae = build_models(spec, vocab_size)
    model_dir = os.path.join(FIXTURES, "models", name)
    write_model_folder(model_dir, spec, te_cfg, te, unet, vae)

    golden = os.path.join(FIXTURES, "golden", name)
    if os.path.exists(golden):
        shutil.rmtree(golden)
    os.makedirs(golden)
    tok = clip_bpe.ClipTokenizer(os.path.join(model_dir, "tokenizer"))
    assert tok("")[0] == [tok.bos] + [tok.eos] * 76
    tokens = []
    for p in TOKEN_PROMPTS:
        ids, truncated = tok(p)
        tokens.append({"prompt": p, "ids": ids, "truncated": truncated})
    write_json(os.path.join(golden, "tokens.json"), tokens)

    h = spec["image"] // (2 ** (len(spec["vae"]["block_out_channels"]) - 1))
    scaling = spec["vae"].get("scaling_factor", 0.18215)
    gen = torch.Generator().manual_seed(spec["seed"] + 1)
    with torch.no_grad():
        ids = torch.tensor([tok(NEGATIVE)[0], tok(PROMPT)[0]], dtype=torch.int64)
        text_embeds = te(ids)  # [2,77,32], negative first
        unet_sample = torch.randn(2, 4, h, h, generator=gen)
        unet_out = unet(unet_sample, UNET_TIMESTEP, text_embeds)
        init_noise = torch.randn(1, 4, h, h, generator=gen)
        latents = {s: sample_loop(s, unet, text_embeds, init_noise) for s in schedulers.SCHEDULERS}
        image = vae.decode(latents["ddim"] / scaling)

    save_npy(os.path.join(golden, "text_embeds.npy"), text_embeds)
    save_npy(os.path.join(golden, "unet_sample.npy"), unet_sample)
    save_npy(os.path.join(golden, "unet_out.npy"), unet_out)
    save_npy(os.path.join(golden, "init_noise.npy"), init_noise)
    for s, x in latents.items():
        save_npy(os.path.join(golden, f"latents_{s}.npy"), x)
    save_npy(os.path.join(golden, "vae_latents.npy"), latents["ddim"])
    save_npy(os.path.join(golden, "image.npy"), image)
    write_json(os.path.join(golden, "meta.json"), {
        "prompt": PROMPT,
        "negative": NEGATIVE,
        "steps": STEPS,
        "guidance": GUIDANCE,
        "height": spec["image"],
        "width": spec["image"],
        "unet_timestep": UNET_TIMESTEP,
        "schedulers": list(schedulers.SCHEDULERS),
    })

    eps_u, eps_c = unet_out.chunk(2)
    stats[name] = {
        "params": {k: sum(p.numel() for p in m.parameters()) for k, m in (("text_encoder", te), ("unet", unet), ("vae", vae))},
        "text_embeds_std": float(text_embeds.std()),
        "text_embeds_neg_vs_pos_maxdiff": float((text_embeds[0] - text_embeds[1]).abs().max()),
        "unet_out_std": float(unet_out.std()),
        "unet_out_absmax": float(unet_out.abs().max()),
        "unet_cond_minus_uncond_std": float((eps_c - eps_u).std()),
        **{f"latents_{s}_std": float(x.std()) for s, x in latents.items()},
        "image_min": float(image.min()),
        "image_max": float(image.max()),
        "image_std": float(image.std()),
    }


def main():
    torch.set_num_threads(2)
    schedulers.self_check()
    t0 = time.time()
    stats = {}
    for name, spec in MODELS.items():
        make_model(name, spec, stats)
    print(json.dumps(stats, indent=2))
    print(f"fixtures written to {FIXTURES} in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
