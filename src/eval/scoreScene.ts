// Objective scoring of a generated scene against its caption: colour segmentation to the palette,
// per-object colour-at-position and shape (bounding-box fill ratio), background colour.
// Thresholds match training/checker.py, which scores 100 % on reference renders.
import { COLOURS, PALETTE, SceneSpec, Shape } from './sceneSpec';

const MAX_DIST = 75; // RGB distance within which a pixel takes a palette label
const MIN_PX_AT_64 = 8; // smallest blob that counts, at 64×64 (scaled by area for other sizes)

export interface ObjectScore {
  colour: string;
  shape: Shape;
  /** Its colour forms a blob in its named cell, and that cell holds the most of that colour. */
  colourPosition: boolean;
  shapeCorrect: boolean;
  detectedShape: Shape | null;
  /**
   * Diagnostics beyond the reference checker: the colour forms a blob in the cell that holds the most of
   * it, wherever that is, and that cell as row·3 + col (null without a blob). colourAnywhere without
   * colourPosition = the right colour drawn in the wrong place.
   */
  colourAnywhere: boolean;
  detectedCell: number | null;
}

export interface SceneScore {
  objects: ObjectScore[];
  background: boolean | null;
  detectedBackground: string | null;
  allCorrect: boolean;
}

/** rgb: HWC uint8 → palette index per pixel, −1 where no palette colour is near. */
export function labelPixels(rgb: Uint8Array, w: number, h: number): Int8Array {
  const pal = COLOURS.map((c) => PALETTE[c]);
  const out = new Int8Array(w * h);
  for (let i = 0; i < w * h; i++) {
    let best = -1;
    let bestD = Infinity;
    for (let k = 0; k < pal.length; k++) {
      const dr = rgb[i * 3] - pal[k][0];
      const dg = rgb[i * 3 + 1] - pal[k][1];
      const db = rgb[i * 3 + 2] - pal[k][2];
      const d = dr * dr + dg * dg + db * db;
      if (d < bestD) {
        bestD = d;
        best = k;
      }
    }
    out[i] = Math.sqrt(bestD) <= MAX_DIST ? best : -1;
  }
  return out;
}

function cellBounds(row: number, col: number, w: number, h: number): [number, number, number, number] {
  // Python's round() is half-to-even; cell edges at k·64/3 never land on .5, so Math.round agrees.
  return [Math.round((row * h) / 3), Math.round(((row + 1) * h) / 3), Math.round((col * w) / 3), Math.round(((col + 1) * w) / 3)];
}

/** Largest 4-connected component of mask (cw×ch) → its pixel count and bounding-box fill ratio. */
export function largestComponent(mask: Uint8Array, cw: number, ch: number): { size: number; fill: number } {
  const seen = new Uint8Array(mask.length);
  let best = { size: 0, fill: 0 };
  const stack: number[] = [];
  for (let start = 0; start < mask.length; start++) {
    if (!mask[start] || seen[start]) continue;
    seen[start] = 1;
    stack.push(start);
    let n = 0;
    let x0 = cw, x1 = -1, y0 = ch, y1 = -1;
    while (stack.length) {
      const p = stack.pop()!;
      const y = Math.floor(p / cw);
      const x = p % cw;
      n++;
      x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
      const nb = [y > 0 ? p - cw : -1, y < ch - 1 ? p + cw : -1, x > 0 ? p - 1 : -1, x < cw - 1 ? p + 1 : -1];
      for (const q of nb) {
        if (q >= 0 && mask[q] && !seen[q]) {
          seen[q] = 1;
          stack.push(q);
        }
      }
    }
    if (n > best.size) best = { size: n, fill: n / ((x1 - x0 + 1) * (y1 - y0 + 1)) };
  }
  return best;
}

export function shapeFromFill(fill: number): Shape {
  return fill >= 0.9 ? 'square' : fill >= 0.65 ? 'circle' : 'triangle';
}

