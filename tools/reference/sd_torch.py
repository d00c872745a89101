"""PyTorch reference of the Stable Diffusion 1.x networks, written from
shared/reference/sd-architecture.md (not copied from diffusers/transformers).

Module attribute names reproduce the diffusers / transformers state-dict keys exactly, so
`model.state_dict()` saved to safetensors is a valid diffusers-layout weight file.
Each class is built from the corresponding config.json dict (diffusers key names).

Used by: tools/reference/make_fixtures.py (golden tensors for jest) and training/ (the bundled
model). Dev-time only; the product never runs Python.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def attention(q, k, v, heads, mask=None):
    """q [B,N,C], k/v [B,M,C] -> [B,N,C]. Heads are contiguous channel blocks (view(B,N,H,D)).
    Plain matmul: Debian torch's baddbmm(beta=0) can leak NaN from uninitialised memory."""
    b, n, c = q.shape
    m = k.shape[1]
    d = c // heads
    q = q.view(b, n, heads, d).transpose(1, 2)
    k = k.view(b, m, heads, d).transpose(1, 2)
    v = v.view(b, m, heads, d).transpose(1, 2)
    s = torch.matmul(q, k.transpose(-1, -2)) * (d ** -0.5)
    if mask is not None:
        s = s + mask
    p = s.softmax(dim=-1)
    o = torch.matmul(p, v)
    return o.transpose(1, 2).reshape(b, n, c)


# ----------------------------------------------------------------------------------------------
# CLIPTextModel (transformers names: text_model.*)
# ----------------------------------------------------------------------------------------------
class CLIPAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x, mask):
        return self.out_proj(attention(self.q_proj(x), self.k_proj(x), self.v_proj(x), self.heads, mask))


class CLIPMLP(nn.Module):
    def __init__(self, d, inner, act):
        super().__init__()
        self.fc1 = nn.Linear(d, inner)
        self.fc2 = nn.Linear(inner, d)
        self.act = act

    def forward(self, x):
        h = self.fc1(x)
        h = h * torch.sigmoid(1.702 * h) if self.act == "quick_gelu" else F.gelu(h)
        return self.fc2(h)


class CLIPEncoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["hidden_size"]
        eps = cfg.get("layer_norm_eps", 1e-5)
        self.self_attn = CLIPAttention(d, cfg["num_attention_heads"])
        self.layer_norm1 = nn.LayerNorm(d, eps=eps)
        self.mlp = CLIPMLP(d, cfg["intermediate_size"], cfg.get("hidden_act", "quick_gelu"))
        self.layer_norm2 = nn.LayerNorm(d, eps=eps)

    def forward(self, x, mask):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class CLIPEmbeddings(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.token_embedding = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.position_embedding = nn.Embedding(cfg["max_position_embeddings"], cfg["hidden_size"])

    def forward(self, ids):
        return self.token_embedding(ids) + self.position_embedding.weight[: ids.shape[1]][None]


class CLIPEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.ModuleList([CLIPEncoderLayer(cfg) for _ in range(cfg["num_hidden_layers"])])


class CLIPTextTransformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embeddings = CLIPEmbeddings(cfg)
        self.encoder = CLIPEncoder(cfg)
        self.final_layer_norm = nn.LayerNorm(cfg["hidden_size"], eps=cfg.get("layer_norm_eps", 1e-5))

    def forward(self, ids):
        L = ids.shape[1]
        mask = torch.full((L, L), float("-inf"), device=ids.device).triu(1)  # causal: query i sees keys j <= i
        h = self.embeddings(ids)
        for layer in self.encoder.layers:
            h = layer(h, mask)
        return self.final_layer_norm(h)


class CLIPTextModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.text_model = CLIPTextTransformer(cfg)

    def forward(self, ids):
        """ids int64 [B,L] -> last_hidden_state [B,L,D]"""
        return self.text_model(ids)


# ----------------------------------------------------------------------------------------------
# UNet2DConditionModel (diffusers names)
# ----------------------------------------------------------------------------------------------
def timestep_embedding(t, dim, flip_sin_to_cos=True, freq_shift=0):
    """t float [B] -> [B, dim]; cos first when flip_sin_to_cos (sd-architecture §2.3)."""
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / (half - freq_shift)
    arg = t.float()[:, None] * torch.exp(exponent)[None]
    emb = torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    return emb


class TimestepEmbedding(nn.Module):
    def __init__(self, cin, d):
        super().__init__()
        self.linear_1 = nn.Linear(cin, d)
        self.linear_2 = nn.Linear(d, d)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class ResnetBlock2D(nn.Module):
    """conv2(SiLU(norm2(conv1(SiLU(norm1(x))) + temb_proj(SiLU(emb))))) + shortcut(x)."""

    def __init__(self, cin, cout, temb, groups, eps):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        if temb is not None:
            self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.conv_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x, emb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if emb is not None:
            h = h + self.time_emb_proj(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        sc = self.conv_shortcut(x) if hasattr(self, "conv_shortcut") else x
        return sc + h


class Attention(nn.Module):
    def __init__(self, c, heads, ctx_dim=None, qkv_bias=False):
        super().__init__()
        self.heads = heads
        ctx_dim = ctx_dim or c
        self.to_q = nn.Linear(c, c, bias=qkv_bias)
        self.to_k = nn.Linear(ctx_dim, c, bias=qkv_bias)
        self.to_v = nn.Linear(ctx_dim, c, bias=qkv_bias)
        self.to_out = nn.ModuleList([nn.Linear(c, c)])

    def forward(self, x, ctx=None):
        ctx = x if ctx is None else ctx
        return self.to_out[0](attention(self.to_q(x), self.to_k(ctx), self.to_v(ctx), self.heads))


class GEGLU(nn.Module):
    def __init__(self, c, inner):
        super().__init__()
        self.proj = nn.Linear(c, inner * 2)

    def forward(self, x):
        value, gate = self.proj(x).chunk(2, dim=-1)  # first half value, second half gate
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, c, mult=4):
        super().__init__()
        # net.1 is Dropout in diffusers: an Identity keeps the indices (no params either way).
        self.net = nn.ModuleList([GEGLU(c, c * mult), nn.Identity(), nn.Linear(c * mult, c)])

    def forward(self, x):
        return self.net[2](self.net[0](x))


class BasicTransformerBlock(nn.Module):
    def __init__(self, c, heads, ctx_dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(c)
        self.attn1 = Attention(c, heads)
        self.norm2 = nn.LayerNorm(c)
        self.attn2 = Attention(c, heads, ctx_dim)
        self.norm3 = nn.LayerNorm(c)
        self.ff = FeedForward(c)

    def forward(self, x, ctx):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), ctx) + x
        return self.ff(self.norm3(x)) + x


class Transformer2DModel(nn.Module):
    def __init__(self, c, heads, ctx_dim, groups, linear_proj):
        super().__init__()
        self.linear_proj = linear_proj
        self.norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.proj_in = nn.Linear(c, c) if linear_proj else nn.Conv2d(c, c, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(c, heads, ctx_dim)])
        self.proj_out = nn.Linear(c, c) if linear_proj else nn.Conv2d(c, c, 1)

    def forward(self, x, ctx):
        b, c, h, w = x.shape
        res = x
        x = self.norm(x)
        if self.linear_proj:
            x = self.proj_in(x.permute(0, 2, 3, 1).reshape(b, h * w, c))
        else:
            x = self.proj_in(x).permute(0, 2, 3, 1).reshape(b, h * w, c)
        for blk in self.transformer_blocks:
            x = blk(x, ctx)
        if self.linear_proj:
            x = self.proj_out(x).reshape(b, h, w, c).permute(0, 3, 1, 2)
        else:
            x = self.proj_out(x.reshape(b, h, w, c).permute(0, 3, 1, 2))
        return x + res


