"""Golden data for the TypeScript evaluator's tests (src/eval/scoreScene.ts).

Writes test/fixtures/eval/: renders.npy (uint8 [N,64,64,3]: reference renders, then copies with the
first object's colour swapped or its shape replaced), scenes.json (the captions each image is scored
against) and python_scores.json (training/checker.py's verdicts, the independent reference).
Run: /usr/bin/python3 training/make_eval_fixtures.py
"""
import json
import os

import numpy as np

import checker
import scenes

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "eval")


def main():
    rng = np.random.default_rng(2024)
    specs = [scenes.random_spec(rng, full=True) for _ in range(24)]
    imgs = [scenes.render(s) for s in specs]
    # Perturbed copies scored against the ORIGINAL caption: the checker must say no.
    for s in specs[:8]:
        t = json.loads(json.dumps(s))
        o = t["objects"][0]
        used = {x["colour"] for x in t["objects"]} | {t["background"]}
        o["colour"] = next(c for c in scenes.COLOURS if c not in used)
        imgs.append(scenes.render(t))
        specs.append(s)
    for s in specs[8:16]:
        t = json.loads(json.dumps(s))
        o = t["objects"][0]
        o["shape"] = scenes.SHAPES[(scenes.SHAPES.index(o["shape"]) + 1) % 3]
        imgs.append(scenes.render(t))
        specs.append(s)
    res = [checker.check(i, s) for i, s in zip(imgs, specs)]
    os.makedirs(OUT, exist_ok=True)
    np.save(os.path.join(OUT, "renders.npy"), np.stack(imgs))
    with open(os.path.join(OUT, "scenes.json"), "w") as f:
        json.dump([{"caption": s["caption"], "objects": s["objects"], "background": s["background"]} for s in specs], f)
    with open(os.path.join(OUT, "python_scores.json"), "w") as f:
        json.dump(res, f)
    print("wrote", len(imgs), "images to", OUT)


if __name__ == "__main__":
    main()
