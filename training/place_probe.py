"""Where does the model put an object it is told to put somewhere? For each of the 9 places, --seeds
single-object prompts (colour, shape and background varied with the seed) are sampled with train.py's
evaluation sampler (DPM-Solver++ 20 steps, CFG 4.5) and the named colour's centroid is mapped to a grid
cell. Prints, per place, the cells chosen, and the column and row accuracy of the left/right places apart
from the middle column: a model that cannot tell left from right scores ~50 % on the first and ~100 % on
the second. Then the epsilon loss of 48 one-object left/right scenes under their caption and under the
mirrored one (left <-> right) at high t, where sampling decides the layout: a model that ignores the
side word scores the same for both. Dev tool (issue 19's diagnosis); reads an exported diffusers folder:

    /usr/bin/python3 training/place_probe.py --model models/default [--seeds 8] [--json out.json]
"""
import argparse
import json
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see train.py
import numpy as np  # noqa: E402
import torch  # noqa: E402

import common  # noqa: E402
import scenes  # noqa: E402
import schedulers  # noqa: E402  (tools/reference, on the path via common)

p = argparse.ArgumentParser()
p.add_argument("--model", required=True)
p.add_argument("--seeds", type=int, default=8)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--json", default=None)
a = p.parse_args()
torch.set_num_threads(a.threads)


unet, te, vae, vae_cfg = common.load_model_folder(a.model)
tok = common.Tokenizer()
cells = list(scenes.CELLS)
BGS = ["white", "black", "gray"]
cases = []
for cell in cells:
    for s in range(a.seeds):
        bg = BGS[s % 3]
        colour = [c for c in scenes.COLOURS if c != bg][(s * 5) % 8]
        shape = scenes.SHAPES[s % 3]
        art = "an" if colour[0] in "aeiou" else "a"
        cases.append((cell, colour, f"{art} {colour} {shape} {scenes.PLACES[cell]} on a {bg} background"))

g = torch.Generator().manual_seed(0)
x = torch.randn(len(cases), 4, 32, 32, generator=g)
with torch.no_grad():
    ctx = te(torch.cat([tok([c[2] for c in cases]), tok([""]).expand(len(cases), -1)]))
    sch = schedulers.DPMSolverPP2M()
    sch.set_timesteps(20)
    for t in sch.timesteps:
        e = unet(torch.cat([x, x]), torch.full((2 * len(cases),), float(t)), ctx)
        ec, eu = e.chunk(2)
        x = sch.step(eu + 4.5 * (ec - eu), t, x)
    imgs = common.to_uint8(vae.decode(x / vae_cfg["scaling_factor"]))

cellpx = scenes.IMG / 3
found = []
for (cell, colour, cap), im in zip(cases, imgs):
    m = np.linalg.norm(im.astype(float) - np.array(scenes.PALETTE[colour], float), axis=-1) < 75
    ys, xs = np.nonzero(m)
    found.append(None if len(xs) < 8 else (int(ys.mean() // cellpx), int(xs.mean() // cellpx)))
side = [(c, f) for (c, _, _), f in zip(cases, found) if c[1] != 1]
mid = [(c, f) for (c, _, _), f in zip(cases, found) if c[1] == 1]
acc = lambda rows, k: sum(f is not None and f[k] == c[k] for c, f in rows) / len(rows)  # noqa: E731
summary = {"left_right_column": acc(side, 1), "left_right_row": acc(side, 0), "middle_column": acc(mid, 1),
           "middle_row": acc(mid, 0), "samples": len(cases)}
for cell in cells:
    got = [f for (c, _, _), f in zip(cases, found) if c == cell]
    print(f"{scenes.PLACES[cell]:20s}", " ".join("--" if f is None else f"{f[0]}{f[1]}" for f in got))


def mirror(caption):
    return caption.replace("left", "@").replace("right", "left").replace("@", "right")


rng = np.random.default_rng(5)
side_specs = []
while len(side_specs) < 48:
    s_ = scenes.random_spec(rng, n_objects=1, full=True)
    if s_["objects"][0]["cell"][1] != 1:
        side_specs.append(s_)
ims = torch.from_numpy(np.stack([scenes.render(s_) for s_ in side_specs])).permute(0, 3, 1, 2).float() / 127.5 - 1
betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2
ac = torch.cumprod(1 - betas, 0)
summary["mirrored_caption_loss_excess"] = {}
with torch.no_grad():
    z = vae.encode(ims)[0] * vae_cfg["scaling_factor"]
    ctx_true = te(tok([s_["caption"] for s_ in side_specs]))
    ctx_mirror = te(tok([mirror(s_["caption"]) for s_ in side_specs]))
    g = torch.Generator().manual_seed(0)
    for t in (999, 900, 800, 600):
        lt = lm = 0.0
        for _ in range(2):
            n = torch.randn(z.shape, generator=g)
            x_t = ac[t].sqrt() * z + (1 - ac[t]).sqrt() * n
            tt = torch.full((len(side_specs),), float(t))
            lt += ((unet(x_t, tt, ctx_true) - n) ** 2).mean().item()
            lm += ((unet(x_t, tt, ctx_mirror) - n) ** 2).mean().item()
        summary["mirrored_caption_loss_excess"][t] = round((lm - lt) / lt, 4)
print(json.dumps(summary))
if a.json:
    common.write_json(a.json, {"model": a.model, "summary": summary,
                               "cases": [{"caption": c[2], "cell": list(c[0]), "found": f} for c, f in zip(cases, found)]})
