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


# v2: the evidence of issue 19 says placement and binding fail, not drawing. Cross-attention also at 16x16 (the
# 8x8 grid alone is coarse for a 3x3 layout) and a 4-layer, 256-wide text encoder (binding lives in the text
# path). 27.9 MB F32 with the VAE, within the 30 MB budget; everything else as v1, so the engine loads it
# through the same config keys (attention_head_dim per block: 32 channels per head).
UNET_CONFIG_V2 = dict(
    UNET_CONFIG,
    attention_head_dim=[1, 2, 4],
    cross_attention_dim=256,
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
)
TEXT_V2 = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 512,
           "projection_dim": 256}
# v1c: v1 plus two coordinate input channels (x, y) at conv_in. The v1 model places held-out objects of the
# middle column right 63 of 65 times but those of the left and right columns 66 of 145 (the mirror cell for
# most of the rest): it never learnt "left" from "right" (training/README.md, Session 14). The coordinates give
# its queries a signal linear in x from the first layer on. Grown from v1 weights (load_folder_weights).
UNET_CONFIG_V1C = dict(UNET_CONFIG, coord_channels=2)
ARCHS = ("v1", "v2", "v1c")


def unet_config(arch="v1"):
    return dict({"v1": UNET_CONFIG, "v2": UNET_CONFIG_V2, "v1c": UNET_CONFIG_V1C}[arch])


def text_config(vocab_size, arch="v1"):
    cfg = _text_config_v1(vocab_size)
    if arch == "v2":
        cfg.update(TEXT_V2)
    return cfg


def _text_config_v1(vocab_size):
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


def load_pt(path, device="cpu"):
    """torch.load of our own checkpoints (dicts of configs, args and tensors; torch >= 2.6 defaults to
    weights_only=True, which rejects some of them)."""
    return torch.load(path, map_location=device, weights_only=False)


def use_fused_attention():
    """On CUDA, route sd_torch's attention through F.scaled_dot_product_attention (flash / memory-efficient
    kernels): the same maths as the reference matmul-softmax-matmul, without the [N, M] score tensor."""
    import torch.nn.functional as F

    def attention(q, k, v, heads, mask=None):
        b, n, c = q.shape
        m = k.shape[1]
        d = c // heads
        q = q.view(b, n, heads, d).transpose(1, 2)
        k = k.view(b, m, heads, d).transpose(1, 2)
        v = v.view(b, m, heads, d).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else mask.to(q.dtype))
        return o.transpose(1, 2).reshape(b, n, c)

    # Check it against the reference on this machine before training on it; keep the reference on any doubt.
    try:
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(2, 16, 64, generator=g).cuda() for _ in range(3))
        mask = torch.full((16, 16), float("-inf"), device="cuda").triu(1)
        err = max(float((attention(q, k, v, 4, m) - sd_torch.attention(q, k, v, 4, m)).abs().max()) for m in (None, mask))
    except Exception as e:  # noqa: BLE001
        print(f"fused attention unavailable ({e!r}); using the reference attention", flush=True)
        return False
    if not err < 1e-2:  # TF32 matmuls in the reference; wrong semantics would differ by O(1)
        print(f"fused attention differs from the reference by {err}; using the reference attention", flush=True)
        return False
    sd_torch.attention = attention
    return True


