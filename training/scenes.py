"""Deterministic synthetic scenes with captions for the bundled default model (dev-time only).

A scene is 1-3 flat-coloured objects (circle, square, triangle) on a plain background, each object in its own
cell of a 3x3 grid, rendered at 128x128 and box-averaged to 64x64 RGB (2x supersampling = anti-aliased edges).

Caption grammar (fixed; the article is "an" before a vowel):
    caption  := object (" and " object)* [" on a " colour " background"]
    object   := article [size " "] colour " " shape [" " place]
    size     := "small" | "large"            (medium objects carry no size word)
    place    := "on the left" | "on the right" | "at the top" | "at the bottom" | "in the center"
              | "in the top left" | "in the top right" | "in the bottom left" | "in the bottom right"
Positions are omitted only for some single-object captions and the background phrase for a few
captions, so the model also answers short prompts ("a red circle").

Held-out rule: a caption with crc32(caption) % 10 == 0 is never trained on (compositional holdout).
"""
import json
import zlib

import numpy as np

IMG = 64
SS = 2  # supersampling factor
CELL = IMG / 3.0  # grid cell size in px (21.33)

# Well separated in RGB (min pairwise distance > 90); gray is mid-way between white and black.
PALETTE = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (40, 70, 225),
    "yellow": (245, 220, 30),
    "purple": (140, 50, 180),
    "orange": (250, 140, 20),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "gray": (128, 128, 128),
}
COLOURS = list(PALETTE)
SHAPES = ["circle", "square", "triangle"]
# Cell (row, col) -> phrase; row 0 is the top.
PLACES = {
    (1, 0): "on the left",
    (1, 2): "on the right",
    (0, 1): "at the top",
    (2, 1): "at the bottom",
    (1, 1): "in the center",
    (0, 0): "in the top left",
    (0, 2): "in the top right",
    (2, 0): "in the bottom left",
    (2, 2): "in the bottom right",
}
CELLS = list(PLACES)
# Half extent (px at 64x64) per size class; the caption names only small and large.
SIZES = {"small": 5.5, "medium": 7.0, "large": 9.0}
# Backgrounds: the neutral ones are more common (they are what users ask for most).
BG_WEIGHTS = np.array([0.4 / 6] * 6 + [0.2, 0.2, 0.2])

HELDOUT_MOD = 10


def is_heldout(caption):
    return zlib.crc32(caption.encode("utf-8")) % HELDOUT_MOD == 0


def article(word):
    return "an" if word[0] in "aeiou" else "a"


def caption_of(spec):
    """spec -> caption string (the grammar in the module docstring)."""
    parts = []
    for o in spec["objects"]:
        words = []
        if o["size"] != "medium":
            words.append(o["size"])
        words += [o["colour"], o["shape"]]
        s = article(words[0]) + " " + " ".join(words)
        if spec.get("say_place", True):
            s += " " + PLACES[tuple(o["cell"])]
        parts.append(s)
    cap = " and ".join(parts)
    if spec.get("say_background", True):
        cap += " on " + article(spec["background"]) + " " + spec["background"] + " background"
    return cap


def random_spec(rng, n_objects=None, full=False):
    """Draw a scene spec. full=True always names positions and background (evaluation captions)."""
    if n_objects is None:
        n_objects = int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25]))
    bg = COLOURS[int(rng.choice(len(COLOURS), p=BG_WEIGHTS))]
    cols = rng.permutation([c for c in COLOURS if c != bg])[:n_objects]
    cells = rng.permutation(len(CELLS))[:n_objects]
    objs = []
    for c, k in zip(cols, cells):
        objs.append({
            "colour": str(c),
            "shape": SHAPES[int(rng.integers(3))],
            "size": str(rng.choice(["small", "medium", "large"], p=[0.25, 0.5, 0.25])),
            "cell": list(CELLS[int(k)]),
            # Jitter of the centre inside the cell, as a fraction of the free margin in [-1, 1].
            "jitter": [float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1))],
        })
    spec = {"objects": objs, "background": bg, "say_place": True, "say_background": True}
    if not full:
        spec["say_place"] = not (n_objects == 1 and rng.random() < 0.25)
        spec["say_background"] = rng.random() >= 0.1
    spec["caption"] = caption_of(spec)
    return spec


def object_geometry(o):
    """Centre (cx, cy) and half extent r in 64x64 px coordinates (continuous, pixel centres at i + 0.5)."""
    r = SIZES[o["size"]]
    row, col = o["cell"]
    margin = CELL / 2 - r - 1.0  # keeps the object inside its cell with >= 1 px gap
    cx = (col + 0.5) * CELL + o["jitter"][0] * margin
    cy = (row + 0.5) * CELL + o["jitter"][1] * margin
    return cx, cy, r


def render(spec):
    """spec -> uint8 [64, 64, 3]."""
    n = IMG * SS
    img = np.empty((n, n, 3), np.float32)
    img[:] = PALETTE[spec["background"]]
    yy, xx = (np.mgrid[0:n, 0:n].astype(np.float32) + 0.5) / SS  # sample positions in 64-px units
    for o in spec["objects"]:
        cx, cy, r = object_geometry(o)
        if o["shape"] == "circle":
            m = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        elif o["shape"] == "square":
            m = (np.abs(xx - cx) <= r) & (np.abs(yy - cy) <= r)
        else:  # upward triangle, apex at top centre, base at the bottom of the 2r x 2r box
            t = (yy - (cy - r)) / (2 * r)  # 0 at apex, 1 at base
            m = (t >= 0) & (t <= 1) & (np.abs(xx - cx) <= t * r)
        img[m] = PALETTE[o["colour"]]
    img = img.reshape(IMG, SS, IMG, SS, 3).mean(axis=(1, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def train_batch(seed, step, batch):
    """Deterministic training batch: (uint8 images [B,64,64,3], captions). Held-out captions are redrawn."""
    rng = np.random.default_rng([seed, step])
    imgs, caps = [], []
    while len(caps) < batch:
        s = random_spec(rng)
        if is_heldout(s["caption"]):
            continue
        imgs.append(render(s))
        caps.append(s["caption"])
    return np.stack(imgs), caps


def heldout_specs(count=100, seed=12345):
    """Evaluation scenes: full captions (positions + background) that training never sees; 1/2/3 objects ~ 2:5:3."""
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    plan = [1] * (count * 2 // 10) + [2] * (count * 5 // 10)
    plan += [3] * (count - len(plan))
    for n in plan:
        while True:
            s = random_spec(rng, n_objects=n, full=True)
            if is_heldout(s["caption"]) and s["caption"] not in seen:
                break
        seen.add(s["caption"])
        out.append(s)
    return out


if __name__ == "__main__":
    import os
    import sys

    specs = heldout_specs()
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "heldout_captions.json")
    doc = {
        "about": "Held-out evaluation captions (crc32(caption) % 10 == 0; never trained). cell = [row, col] on a 3x3 "
                 "grid of the 64x64 image, row 0 at the top. jitter/size give the exact reference render (training/scenes.py).",
        "palette": PALETTE,
        "places": {PLACES[k]: list(k) for k in CELLS},
        "scenes": specs,
    }
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    print("wrote", path, len(specs), file=sys.stderr)
