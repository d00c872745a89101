// A user-drawn edit mask arrives as a base64 PNG. It is decoded with a pixel limit (a small PNG can
// inflate to gigabytes) and must match the image size; white (>0) marks the area that may change.

import sharp from 'sharp';
import { BadUserInputError } from '../errors';

/** Largest base64 mask string accepted (≈ 750 KB of PNG). */
export const MAX_MASK_BASE64 = 1_000_000;

export interface DecodedMask {
  data: Uint8Array;
  width: number;
  height: number;
  /** Fraction of pixels marked (> 127). */
  fraction: number;
}

export async function decodeMask(base64: string, width: number, height: number): Promise<DecodedMask> {
  const s = base64.replace(/^data:image\/png;base64,/, '');
  if (s.length > MAX_MASK_BASE64) throw new BadUserInputError('mask', `is ${s.length} base64 characters; at most ${MAX_MASK_BASE64}`);
  if (!/^[A-Za-z0-9+/\r\n]*={0,2}$/.test(s)) throw new BadUserInputError('mask', 'is not base64');
  const bytes = Buffer.from(s, 'base64');
  if (bytes.length < 8 || bytes.readUInt32BE(0) !== 0x89504e47) throw new BadUserInputError('mask', 'is not a PNG');
  let raw: { data: Buffer; info: sharp.OutputInfo };
  try {
    raw = await sharp(bytes, { limitInputPixels: width * height, failOn: 'error' }).removeAlpha().greyscale().raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new BadUserInputError('mask', `cannot decode the PNG (${(e as Error).message.split('\n')[0]})`);
  }
  if (raw.info.width !== width || raw.info.height !== height) {
    throw new BadUserInputError('mask', `is ${raw.info.width}×${raw.info.height}; it must be ${width}×${height}, the image size`);
  }
  const data = new Uint8Array(raw.data.buffer, raw.data.byteOffset, width * height);
  let marked = 0;
  for (let i = 0; i < data.length; i++) if (data[i] > 127) marked++;
  return { data, width, height, fraction: marked / data.length };
}
