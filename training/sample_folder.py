"""Sample held-out captions from an exported diffusers folder (models/default, or one gpu/import_weights.py
wrote) with train.py's evaluation sampler, score them with checker.py and save the images, so that weights
trained elsewhere (a GPU run brings back weights, not eval_*.npy) get the same Python score and the same
samples sheet as the ones train.py evaluates:

    /usr/bin/python3 training/sample_folder.py --model /tmp/model-v1 --npy /tmp/eval_014447.npy     # 30 captions
    /usr/bin/python3 training/sample_sheet.py --npy /tmp/eval_014447.npy --out training/samples.png

--n 30 takes heldout_captions.json scenes[::3][:30] (train.py's default evaluation, and the order
sample_sheet.py assumes); --n 100 all of them (gpu/run.sh's evaluation; not for sample_sheet.py).
The sheet's title is the .npy's file name, so name it after the step.
"""
import argparse
import json
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see train.py
import numpy as np  # noqa: E402
import torch  # noqa: E402

import checker  # noqa: E402
import common  # noqa: E402
import schedulers  # noqa: E402  (tools/reference, on the path via common)

p = argparse.ArgumentParser()
p.add_argument("--model", required=True, help="diffusers folder (unet/, text_encoder/, vae/)")
p.add_argument("--n", type=int, default=30, help="held-out captions: 30 = scenes[::3][:30], 100 = all")
p.add_argument("--guidance", type=float, default=4.5)
p.add_argument("--steps", type=int, default=20)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--batch", type=int, default=10, help="captions sampled at once (memory only; same images)")
p.add_argument("--npy", default=None, help="write the uint8 [N,64,64,3] samples here")
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)


unet, te, vae, vae_cfg = common.load_model_folder(a.model)
sf = vae_cfg["scaling_factor"]
tok = common.Tokenizer()
heldout = json.load(open(os.path.join(common.HERE, "heldout_captions.json")))["scenes"]
specs = heldout if a.n >= len(heldout) else heldout[::3][: a.n]


@torch.no_grad()
def sample_all(captions):
    # Same noise as train.py's sample() for the whole list (randn(N,4,32,32) from seed), then batched.
    g = torch.Generator().manual_seed(a.seed)
    x_all = torch.randn(len(captions), 4, 32, 32, generator=g)
    empty = tok([""])
    out = []
    for i in range(0, len(captions), a.batch):
        caps = captions[i:i + a.batch]
        n = len(caps)
        ctx = te(torch.cat([tok(caps), empty.expand(n, -1)]))
        x = x_all[i:i + n]
        sch = schedulers.DPMSolverPP2M()
        sch.set_timesteps(a.steps)
        for t in sch.timesteps:
            e = unet(torch.cat([x, x]), torch.full((2 * n,), float(t)), ctx)
            ec, eu = e.chunk(2)
            x = sch.step(eu + a.guidance * (ec - eu), t, x)
        out.append(common.to_uint8(vae.decode(x / sf)))
    return np.concatenate(out)


imgs = sample_all([s["caption"] for s in specs])
sc, _ = checker.score(list(imgs), specs)
if a.npy:
    np.save(a.npy, imgs)
print(json.dumps({"model": os.path.abspath(a.model), "captions": len(specs), "guidance": a.guidance,
                  "steps": a.steps, **{k: round(float(v), 3) for k, v in sc.items()}}))
