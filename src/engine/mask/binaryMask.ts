// A binary mask on a pixel grid: the shared currency of src/engine/mask.
// data[y * width + x] is 1 where the pixel is active (will be recomputed) and 0 elsewhere; row-major,
// no other values allowed. Resolution is whatever the producer says (latent pixels, attention pixels, …).

export interface BinaryMask {
  width: number;
  height: number;
  /** Length width × height, values 0 or 1, row-major (index y * width + x). */
  data: Uint8Array;
}

export class MaskError extends Error {
  constructor(readonly where: string, readonly reason: string) {
    super(`${where}: ${reason}`);
    this.name = 'MaskError';
  }
}

export function emptyMask(width: number, height: number): BinaryMask {
  checkSize('emptyMask', width, height);
  return { width, height, data: new Uint8Array(width * height) };
}

export function checkSize(where: string, width: number, height: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new MaskError(where, `size must be positive integers, got ${width}x${height}`);
  }
}

/** Throws unless m is a well-formed BinaryMask (right length, only 0/1). */
export function checkMask(where: string, m: BinaryMask): void {
  checkSize(where, m.width, m.height);
  if (m.data.length !== m.width * m.height) {
    throw new MaskError(where, `mask data has ${m.data.length} values, expected ${m.width}x${m.height} = ${m.width * m.height}`);
  }
  for (let i = 0; i < m.data.length; i++) {
    if (m.data[i] > 1) throw new MaskError(where, `mask value ${m.data[i]} at index ${i}; only 0 and 1 are allowed`);
  }
}

export function countActive(m: BinaryMask): number {
  let n = 0;
  for (let i = 0; i < m.data.length; i++) n += m.data[i];
  return n;
}

/** Active pixels / all pixels, in [0, 1]. */
export function activeFraction(m: BinaryMask): number {
  return countActive(m) / (m.width * m.height);
}

/** Grow by an integer factor: each pixel becomes a factor × factor block (nearest neighbour). */
export function upsampleNearest(m: BinaryMask, factor: number): BinaryMask {
  if (!Number.isInteger(factor) || factor < 1) throw new MaskError('upsampleNearest', `factor must be a positive integer, got ${factor}`);
  const W = m.width * factor;
  const H = m.height * factor;
  const out = new Uint8Array(W * H);
  for (let y = 0; y < H; y++) {
    const src = ((y / factor) | 0) * m.width;
    for (let x = 0; x < W; x++) out[y * W + x] = m.data[src + ((x / factor) | 0)];
  }
  return { width: W, height: H, data: out };
}

/**
 * Shrink by an integer factor: a coarse pixel is active if ANY pixel of its factor × factor patch is
 * (the sparse engine must recompute a coarse pixel as soon as one of its children changes).
 */
export function downsampleAny(m: BinaryMask, factor: number): BinaryMask {
  if (!Number.isInteger(factor) || factor < 1) throw new MaskError('downsampleAny', `factor must be a positive integer, got ${factor}`);
  if (m.width % factor || m.height % factor) {
    throw new MaskError('downsampleAny', `mask ${m.width}x${m.height} is not divisible by ${factor}`);
  }
  const w = m.width / factor;
  const h = m.height / factor;
  const out = new Uint8Array(w * h);
  for (let y = 0; y < m.height; y++) {
    const row = y * m.width;
    const orow = ((y / factor) | 0) * w;
    for (let x = 0; x < m.width; x++) if (m.data[row + x]) out[orow + ((x / factor) | 0)] = 1;
  }
  return { width: w, height: h, data: out };
}