class Downsample2D(nn.Module):
    def __init__(self, c, padding=1):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:  # VAE encoder: asymmetric pad (0,1,0,1)
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownBlock(nn.Module):
    """CrossAttnDownBlock2D (attn=True) or DownBlock2D."""

    def __init__(self, cin, cout, n, temb, groups, eps, attn, heads, ctx_dim, linear_proj, add_down, pad):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if j == 0 else cout, cout, temb, groups, eps) for j in range(n)])
        if attn:
            self.attentions = nn.ModuleList([Transformer2DModel(cout, heads, ctx_dim, groups, linear_proj) for _ in range(n)])
        if add_down:
            self.downsamplers = nn.ModuleList([Downsample2D(cout, pad)])

    def forward(self, h, emb, ctx):
        outs = []
        for j, r in enumerate(self.resnets):
            h = r(h, emb)
            if hasattr(self, "attentions"):
                h = self.attentions[j](h, ctx)
            outs.append(h)
        if hasattr(self, "downsamplers"):
            h = self.downsamplers[0](h)
            outs.append(h)
        return h, outs


class UpBlock(nn.Module):
    """CrossAttnUpBlock2D (attn=True) or UpBlock2D; resnet j input = (prev if j==0 else out) + skip."""

    def __init__(self, cin, prev, cout, n, temb, groups, eps, attn, heads, ctx_dim, linear_proj, add_up):
        super().__init__()
        self.resnets = nn.ModuleList([
            ResnetBlock2D((prev if j == 0 else cout) + (cin if j == n - 1 else cout), cout, temb, groups, eps)
            for j in range(n)
        ])
        if attn:
            self.attentions = nn.ModuleList([Transformer2DModel(cout, heads, ctx_dim, groups, linear_proj) for _ in range(n)])
        if add_up:
            self.upsamplers = nn.ModuleList([Upsample2D(cout)])

    def forward(self, h, skips, emb, ctx):
        for j, r in enumerate(self.resnets):
            h = torch.cat([h, skips.pop()], dim=1)  # [h, skip], LIFO
            h = r(h, emb)
            if hasattr(self, "attentions"):
                h = self.attentions[j](h, ctx)
        if hasattr(self, "upsamplers"):
            h = self.upsamplers[0](h)
        return h


class UNetMidBlock2DCrossAttn(nn.Module):
    def __init__(self, c, temb, groups, eps, heads, ctx_dim, linear_proj):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(c, c, temb, groups, eps) for _ in range(2)])
        self.attentions = nn.ModuleList([Transformer2DModel(c, heads, ctx_dim, groups, linear_proj)])

    def forward(self, h, emb, ctx):
        h = self.resnets[0](h, emb)
        h = self.attentions[0](h, ctx)
        return self.resnets[1](h, emb)


def coord_planes(b, h, w, n, like):
    """[b, n, h, w] coordinate channels at pixel centres: x = (2j+1)/w - 1, then y = (2i+1)/h - 1 (n = 2)."""
    if n != 2:
        raise ValueError(f"coord_channels {n}: only 2 (x, y) is defined")
    x = (torch.arange(w, dtype=torch.float32, device=like.device) * 2 + 1) / w - 1
    y = (torch.arange(h, dtype=torch.float32, device=like.device) * 2 + 1) / h - 1
    planes = torch.stack([x[None, :].expand(h, w), y[:, None].expand(h, w)]).to(like.dtype)
    return planes[None].expand(b, n, h, w)


