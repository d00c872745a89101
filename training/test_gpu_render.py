"""Checks scene_batch.render (the batched torch renderer train.py uses) against scenes.render, the reference,
on the specs of real training batches plus the held-out scenes; exits 1 on a mismatch above --tol.

    /usr/bin/python3 training/test_gpu_render.py [--n 400] [--device cpu|cuda|auto] [--tol 0]
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import scene_batch  # noqa: E402
import scenes  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--n", type=int, default=400)
p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
p.add_argument("--tol", type=int, default=0, help="largest allowed per-channel difference (uint8 levels)")
a = p.parse_args()
torch.set_num_threads(2)
if a.device == "auto":
    a.device = "cuda" if torch.cuda.is_available() else "cpu"

heldout = json.load(open(os.path.join(common.HERE, "heldout_captions.json")))["scenes"]
train = scene_batch.train_specs(5, 0, max(1, a.n - len(heldout)))
assert not any(scenes.is_heldout(s["caption"]) for s in train), "a held-out caption reached a training batch"
specs = train + heldout
want = np.stack([scenes.render(s) for s in specs]).astype(np.int16)
t = time.time()
got = scene_batch.render(scene_batch.pack(specs), a.device).cpu().numpy().astype(np.int16)
dt = time.time() - t
d = np.abs(got - want)
bad = int((d.reshape(len(specs), -1).max(1) > a.tol).sum())
print(f"{len(specs)} scenes on {a.device}: max abs diff {d.max()}, mean {d.mean():.6f}, "
      f"pixels differing {(d.max(-1) > 0).sum()} of {d.shape[0] * 64 * 64}, scenes over tol {bad} ({dt:.2f}s)")
# The packed batch is the same scenes as scenes.train_batch draws for that (seed, step).
imgs, caps = scenes.train_batch(5, 0, 8)
assert caps == [s["caption"] for s in scene_batch.train_specs(5, 0, 8)], "train_specs drifted from scenes.train_batch"
sys.exit(1 if bad else 0)
