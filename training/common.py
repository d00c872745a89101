"""Shared pieces of the bundled-model training: configs (diffusers key names), the networks from
tools/reference/sd_torch.py, tokenisation, image <-> tensor conversion and checkpoint I/O."""
import copy
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tools", "reference"))
import clip_bpe  # noqa: E402
import sd_torch  # noqa: E402

TOKENIZER_DIR = os.path.join(HERE, "tokenizer")
RUNS = os.path.join(HERE, "runs")

# 64x64x3 <-> 32x32x4 (one 2x downsampling level). The mid block runs at 32x32 = 1024 tokens, where the
# single-head VAE attention would cost a 1024x1024 score matrix per image for flat-colour scenes that need no
# global context; mid_block_add_attention false drops it (the engine reads this key).
VAE_CONFIG = {
    "_class_name": "AutoencoderKL",
    "_diffusers_version": "0.27.2",
    "act_fn": "silu",
    "block_out_channels": [32, 64],
    "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
    "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 1,
    "norm_num_groups": 16,
    "sample_size": 64,
    "scaling_factor": 1.0,  # set after VAE training: 1 / std of the latents
    "mid_block_add_attention": False,
    "use_quant_conv": True,
    "use_post_quant_conv": True,
    "force_upcast": False,
}

UNET_CONFIG = {
    "_class_name": "UNet2DConditionModel",
    "_diffusers_version": "0.27.2",
    "act_fn": "silu",
    "attention_head_dim": 4,  # SD 1.x meaning: number of heads (128 / 4 = 32 channels per head)
    "block_out_channels": [32, 64, 128],
    "center_input_sample": False,
    "cross_attention_dim": 128,
    "down_block_types": ["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 1,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 8,
    "out_channels": 4,
    "sample_size": 32,
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
    "use_linear_projection": False,
}


def text_config(vocab_size):
    return {
        "_name_or_path": "fisedit/default",
        "architectures": ["CLIPTextModel"],
        "attention_dropout": 0.0,
        "bos_token_id": vocab_size - 2,
        "eos_token_id": vocab_size - 1,
        "pad_token_id": vocab_size - 1,
        "hidden_act": "quick_gelu",
        "hidden_size": 128,
        "initializer_factor": 1.0,
        "initializer_range": 0.02,
        "intermediate_size": 512,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": 77,
        "model_type": "clip_text_model",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "projection_dim": 128,
        "torch_dtype": "float32",
        "transformers_version": "4.38.2",
        "vocab_size": vocab_size,
    }


SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.27.2",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
}


class Tokenizer:
    """CLIP BPE (tools/reference/clip_bpe.py) with a cache of whole captions -> int64 [77]."""

    def __init__(self, folder=TOKENIZER_DIR):
        self.tok = clip_bpe.ClipTokenizer(folder)
        self.vocab_size = len(self.tok.encoder)
        self.cache = {}

    def __call__(self, captions):
        out = []
        for c in captions:
            if c not in self.cache:
                self.cache[c] = self.tok(c)[0]
            out.append(self.cache[c])
        return torch.tensor(out, dtype=torch.int64)


def to_tensor(imgs):
    """uint8 [B,H,W,3] -> float [B,3,H,W] in [-1, 1]."""
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_uint8(x):
    """float [B,3,H,W] in ~[-1, 1] -> uint8 [B,H,W,3]."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def save_atomic(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def ema_update(ema, model, decay):
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.mul_(decay).add_(p.detach(), alpha=1 - decay)


def clone(m):
    c = copy.deepcopy(m)
    for p in c.parameters():
        p.requires_grad_(False)
    return c


def load_vae(run_dir):
    ck = torch.load(os.path.join(run_dir, "vae.pt"))
    vae = sd_torch.AutoencoderKL(ck["config"])
    vae.load_state_dict(ck["ema"] if "ema" in ck else ck["model"])
    vae.eval()
    return vae, ck["config"]


def load_folder_weights(module, path):
    """Loads a diffusers/transformers safetensors file (e.g. models/default/unet/...) into a sd_torch module;
    used to resume training from committed weights when the run's checkpoints are gone (a new machine)."""
    import safetensors_io
    sd = safetensors_io.load_file(path)
    module.load_state_dict({k: v.float() for k, v in sd.items()})


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def np_seed_all(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)
