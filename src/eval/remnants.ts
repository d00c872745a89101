// Remnants of the replaced object: pixels of the edited object's old look that an edit left behind. An
// edit whose region is too small keeps a ring of the parent's object — its soft edge, where red on white
// decodes to orange and yellow — beside the new one. Counted against the dense regeneration of the edited
// prompt from the same seed (what the user would get by regenerating): a pixel is a remnant when
//   - it lies on the parent's edited object: the parent's blobs of the object's colour that the edit's
//     affected region touches, grown by the soft edge (2 px at 64², scaled with the image);
//   - the child shows an OLD colour there: for a colour edit any object colour but the new one and the
//     background; for a shape edit the object's own colour (the old shape's pixels);
//   - the dense regeneration shows no such colour there.
import type { BinaryMask } from '../engine/mask/binaryMask';
import { labelPixels } from './scoreScene';
import { COLOURS } from './sceneSpec';

export interface RemnantCase {
  /** The edited object's colour in the parent, and in the edited prompt (the same for a shape edit). */
  oldColour: string;
  newColour: string;
  /** The scene's background colour, or null when the caption names none (then the parent's border decides). */
  background: string | null;
}

function colourIndex(c: string): number {
  const k = COLOURS.indexOf(c);
  if (k < 0) throw new RangeError(`remnantPixels: unknown colour ${JSON.stringify(c)}`);
  return k;
}

/** Most frequent label of the outer 2-px ring (scaled), the way scoreScene finds the background. */
function borderLabel(lab: Int8Array, w: number, h: number): number {
  const counts = new Map<number, number>();
  const ring = Math.max(1, Math.round((2 * w) / 64));
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (y >= ring && y < h - ring && x >= ring && x < w - ring) continue;
      const k = lab[y * w + x];
      if (k >= 0) counts.set(k, (counts.get(k) ?? 0) + 1);
    }
  }
  let best = -1;
  for (const [k, n] of counts) if (best < 0 || n > counts.get(best)!) best = k;
  return best;
}

/** All images HWC uint8 of w × h; affected = the image-resolution mask of the pixels the edit decoded. */
export function remnantPixels(parent: Uint8Array, child: Uint8Array, dense: Uint8Array, w: number, h: number, c: RemnantCase, affected: BinaryMask): number {
  if (affected.width !== w || affected.height !== h) throw new RangeError(`remnantPixels: affected mask is ${affected.width}x${affected.height}, images are ${w}x${h}`);
  const oldK = colourIndex(c.oldColour);
  const newK = colourIndex(c.newColour);
  const lp = labelPixels(parent, w, h);
  const lc = labelPixels(child, w, h);
  const ld = labelPixels(dense, w, h);
  const bg = c.background === null ? borderLabel(lp, w, h) : colourIndex(c.background);
  const shapeEdit = oldK === newK;
  const isOld = (k: number) => (shapeEdit ? k === oldK : k >= 0 && k !== bg && k !== newK);

  // The parent's object: its colour's 4-connected blobs that the affected region touches.
  const object = new Uint8Array(w * h);
  const seen = new Uint8Array(w * h);
  for (let start = 0; start < w * h; start++) {
    if (lp[start] !== oldK || seen[start]) continue;
    const blob: number[] = [];
    const stack = [start];
    seen[start] = 1;
    let touched = false;
    while (stack.length) {
      const p = stack.pop()!;
      blob.push(p);
      if (affected.data[p]) touched = true;
      const x = p % w;
      const y = (p - x) / w;
      for (const q of [y > 0 ? p - w : -1, y < h - 1 ? p + w : -1, x > 0 ? p - 1 : -1, x < w - 1 ? p + 1 : -1]) {
        if (q >= 0 && lp[q] === oldK && !seen[q]) {
          seen[q] = 1;
          stack.push(q);
        }
      }
    }
    if (touched) for (const p of blob) object[p] = 1;
  }
  // Its soft edge: the blend pixels around the labelled blob (square neighbourhood).
  const r = Math.max(1, Math.round((2 * w) / 64));
  let n = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = y * w + x;
      if (!isOld(lc[p]) || isOld(ld[p])) continue;
      let near = false;
      for (let dy = -r; dy <= r && !near; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= h) continue;
        for (let dx = -r; dx <= r; dx++) {
          const xx = x + dx;
          if (xx >= 0 && xx < w && object[yy * w + xx]) {
            near = true;
            break;
          }
        }
      }
      if (near) n++;
    }
  }
  return n;
}