export function scoreScene(rgb: Uint8Array, w: number, h: number, spec: SceneSpec): SceneScore {
  const lab = labelPixels(rgb, w, h);
  const minPx = Math.max(2, Math.round((MIN_PX_AT_64 * w * h) / (64 * 64)));
  // 1. background: majority label of the outer 2-px ring
  const counts = new Array(COLOURS.length).fill(0);
  const ring = Math.max(1, Math.round((2 * w) / 64));
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (y >= ring && y < h - ring && x >= ring && x < w - ring) continue;
      const k = lab[y * w + x];
      if (k >= 0) counts[k]++;
    }
  }
  const maxCount = Math.max(...counts);
  const detectedBackground = maxCount > 0 ? COLOURS[counts.indexOf(maxCount)] : null;
  const background = spec.background === null ? null : detectedBackground === spec.background;
  // 2. objects
  const objects: ObjectScore[] = spec.objects.map((o) => {
    const k = COLOURS.indexOf(o.colour);
    const perCell: number[] = [];
    for (let r = 0; r < 3; r++) {
      for (let c = 0; c < 3; c++) {
        const [y0, y1, x0, x1] = cellBounds(r, c, w, h);
        let n = 0;
        for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) if (lab[y * w + x] === k) n++;
        perCell.push(n);
      }
    }
    const bestIdx = perCell.indexOf(Math.max(...perCell));
    // A blob of the colour in cell idx, if it holds the most of that colour: its shape, else null.
    const blobIn = (idx: number): Shape | null => {
      if (perCell[idx] < minPx || perCell[idx] < perCell[bestIdx]) return null;
      const [y0, y1, x0, x1] = cellBounds(Math.floor(idx / 3), idx % 3, w, h);
      const cw = x1 - x0;
      const ch = y1 - y0;
      const m = new Uint8Array(cw * ch);
      for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) m[y * cw + x] = lab[(y0 + y) * w + x0 + x] === k ? 1 : 0;
      const comp = largestComponent(m, cw, ch);
      return comp.size >= minPx ? shapeFromFill(comp.fill) : null; // a blob, not scattered noise pixels
    };
    // Without a named place the object's cell is wherever most of its colour is.
    const cellIdx = o.cell ? o.cell[0] * 3 + o.cell[1] : bestIdx;
    const detectedShape = blobIn(cellIdx);
    const ok = detectedShape !== null;
    const anywhere = ok || (cellIdx !== bestIdx && blobIn(bestIdx) !== null);
    const detectedCell = ok ? cellIdx : anywhere ? bestIdx : null;
    return { colour: o.colour, shape: o.shape, colourPosition: ok, shapeCorrect: ok && detectedShape === o.shape, detectedShape, colourAnywhere: anywhere, detectedCell };
  });
  const allCorrect = background !== false && objects.every((o) => o.shapeCorrect);
  return { objects, background, detectedBackground, allCorrect };
}

export interface AccuracySummary {
  images: number;
  objects: number;
  colourPosition: number;
  /** Named colour drawn as a blob somewhere (ObjectScore.colourAnywhere). */
  colourAnywhere: number;
  shape: number;
  background: number;
  scene: number;
}

export function summarise(scores: SceneScore[]): AccuracySummary {
  const objs = scores.flatMap((s) => s.objects);
  const bgs = scores.filter((s) => s.background !== null);
  const frac = (n: number, d: number) => (d === 0 ? 0 : n / d);
  return {
    images: scores.length,
    objects: objs.length,
    colourPosition: frac(objs.filter((o) => o.colourPosition).length, objs.length),
    colourAnywhere: frac(objs.filter((o) => o.colourAnywhere).length, objs.length),
    shape: frac(objs.filter((o) => o.shapeCorrect).length, objs.length),
    background: frac(bgs.filter((s) => s.background).length, bgs.length),
    scene: frac(scores.filter((s) => s.allCorrect).length, scores.length),
  };
}
