// Masks a user draws: a PNG the size of the image, white (or opaque) where the edit may change things.
// Reading: luminance × alpha, threshold at 50 % (≥ 128 of 255), then down to latent resolution with
// "any pixel of the factor × factor patch → active" (the VAE's 8×8 patches for SD; other factors for
// other VAEs). Writing (--save-mask): a latent mask scaled back up to the image as a black/white PNG.

import * as fs from 'node:fs';
import sharp from 'sharp';
import { BinaryMask, checkMask, downsampleAny, MaskError, upsampleNearest } from './binaryMask';

export class UserMaskError extends Error {
  constructor(readonly file: string, readonly reason: string) {
    super(`${file}: ${reason}`);
    this.name = 'UserMaskError';
  }
}

export interface UserMaskOptions {
  /** The image's size in pixels; the mask must match it exactly. */
  imageWidth: number;
  imageHeight: number;
  /** Image pixels per latent pixel along each axis (SD's VAE: 8). */
  factor: number;
}

/**
 * Pure part of readUserMask: RGBA pixels (8 bit, row-major, 4 per pixel) → image-resolution mask.
 * A pixel is active iff luma(r, g, b) · alpha / 255 ≥ 127.5, luma = 0.299 r + 0.587 g + 0.114 b
 * (ITU-R BT.601); so black or transparent = keep, white and opaque = edit.
 */
export function maskFromRgba(rgba: Uint8Array, width: number, height: number): BinaryMask {
  if (rgba.length !== width * height * 4) throw new MaskError('maskFromRgba', `expected ${width}x${height}x4 bytes, got ${rgba.length}`);
  const data = new Uint8Array(width * height);
  for (let p = 0; p < data.length; p++) {
    const o = p * 4;
    const luma = 0.299 * rgba[o] + 0.587 * rgba[o + 1] + 0.114 * rgba[o + 2];
    data[p] = (luma * rgba[o + 3]) / 255 >= 127.5 ? 1 : 0;
  }
  return { width, height, data };
}

/** Read a PNG (or any format sharp reads) mask and return it at latent resolution. */
export async function readUserMask(file: string, opts: UserMaskOptions): Promise<BinaryMask> {
  const { imageWidth: W, imageHeight: H, factor } = opts;
  if (!Number.isInteger(factor) || factor < 1 || W % factor || H % factor) {
    throw new UserMaskError(file, `image ${W}x${H} is not divisible by the latent factor ${factor}`);
  }
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new UserMaskError(file, `cannot read the mask file: ${(e as Error).message}`);
  }
  let raw: { data: Buffer; info: sharp.OutputInfo };
  try {
    // ensureAlpha: every pixel arrives as 8-bit RGBA whatever the file's own layout (grey, RGB, 16 bit).
    raw = await sharp(bytes).toColourspace('srgb').ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new UserMaskError(file, `not a readable image: ${(e as Error).message}`);
  }
  const { width, height, channels } = raw.info;
  if (width !== W || height !== H) throw new UserMaskError(file, `mask is ${width}x${height}, the image is ${W}x${H}`);
  if (channels !== 4) throw new UserMaskError(file, `decoded to ${channels} channels, expected RGBA`);
  const full = maskFromRgba(new Uint8Array(raw.data.buffer, raw.data.byteOffset, raw.data.length), width, height);
  return downsampleAny(full, factor);
}

/** Write a mask as an 8-bit greyscale PNG (active = 255), scaled up by an integer factor (nearest). */
export async function writeMaskPng(mask: BinaryMask, file: string, factor = 1): Promise<void> {
  checkMask('writeMaskPng', mask);
  const big = upsampleNearest(mask, factor);
  const grey = Buffer.from(big.data.map((v) => v * 255));
  try {
    await sharp(grey, { raw: { width: big.width, height: big.height, channels: 1 } }).png().toFile(file);
  } catch (e) {
    throw new UserMaskError(file, `cannot write the mask PNG: ${(e as Error).message}`);
  }
}
