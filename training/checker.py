"""Python scene checker (development tool; the product's evaluator is TypeScript).

Per pixel: nearest palette colour, if within MAX_DIST in RGB, else unlabelled.
Per named object: colour+position ok when its colour has >= MIN_PX pixels in its named 3x3 cell and that
cell holds more of the colour than any other cell, and its largest 4-connected component there has >= MIN_PX
pixels (so scattered noise pixels do not count). Shape from the bounding-box fill ratio of the largest
4-connected component of that colour in the cell: >= 0.9 square, >= 0.65 circle, else triangle.
Background: the majority palette label of the border pixels (outer 2-px ring).
Whole scene: every object colour+position+shape ok and the background ok.
"""
import numpy as np

from scenes import CELL, COLOURS, PALETTE

MAX_DIST = 75.0
MIN_PX = 8
PAL = np.array([PALETTE[c] for c in COLOURS], np.float32)


def label(img):
    """uint8 [H,W,3] -> int [H,W] palette index or -1."""
    d = ((img.astype(np.float32)[:, :, None, :] - PAL[None, None]) ** 2).sum(-1)
    k = d.argmin(-1)
    return np.where(np.sqrt(d.min(-1)) <= MAX_DIST, k, -1)


def cell_slices(row, col):
    y0, y1 = int(round(row * CELL)), int(round((row + 1) * CELL))
    x0, x1 = int(round(col * CELL)), int(round((col + 1) * CELL))
    return slice(y0, y1), slice(x0, x1)


def largest_component(mask):
    """4-connected largest component of a boolean mask -> boolean mask."""
    h, w = mask.shape
    seen = np.zeros_like(mask)
    best = None
    best_n = 0
    for y in range(h):
        for x in range(w):
            if mask[y, x] and not seen[y, x]:
                stack = [(y, x)]
                seen[y, x] = True
                pts = []
                while stack:
                    cy, cx = stack.pop()
                    pts.append((cy, cx))
                    for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                        if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                            seen[ny, nx] = True
                            stack.append((ny, nx))
                if len(pts) > best_n:
                    best_n = len(pts)
                    best = pts
    out = np.zeros_like(mask)
    if best:
        ys, xs = zip(*best)
        out[list(ys), list(xs)] = True
    return out


def shape_of(mask):
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    fill = len(ys) / float((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1))
    return "square" if fill >= 0.9 else "circle" if fill >= 0.65 else "triangle"


def check(img, spec):
    """img uint8 [64,64,3], spec from scenes.py -> dict of per-object and scene results."""
    lab = label(img)
    border = np.concatenate([lab[:2].ravel(), lab[-2:].ravel(), lab[2:-2, :2].ravel(), lab[2:-2, -2:].ravel()])
    border = border[border >= 0]
    bg_ok = bool(len(border) and COLOURS[np.bincount(border, minlength=len(COLOURS)).argmax()] == spec["background"])
    objs = []
    for o in spec["objects"]:
        k = COLOURS.index(o["colour"])
        m = lab == k
        counts = {}
        for r in range(3):
            for c in range(3):
                sy, sx = cell_slices(r, c)
                counts[(r, c)] = int(m[sy, sx].sum())
        cell = tuple(o["cell"])
        pos_ok = counts[cell] >= MIN_PX and counts[cell] >= max(counts.values())
        shape = None
        if pos_ok:
            sy, sx = cell_slices(*cell)
            comp = largest_component(m[sy, sx])
            pos_ok = int(comp.sum()) >= MIN_PX  # a blob, not scattered noise pixels
            shape = shape_of(comp) if pos_ok else None
        objs.append({"colour_pos": bool(pos_ok), "shape": bool(pos_ok and shape == o["shape"]), "got_shape": shape})
    return {
        "objects": objs,
        "background": bg_ok,
        "scene": bool(bg_ok and all(x["shape"] for x in objs)),
    }


def score(imgs, specs):
    """-> dict(colour_pos, shape (per object), background, scene (per image)) fractions."""
    res = [check(i, s) for i, s in zip(imgs, specs)]
    objs = [o for r in res for o in r["objects"]]
    return {
        "colour_pos": float(np.mean([o["colour_pos"] for o in objs])),
        "shape": float(np.mean([o["shape"] for o in objs])),
        "background": float(np.mean([r["background"] for r in res])),
        "scene": float(np.mean([r["scene"] for r in res])),
    }, res


if __name__ == "__main__":
    import scenes

    rng = np.random.default_rng(7)
    specs = [scenes.random_spec(rng, full=True) for _ in range(400)]
    imgs = [scenes.render(s) for s in specs]
    sc, res = score(imgs, specs)
    print("ground truth:", sc)
    for s, r in zip(specs, res):
        if not r["scene"]:
            print(s["caption"], r)
