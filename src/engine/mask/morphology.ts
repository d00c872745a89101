// Binary morphology with square k×k structuring elements, and connected-component cleaning.
//
// Convention (Minkowski / scipy.ndimage, stated because libraries disagree for even k):
//   B = {−a … k−1−a}², a = ⌊k/2⌋          (k = 2: B = {−1, 0}²; k = 3: B = {−1, 0, 1}²)
//   erode(m)(p)  = 1 iff m(p + b) = 1 for every b ∈ B with p + b inside the image
//   dilate(m)(p) = 1 iff m(p − b) = 1 for some  b ∈ B with p − b inside the image
// Pixels outside the image are ignored (never erode from the border, never dilate in from it), as
// OpenCV's default border values do. Erosion is bit-identical to cv.erode. cv.dilate does NOT reflect B,
// so for even k OpenCV's opening (FISEdit's cv.erode + cv.dilate with a 2×2 kernel) is this opening
// shifted by one pixel towards +x, +y. We keep the reflected form: opening ⊆ mask and closing ⊇ mask
// hold for every k, which a mask that must cover the edited region needs.
// Square elements are separable: a 1×k pass then a k×1 pass.

import { BinaryMask, checkMask, MaskError } from './binaryMask';

function checkKernel(where: string, k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new MaskError(where, `kernel size must be a positive integer, got ${k}`);
}

/**
 * One separable pass along x (axis 0) or y (axis 1). For each output pixel p the window is
 * p + [lo, hi] along the axis, clipped to the image; 'all' = erosion (min), 'any' = dilation (max).
 * The window slides with a count of the pixels that decide (0s for 'all', 1s for 'any'): one read and
 * one drop per pixel whatever k is (an edit's found mask grows by a 2·px+1 square).
 */
function pass(src: Uint8Array, w: number, h: number, axis: 0 | 1, lo: number, hi: number, mode: 'all' | 'any'): Uint8Array {
  const out = new Uint8Array(w * h);
  const len = axis === 0 ? w : h;
  const stride = axis === 0 ? 1 : w;
  const lines = axis === 0 ? h : w;
  const lineStride = axis === 0 ? w : 1;
  const decides = mode === 'all' ? 0 : 1;
  for (let l = 0; l < lines; l++) {
    const base = l * lineStride;
    // count of deciding pixels in [max(0, i + lo), min(len − 1, i + hi)], starting at i = 0
    let count = 0;
    for (let j = Math.max(0, lo); j <= Math.min(len - 1, hi); j++) if (src[base + j * stride] === decides) count++;
    for (let i = 0; i < len; i++) {
      if (i > 0) {
        const enter = i + hi;
        const leave = i - 1 + lo;
        if (enter >= 0 && enter < len && src[base + enter * stride] === decides) count++;
        if (leave >= 0 && leave < len && src[base + leave * stride] === decides) count--;
      }
      out[base + i * stride] = count > 0 ? decides : 1 - decides;
    }
  }
  return out;
}

export function erode(m: BinaryMask, k: number): BinaryMask {
  checkKernel('erode', k);
  const a = Math.floor(k / 2);
  const x = pass(m.data, m.width, m.height, 0, -a, k - 1 - a, 'all');
  return { width: m.width, height: m.height, data: pass(x, m.width, m.height, 1, -a, k - 1 - a, 'all') };
}

export function dilate(m: BinaryMask, k: number): BinaryMask {
  checkKernel('dilate', k);
  const a = Math.floor(k / 2);
  const x = pass(m.data, m.width, m.height, 0, -(k - 1 - a), a, 'any');
  return { width: m.width, height: m.height, data: pass(x, m.width, m.height, 1, -(k - 1 - a), a, 'any') };
}

/** Opening: erode then dilate. Removes structures the k×k square does not fit in; result ⊆ m. */
export function open(m: BinaryMask, k: number): BinaryMask {
  return dilate(erode(m, k), k);
}

/** Closing: dilate then erode. Fills gaps narrower than k; result ⊇ m. */
export function close(m: BinaryMask, k: number): BinaryMask {
  return erode(dilate(m, k), k);
}