def save_atomic(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def ema_update(ema, model, decay):
    # One multi-tensor kernel per op instead of two tiny ones per parameter (launch-bound on a GPU).
    with torch.no_grad():
        e = list(ema.parameters())
        torch._foreach_mul_(e, decay)
        torch._foreach_add_(e, [p.detach() for p in model.parameters()], alpha=1 - decay)


def clone(m):
    c = copy.deepcopy(m)
    for p in c.parameters():
        p.requires_grad_(False)
    return c


def load_vae(run_dir):
    ck = load_pt(os.path.join(run_dir, "vae.pt"))
    vae = sd_torch.AutoencoderKL(ck["config"])
    vae.load_state_dict(ck["ema"] if "ema" in ck else ck["model"])
    vae.eval()
    return vae, ck["config"]


def load_folder_weights(module, path, grow_std=0.03):
    """Loads a diffusers/transformers safetensors file (e.g. models/default/unet/...) into a sd_torch module;
    used to resume training from committed weights when the run's checkpoints are gone (a new machine)."""
    import safetensors_io
    sd = {k: v.float() for k, v in safetensors_io.load_file(path).items()}
    own = module.state_dict()
    w = sd.get("conv_in.weight")
    if w is not None and "conv_in.weight" in own and own["conv_in.weight"].shape[1] > w.shape[1]:
        # A v1 folder into v1c. Zero coordinate taps would never grow: conv_in comes before any text, so its
        # gradient on a position feature cancels between "left" and "right" captions until later layers use
        # the feature, and they cannot learn to use a feature that is zero (measured: 250 steps at lr 3e-4 left
        # the taps at |w| 7e-4 against 0.09 for the latent taps). So they start small and random (seeded: the
        # model and its EMA get the same ones).
        grown = torch.zeros_like(own["conv_in.weight"])
        grown[:, : w.shape[1]] = w
        extra = grown[:, w.shape[1]:]
        extra.copy_(torch.randn(extra.shape, generator=torch.Generator().manual_seed(0)) * grow_std)
        sd["conv_in.weight"] = grown
        print(f"conv_in grown {tuple(w.shape)} -> {tuple(grown.shape)} (new taps N(0, {grow_std}^2))", flush=True)
    module.load_state_dict(sd)


def decoder_loss(vae, x, scaling_factor, latent_noise=0.05, edge_weight=0.0):
    """The decoder fine-tuning loss (train.py's decoder steps, finetune_decoder.py): x [B,3,H,W] in [-1,1] is
    encoded by the frozen encoder, its latents get a little noise (the decoder must tolerate the UNet's
    imprecision), and the decode is scored by L1 + MSE. With edge_weight > 0 the L1 term weighs target pixels
    on an object edge (3x3 neighbourhood not one colour) 1 + edge_weight: flat interiors otherwise take almost
    all of the weight, and corners come back filled (vae_ceiling.py)."""
    import torch.nn.functional as F
    with torch.no_grad():
        z = vae.encode(x)[0]
        z = z + latent_noise / scaling_factor * torch.randn_like(z)
    y = vae.decode(z)
    l1 = (y - x).abs()
    if edge_weight > 0:
        spread = (F.max_pool2d(x, 3, 1, 1) + F.max_pool2d(-x, 3, 1, 1)).amax(1, keepdim=True)
        w = 1.0 + edge_weight * (spread > 0.05).float()
        l1 = l1 * w / w.mean()
    return l1.mean() + F.mse_loss(y, x)


def decoder_fit_step(vae, opt, params, x, scaling_factor, latent_noise=0.05, edge_weight=0.0):
    """One decoder fine-tuning step on the batch x (decoder_loss, gradient clipped at 1); returns the loss."""
    loss = decoder_loss(vae, x, scaling_factor, latent_noise, edge_weight)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    return loss


def load_model_folder(folder):
    """An exported diffusers folder -> (unet, text_encoder, vae, vae_config), in eval mode."""
    def load(sub, cls, weights):
        cfg = json.load(open(os.path.join(folder, sub, "config.json")))
        m = cls(cfg)
        load_folder_weights(m, os.path.join(folder, sub, weights))
        return m.eval(), cfg
    unet, _ = load("unet", sd_torch.UNet2DConditionModel, "diffusion_pytorch_model.safetensors")
    te, _ = load("text_encoder", sd_torch.CLIPTextModel, "model.safetensors")
    vae, vae_cfg = load("vae", sd_torch.AutoencoderKL, "diffusion_pytorch_model.safetensors")
    return unet, te, vae, vae_cfg


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def np_seed_all(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)
