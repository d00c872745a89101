"""Contact sheet of held-out captions: reference render row above sample row, frame green when the checker
says the whole scene is right, red otherwise -> training/samples.png.

    /usr/bin/python3 training/sample_sheet.py --run default            # latest eval_*.npy written by train.py
    /usr/bin/python3 training/sample_sheet.py --run default --npy training/runs/default/eval_001200.npy

The samples are the ones train.py's evaluation drew (EMA weights, DPM-Solver++ 2M 20 steps, CFG 4.5)
for heldout_captions.json scenes[::3][:N]. A text file with the captions beside the PNG lists them in order.
"""
import argparse
import glob
import json
import os

import numpy as np
from PIL import Image, ImageDraw

import checker
import common
import scenes

p = argparse.ArgumentParser()
p.add_argument("--run", default="default")
p.add_argument("--npy", default=None)
p.add_argument("--out", default=os.path.join(common.HERE, "samples.png"))
p.add_argument("--cols", type=int, default=10)
p.add_argument("--scale", type=int, default=2)
a = p.parse_args()

npy = a.npy or sorted(glob.glob(os.path.join(common.RUNS, a.run, "eval_*.npy")))[-1]
imgs = np.load(npy)
specs = json.load(open(os.path.join(common.HERE, "heldout_captions.json")))["scenes"][::3][: len(imgs)]
refs = [scenes.render(s) for s in specs]
sc, res = checker.score(list(imgs), specs)

S = 64 * a.scale
pad, head = 4, 14
rows = (len(imgs) + a.cols - 1) // a.cols
W = a.cols * (S + pad) + pad
H = head + rows * (2 * S + 3 * pad)
sheet = Image.new("RGB", (W, H), (255, 255, 255))
d = ImageDraw.Draw(sheet)
d.text((pad, 1), f"{os.path.basename(npy)}  top: reference, bottom: sample  colour+pos {sc['colour_pos']:.2f} "
                 f"shape {sc['shape']:.2f} bg {sc['background']:.2f} scene {sc['scene']:.2f}", fill=(0, 0, 0))
for i, (ref, img, r) in enumerate(zip(refs, imgs, res)):
    x = pad + (i % a.cols) * (S + pad)
    y = head + (i // a.cols) * (2 * S + 3 * pad)
    sheet.paste(Image.fromarray(ref).resize((S, S), Image.NEAREST), (x, y))
    sheet.paste(Image.fromarray(img).resize((S, S), Image.NEAREST), (x, y + S + pad))
    colour = (0, 170, 0) if r["scene"] else (220, 0, 0)
    d.rectangle([x - 2, y + S + pad - 2, x + S + 1, y + 2 * S + pad + 1], outline=colour, width=2)
sheet.save(a.out)
with open(os.path.splitext(a.out)[0] + "_captions.txt", "w") as f:
    for i, s in enumerate(specs):
        f.write(f"{i}: {s['caption']}\n")
print("wrote", a.out, sc)
