"""Training batches for train.py: scene specs drawn in Python (scenes.random_spec, the same distribution and
held-out rule as scenes.train_batch), packed into arrays, and rendered by a batched torch renderer on the
training device. scenes.render costs ~1.3 ms per image on one core, which would starve a GPU step; the torch
renderer reproduces it (test_gpu_render.py compares the two) for a whole batch in a few kernels.

TrainData(seed, batch, tok)[step] is deterministic in (seed, step), so it runs in DataLoader worker processes
and a resumed run continues with the step's own batch.
"""
import numpy as np
import torch

import scenes

MAX_OBJ = 3
PAL = torch.tensor([scenes.PALETTE[c] for c in scenes.COLOURS], dtype=torch.float32)
COLOUR_ID = {c: i for i, c in enumerate(scenes.COLOURS)}
SHAPE_ID = {s: i for i, s in enumerate(scenes.SHAPES)}


def train_specs(seed, step, batch):
    """The specs scenes.train_batch(seed, step, batch) would render (held-out captions redrawn)."""
    rng = np.random.default_rng([seed, step])
    out = []
    while len(out) < batch:
        s = scenes.random_spec(rng)
        if not scenes.is_heldout(s["caption"]):
            out.append(s)
    return out


def mirror_spec(spec):
    """The left-right mirror image of a scene, captioned anew: column c -> 2 - c, horizontal jitter negated
    (every shape is left-right symmetric, so the render is exactly the mirrored image)."""
    objs = [dict(o, cell=[o["cell"][0], 2 - o["cell"][1]], jitter=[-o["jitter"][0], o["jitter"][1]]) for o in spec["objects"]]
    out = dict(spec, objects=objs)
    out["caption"] = scenes.caption_of(out)
    return out


def mirror_pair_specs(seed, step, batch):
    """Half a batch of training specs, then their mirror images (a held-out mirror caption keeps the original):
    the same scene under "left" and under "right" in one step, so the gradient that teaches the two words
    apart is not averaged away between batches."""
    half = train_specs(seed, step, batch - batch // 2)
    twins = []
    for s_ in half[: batch // 2]:
        m = mirror_spec(s_)
        twins.append(s_ if scenes.is_heldout(m["caption"]) else m)
    return half + twins


def pack(specs):
    """specs -> dict of numpy arrays (fixed MAX_OBJ slots; `valid` marks the used ones)."""
    b = len(specs)
    p = {
        "bg": np.zeros(b, np.int64),
        "valid": np.zeros((b, MAX_OBJ), bool),
        "colour": np.zeros((b, MAX_OBJ), np.int64),
        "shape": np.zeros((b, MAX_OBJ), np.int64),
        "half": np.full((b, MAX_OBJ), scenes.SIZES["medium"], np.float64),
        "cell": np.zeros((b, MAX_OBJ, 2), np.int64),
        "jitter": np.zeros((b, MAX_OBJ, 2), np.float64),
    }
    for i, s in enumerate(specs):
        p["bg"][i] = COLOUR_ID[s["background"]]
        for j, o in enumerate(s["objects"]):
            p["valid"][i, j] = True
            p["colour"][i, j] = COLOUR_ID[o["colour"]]
            p["shape"][i, j] = SHAPE_ID[o["shape"]]
            p["half"][i, j] = scenes.SIZES[o["size"]]
            p["cell"][i, j] = o["cell"]
            p["jitter"][i, j] = o["jitter"]
    return p


def render(p, device):
    """Packed specs -> uint8 [B,64,64,3] on device; the arithmetic of scenes.render (geometry in float64, the
    per-pixel tests in float32, 2x2 box average, round half to even)."""
    t = {k: torch.as_tensor(v, device=device) for k, v in p.items()}
    b = t["bg"].shape[0]
    n = scenes.IMG * scenes.SS
    pal = PAL.to(device)
    coord = (torch.arange(n, dtype=torch.float32, device=device) + 0.5) / scenes.SS
    yy, xx = coord[None, :, None], coord[None, None, :]
    img = pal[t["bg"]][:, None, None, :].expand(b, n, n, 3).clone()
    for j in range(MAX_OBJ):
        r = t["half"][:, j]
        margin = scenes.CELL / 2 - r - 1.0
        cx = (t["cell"][:, j, 1] + 0.5) * scenes.CELL + t["jitter"][:, j, 0] * margin
        cy = (t["cell"][:, j, 0] + 0.5) * scenes.CELL + t["jitter"][:, j, 1] * margin
        f = lambda v: v.float()[:, None, None]  # noqa: E731  (numpy casts the Python-float operands to float32)
        dx, dy = xx - f(cx), yy - f(cy)
        circle = dx ** 2 + dy ** 2 <= f(r * r)
        square = (dx.abs() <= f(r)) & (dy.abs() <= f(r))
        tt = (yy - f(cy - r)) / f(2 * r)
        tri = (tt >= 0) & (tt <= 1) & (dx.abs() <= tt * f(r))
        shp = t["shape"][:, j][:, None, None]
        m = torch.where(shp == 0, circle, torch.where(shp == 1, square, tri)) & t["valid"][:, j][:, None, None]
        img = torch.where(m[..., None], pal[t["colour"][:, j]][:, None, None, :], img)
    img = img.reshape(b, scenes.IMG, scenes.SS, scenes.IMG, scenes.SS, 3).mean(dim=(2, 4))
    return img.round().clamp(0, 255).to(torch.uint8)


def to_model_input(u8):
    """uint8 [B,64,64,3] -> float [B,3,64,64] in [-1, 1] (common.to_tensor on the device)."""
    return u8.permute(0, 3, 1, 2).float() / 127.5 - 1.0


class TrainData(torch.utils.data.Dataset):
    """Item `step`: packed specs, caption token ids (10% dropped to "" for CFG) and the captions."""

    def __init__(self, seed, batch, tok, p_uncond, mirror_pairs=False):
        self.seed, self.batch, self.tok, self.p_uncond = seed, batch, tok, p_uncond
        self.mirror_pairs = mirror_pairs

    def __len__(self):
        return 1 << 40

    def __getitem__(self, step):
        specs = (mirror_pair_specs if self.mirror_pairs else train_specs)(self.seed, step, self.batch)
        drop = np.random.default_rng([self.seed, step, 7]).random(self.batch) < self.p_uncond
        caps = ["" if d else s["caption"] for s, d in zip(specs, drop)]
        return {"packed": pack(specs), "ids": self.tok(caps), "step": step}


class StepSampler(torch.utils.data.Sampler):
    def __init__(self, start):
        self.start = start

    def __iter__(self):
        s = self.start
        while True:
            yield s
            s += 1

    def __len__(self):
        return 1 << 40


def loader(seed, batch, tok, p_uncond, start_step, workers, mirror_pairs=False):
    """Endless iterator of TrainData items from start_step on, built in `workers` processes (0: in-process)."""
    kw = {"num_workers": workers, "batch_size": None, "sampler": StepSampler(start_step)}
    if workers > 0:
        kw.update(prefetch_factor=4, persistent_workers=True)
    return iter(torch.utils.data.DataLoader(TrainData(seed, batch, tok, p_uncond, mirror_pairs), **kw))