class UNet2DConditionModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        ch = cfg["block_out_channels"]
        n = cfg.get("layers_per_block", 2)
        groups = cfg.get("norm_num_groups", 32)
        eps = cfg.get("norm_eps", 1e-5)
        heads = cfg.get("num_attention_heads") or cfg.get("attention_head_dim", 8)
        heads = heads if isinstance(heads, list) else [heads] * len(ch)
        ctx = cfg.get("cross_attention_dim", 1280)
        lin = cfg.get("use_linear_projection", False)
        pad = cfg.get("downsample_padding", 1)
        temb = ch[0] * 4
        self.flip = cfg.get("flip_sin_to_cos", True)
        self.freq_shift = cfg.get("freq_shift", 0)
        # coord_channels (a FISEdit extension; absent in SD folders = 0): conv_in also sees the pixel's x and y in
        # [-1, 1] (CoordConv), since a net whose scenes are left-right symmetric cannot tell left from right otherwise.
        self.coord_channels = cfg.get("coord_channels", 0)
        self.conv_in = nn.Conv2d(cfg.get("in_channels", 4) + self.coord_channels, ch[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(ch[0], temb)
        self.down_blocks = nn.ModuleList()
        cout = ch[0]
        for i, t in enumerate(cfg["down_block_types"]):
            cin, cout = cout, ch[i]
            self.down_blocks.append(DownBlock(cin, cout, n, temb, groups, eps, t == "CrossAttnDownBlock2D", heads[i],
                                              ctx, lin, i != len(ch) - 1, pad))
        self.mid_block = UNetMidBlock2DCrossAttn(ch[-1], temb, groups, eps, heads[-1], ctx, lin)
        rch = list(reversed(ch))
        rheads = list(reversed(heads))
        self.up_blocks = nn.ModuleList()
        prev = rch[0]
        for i, t in enumerate(cfg["up_block_types"]):
            cout = rch[i]
            cin = rch[min(i + 1, len(ch) - 1)]
            self.up_blocks.append(UpBlock(cin, prev, cout, n + 1, temb, groups, eps, t == "CrossAttnUpBlock2D",
                                          rheads[i], ctx, lin, i != len(ch) - 1))
            prev = cout
        self.conv_norm_out = nn.GroupNorm(groups, ch[0], eps=eps)
        self.conv_out = nn.Conv2d(ch[0], cfg.get("out_channels", 4), 3, padding=1)

    def forward(self, sample, timestep, encoder_hidden_states):
        """sample [B,4,h,w], timestep float [B] or scalar, ctx [B,L,Dctx] -> eps [B,4,h,w]"""
        b = sample.shape[0]
        t = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1).expand(b)
        emb = self.time_embedding(timestep_embedding(t, self.conv_in.out_channels, self.flip, self.freq_shift))
        if self.coord_channels:
            sample = torch.cat([sample, coord_planes(b, sample.shape[2], sample.shape[3], self.coord_channels, sample)], 1)
        h = self.conv_in(sample)
        skips = [h]
        for blk in self.down_blocks:
            h, outs = blk(h, emb, encoder_hidden_states)
            skips.extend(outs)
        h = self.mid_block(h, emb, encoder_hidden_states)
        for blk in self.up_blocks:
            take = len(blk.resnets)
            mine, skips = skips[-take:], skips[:-take]
            h = blk(h, mine, emb, encoder_hidden_states)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


# ----------------------------------------------------------------------------------------------
# AutoencoderKL (diffusers names)
# ----------------------------------------------------------------------------------------------
class VaeAttention(nn.Module):
    """Single-head self-attention with its own GroupNorm and residual (VAE mid block)."""

    def __init__(self, c, groups):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.to_q = nn.Linear(c, c)
        self.to_k = nn.Linear(c, c)
        self.to_v = nn.Linear(c, c)
        self.to_out = nn.ModuleList([nn.Linear(c, c)])

    def forward(self, x):
        b, c, h, w = x.shape
        t = self.group_norm(x).view(b, c, h * w).transpose(1, 2)
        o = attention(self.to_q(t), self.to_k(t), self.to_v(t), 1)
        o = self.to_out[0](o).transpose(1, 2).reshape(b, c, h, w)
        return o + x


class VaeMidBlock(nn.Module):
    def __init__(self, c, groups, add_attention=True):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(c, c, None, groups, 1e-6) for _ in range(2)])
        if add_attention:
            self.attentions = nn.ModuleList([VaeAttention(c, groups)])

    def forward(self, h):
        h = self.resnets[0](h)
        if hasattr(self, "attentions"):
            h = self.attentions[0](h)
        return self.resnets[1](h)