export type Connectivity = 4 | 8;

/**
 * Label the connected components of pixels equal to `value` (1 = foreground, 0 = background).
 * labels[i] = component id (0-based, in order of first pixel in row-major order) or −1.
 */
export function labelComponents(m: BinaryMask, connectivity: Connectivity = 8, value: 0 | 1 = 1): { labels: Int32Array; sizes: number[]; touchesBorder: boolean[] } {
  const { width: w, height: h, data } = m;
  const labels = new Int32Array(w * h).fill(-1);
  const sizes: number[] = [];
  const touchesBorder: boolean[] = [];
  const stack = new Int32Array(w * h);
  for (let start = 0; start < w * h; start++) {
    if (data[start] !== value || labels[start] !== -1) continue;
    const id = sizes.length;
    let size = 0;
    let border = false;
    let top = 0;
    stack[top++] = start;
    labels[start] = id;
    while (top > 0) {
      const p = stack[--top];
      size++;
      const px = p % w;
      const py = (p - px) / w;
      if (px === 0 || py === 0 || px === w - 1 || py === h - 1) border = true;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          if ((dx === 0 && dy === 0) || (connectivity === 4 && dx !== 0 && dy !== 0)) continue;
          const qx = px + dx;
          const qy = py + dy;
          if (qx < 0 || qy < 0 || qx >= w || qy >= h) continue;
          const q = qy * w + qx;
          if (data[q] === value && labels[q] === -1) {
            labels[q] = id;
            stack[top++] = q;
          }
        }
      }
    }
    sizes.push(size);
    touchesBorder.push(border);
  }
  return { labels, sizes, touchesBorder };
}

/** Drop foreground components with fewer than minPixels pixels ("specks"). */
export function removeSmallComponents(m: BinaryMask, minPixels: number, connectivity: Connectivity = 8): BinaryMask {
  const { labels, sizes } = labelComponents(m, connectivity, 1);
  const out = new Uint8Array(m.data.length);
  for (let i = 0; i < out.length; i++) out[i] = labels[i] >= 0 && sizes[labels[i]] >= minPixels ? 1 : 0;
  return { width: m.width, height: m.height, data: out };
}

/**
 * Fill holes: background components that do not touch the image border and have at most maxArea
 * pixels become foreground. Background connectivity defaults to 4 (the dual of 8-connected foreground).
 */
export function fillHoles(m: BinaryMask, maxArea = Infinity, connectivity: Connectivity = 4): BinaryMask {
  const { labels, sizes, touchesBorder } = labelComponents(m, connectivity, 0);
  const out = Uint8Array.from(m.data);
  for (let i = 0; i < out.length; i++) {
    const l = labels[i];
    if (l >= 0 && !touchesBorder[l] && sizes[l] <= maxArea) out[i] = 1;
  }
  return { width: m.width, height: m.height, data: out };
}

/** Cleaning recipe, applied in this order; each step is skipped when its field is absent or 0. */
export interface MaskCleanup {
  /** Opening kernel size (FISEdit: 2). */
  open?: number;
  /** Closing kernel size. */
  close?: number;
  /** Remove 8-connected foreground components smaller than this many pixels. */
  minComponent?: number;
  /** Fill enclosed holes (true = any size, a number = holes of at most that many pixels). */
  fillHoles?: boolean | number;
  /** Grow by this many pixels on every side (square kernel 2r+1). */
  dilate?: number;
}

export function cleanMask(m: BinaryMask, c: MaskCleanup): BinaryMask {
  checkMask('cleanMask', m);
  let out = m;
  if (c.open) out = open(out, c.open);
  if (c.close) out = close(out, c.close);
  if (c.minComponent) out = removeSmallComponents(out, c.minComponent);
  if (c.fillHoles) out = fillHoles(out, c.fillHoles === true ? Infinity : c.fillHoles);
  if (c.dilate) {
    if (!Number.isInteger(c.dilate) || c.dilate < 0) throw new MaskError('cleanMask', `dilate must be a non-negative integer radius, got ${c.dilate}`);
    out = dilate(out, 2 * c.dilate + 1);
  }
  return out;
}