class EncoderDownBlock(nn.Module):
    def __init__(self, cin, cout, n, groups, add_down):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if j == 0 else cout, cout, None, groups, 1e-6) for j in range(n)])
        if add_down:
            self.downsamplers = nn.ModuleList([Downsample2D(cout, padding=0)])

    def forward(self, h):
        for r in self.resnets:
            h = r(h)
        if hasattr(self, "downsamplers"):
            h = self.downsamplers[0](h)
        return h


class DecoderUpBlock(nn.Module):
    def __init__(self, cin, cout, n, groups, add_up):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if j == 0 else cout, cout, None, groups, 1e-6) for j in range(n)])
        if add_up:
            self.upsamplers = nn.ModuleList([Upsample2D(cout)])

    def forward(self, h):
        for r in self.resnets:
            h = r(h)
        if hasattr(self, "upsamplers"):
            h = self.upsamplers[0](h)
        return h


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch = cfg["block_out_channels"]
        g = cfg.get("norm_num_groups", 32)
        n = cfg.get("layers_per_block", 1)
        self.conv_in = nn.Conv2d(cfg.get("in_channels", 3), ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        cout = ch[0]
        for i in range(len(ch)):
            cin, cout = cout, ch[i]
            self.down_blocks.append(EncoderDownBlock(cin, cout, n, g, i != len(ch) - 1))
        self.mid_block = VaeMidBlock(ch[-1], g, cfg.get("mid_block_add_attention", True))
        self.conv_norm_out = nn.GroupNorm(g, ch[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(ch[-1], 2 * cfg.get("latent_channels", 4), 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for blk in self.down_blocks:
            h = blk(h)
        h = self.mid_block(h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch = cfg["block_out_channels"]
        g = cfg.get("norm_num_groups", 32)
        n = cfg.get("layers_per_block", 1)
        self.conv_in = nn.Conv2d(cfg.get("latent_channels", 4), ch[-1], 3, padding=1)
        self.mid_block = VaeMidBlock(ch[-1], g, cfg.get("mid_block_add_attention", True))
        rch = list(reversed(ch))
        self.up_blocks = nn.ModuleList()
        cout = rch[0]
        for i in range(len(ch)):
            cin, cout = cout, rch[i]
            self.up_blocks.append(DecoderUpBlock(cin, cout, n + 1, g, i != len(ch) - 1))
        self.conv_norm_out = nn.GroupNorm(g, ch[0], eps=1e-6)
        self.conv_out = nn.Conv2d(ch[0], cfg.get("out_channels", 3), 3, padding=1)

    def forward(self, z):
        h = self.conv_in(z)
        h = self.mid_block(h)
        for blk in self.up_blocks:
            h = blk(h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class AutoencoderKL(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        lc = cfg.get("latent_channels", 4)
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        if cfg.get("use_quant_conv", True):
            self.quant_conv = nn.Conv2d(2 * lc, 2 * lc, 1)
        if cfg.get("use_post_quant_conv", True):
            self.post_quant_conv = nn.Conv2d(lc, lc, 1)

    def encode(self, x):
        """x [B,3,H,W] in [-1,1] -> (mean, logvar) [B,lc,H/f,W/f]"""
        m = self.encoder(x)
        if hasattr(self, "quant_conv"):
            m = self.quant_conv(m)
        mean, logvar = m.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z):
        """z [B,lc,h,w] ALREADY divided by scaling_factor -> image [B,3,H,W] in ~[-1,1]"""
        if hasattr(self, "post_quant_conv"):
            z = self.post_quant_conv(z)
        return self.decoder(z)


def rename_vae_attention_to_old(sd):
    """Write the deprecated VAE attention names (query/key/value/proj_attn), as SD 1.5's hub VAE has."""
    out = {}
    for k, v in sd.items():
        for new, old in ((".to_q.", ".query."), (".to_k.", ".key."), (".to_v.", ".value."), (".to_out.0.", ".proj_attn.")):
            if "attentions" in k and new in k:
                k = k.replace(new, old)
        out[k] = v
    return out
