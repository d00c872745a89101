// Step previews without the VAE: a linear map from the C latent channels to RGB at latent resolution,
// then upscaled and encoded as a small WebP data URL (graphql-ws carries JSON only).
//
//   rgb[c] = bias[c] + Σ_l z[l]·M[l][c]        z: model-space latents [C, h, w] (what the UNet sees)
//   pixel  = clamp((rgb + 1) / 2, 0, 1) · 255
//
// SD 1.x (4 latent channels, VAE ×8, scaling 0.18215) uses ComfyUI's published SD1.5 factors
// (comfy/latent_formats.py, shared/reference/ecosystem.md §7.1). Other models (our bundled model and
// the test fixtures have their own VAEs) get a map fitted once at load: decode a few random latents with
// the real VAE and solve least squares from each latent pixel to the mean colour of the pixels it covers.
// Previews are taken from the current latents x_t (the engine's step callback), not the x0 estimate, so
// early steps look noisy; they sharpen as t → 0.

import sharp from 'sharp';

export interface LatentRgbMap {
  /** C rows of [r, g, b]. */
  factors: number[][];
  bias: [number, number, number];
  source: 'sd15' | 'fitted';
}

export const SD15_LATENT_RGB: LatentRgbMap = {
  factors: [
    [0.3512, 0.2297, 0.3227],
    [0.325, 0.4974, 0.235],
    [-0.2829, 0.1762, 0.2721],
    [-0.212, -0.2616, -0.7177],
  ],
  bias: [0, 0, 0],
  source: 'sd15',
};

export function looksLikeSd(latentChannels: number, vaeScaleFactor: number, scalingFactor: number): boolean {
  return latentChannels === 4 && vaeScaleFactor === 8 && Math.abs(scalingFactor - 0.18215) < 1e-4;
}

/** latents [C, h, w] (batch 1, NCHW flat) → interleaved RGB [h, w, 3]. */
export function latentsToRgb(latents: Float32Array, channels: number, h: number, w: number, map: LatentRgbMap): Uint8Array {
  const plane = h * w;
  if (latents.length !== channels * plane) throw new RangeError(`latentsToRgb: expected ${channels}·${h}·${w} values, got ${latents.length}`);
  if (map.factors.length !== channels) throw new RangeError(`latentsToRgb: the map has ${map.factors.length} rows for ${channels} channels`);
  const out = new Uint8Array(plane * 3);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      let v = map.bias[c];
      for (let l = 0; l < channels; l++) v += latents[l * plane + p] * map.factors[l][c];
      const x = Number.isFinite(v) ? Math.min(1, Math.max(0, (v + 1) / 2)) : 0;
      out[p * 3 + c] = Math.round(x * 255);
    }
  }
  return out;
}

/**
 * Least-squares fit of rgb ≈ bias + z·M from samples: z [N, C] latent vectors, rgb [N, 3] in [−1, 1].
 * Solves the (C+1)×(C+1) normal equations by Gaussian elimination with partial pivoting (C is 4–16).
 */
export function fitLatentRgbMap(z: Float32Array, rgb: Float32Array, channels: number): LatentRgbMap {
  const n = z.length / channels;
  if (!Number.isInteger(n) || rgb.length !== n * 3) throw new RangeError(`fitLatentRgbMap: ${z.length} latent values and ${rgb.length} colour values do not pair up`);
  const k = channels + 1; // features: C channels + 1 (bias)
  const ata = Array.from({ length: k }, () => new Float64Array(k));
  const atb = Array.from({ length: k }, () => new Float64Array(3));
  const x = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < channels; a++) x[a] = z[i * channels + a];
    x[channels] = 1;
    for (let a = 0; a < k; a++) {
      for (let b = 0; b < k; b++) ata[a][b] += x[a] * x[b];
      for (let c = 0; c < 3; c++) atb[a][c] += x[a] * rgb[i * 3 + c];
    }
  }
  for (let a = 0; a < k; a++) ata[a][a] += 1e-6 * n; // ridge: a channel that never varies stays solvable
  // Elimination on [ata | atb].
  for (let col = 0; col < k; col++) {
    let pivot = col;
    for (let r = col + 1; r < k; r++) if (Math.abs(ata[r][col]) > Math.abs(ata[pivot][col])) pivot = r;
    [ata[col], ata[pivot]] = [ata[pivot], ata[col]];
    [atb[col], atb[pivot]] = [atb[pivot], atb[col]];
    const d = ata[col][col];
    for (let r = 0; r < k; r++) {
      if (r === col) continue;
      const f = ata[r][col] / d;
      if (f === 0) continue;
      for (let c2 = col; c2 < k; c2++) ata[r][c2] -= f * ata[col][c2];
      for (let c = 0; c < 3; c++) atb[r][c] -= f * atb[col][c];
    }
  }
  const sol = atb.map((row, a) => Array.from(row, (v) => v / ata[a][a]));
  return { factors: sol.slice(0, channels), bias: [sol[channels][0], sol[channels][1], sol[channels][2]], source: 'fitted' };
}

/**
 * Pairs each latent pixel with the mean decoded colour of the s×s image pixels it covers.
 * latents [C, h, w]; image [3, h·s, w·s] in ~[−1, 1] (the VAE decoder's output) → samples for the fit.
 */
export function latentColourSamples(latents: Float32Array, image: Float32Array, channels: number, h: number, w: number, s: number): { z: Float32Array; rgb: Float32Array } {
  const plane = h * w;
  const H = h * s;
  const W = w * s;
  const z = new Float32Array(plane * channels);
  const rgb = new Float32Array(plane * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = y * w + x;
      for (let l = 0; l < channels; l++) z[p * channels + l] = latents[l * plane + p];
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let dy = 0; dy < s; dy++) for (let dx = 0; dx < s; dx++) sum += image[c * H * W + (y * s + dy) * W + (x * s + dx)];
        rgb[p * 3 + c] = Math.min(1, Math.max(-1, sum / (s * s)));
      }
    }
  }
  return { z, rgb };
}

export interface PreviewOptions {
  /** Longest side of the preview in pixels (default 256; never larger than the image). */
  maxSide?: number;
  /** WebP quality 1–100 (default 60). */
  quality?: number;
}

/** latents [C, h, w] → data:image/webp;base64,… at most maxSide pixels on the long side. */
export async function previewDataUrl(
  latents: Float32Array,
  channels: number,
  h: number,
  w: number,
  map: LatentRgbMap,
  imageWidth: number,
  imageHeight: number,
  opts: PreviewOptions = {},
): Promise<string> {
  return rgbPreviewDataUrl(latentsToRgb(latents, channels, h, w, map), w, h, imageWidth, imageHeight, opts);
}

/** The VAE decoder's output [3, H, W] in ~[−1, 1] → interleaved 8-bit RGB [H, W, 3] (as the engine's images). */
export function decodedToRgb(image: Float32Array, width: number, height: number): Uint8Array {
  const plane = width * height;
  if (image.length !== 3 * plane) throw new RangeError(`decodedToRgb: expected 3·${height}·${width} values, got ${image.length}`);
  const out = new Uint8Array(plane * 3);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const v = image[c * plane + p];
      out[p * 3 + c] = Number.isFinite(v) ? Math.round(Math.min(1, Math.max(0, (v + 1) / 2)) * 255) : 0;
    }
  }
  return out;
}

/** Interleaved RGB [h, w, 3] → data:image/webp;base64,… at most maxSide pixels on the long side. */
export async function rgbPreviewDataUrl(rgb: Uint8Array, w: number, h: number, imageWidth: number, imageHeight: number, opts: PreviewOptions = {}): Promise<string> {
  const maxSide = Math.min(opts.maxSide ?? 256, Math.max(imageWidth, imageHeight));
  const scale = maxSide / Math.max(imageWidth, imageHeight);
  const outW = Math.max(1, Math.round(imageWidth * scale));
  const outH = Math.max(1, Math.round(imageHeight * scale));
  const webp = await sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width: w, height: h, channels: 3 } })
    .resize(outW, outH, { kernel: 'cubic', fit: 'fill' })
    .webp({ quality: opts.quality ?? 60 })
    .toBuffer();
  return `data:image/webp;base64,${webp.toString('base64')}`;
}

/**
 * How step previews are drawn for a model. 'decode': the model's own VAE decoder, for models whose decode
 * is cheap against the preview interval; a linear map cannot follow such a small VAE: on the bundled model
 * the best least-squares map from latents to its own decodes, fitted on 16 of its generations, still drew
 * a white background as (169, 153, 126), 30/255 off on average, and the map fitted to random latents drew
 * it orange (208, 112, 51), 75/255 off. 'map': a linear map (SD's published fit; others fitted to the
 * model's decodes of random latents, cached beside the model state) where decoding costs too much.
 */
export type PreviewRenderer = { kind: 'decode'; decodeMs: number } | { kind: 'map'; map: LatentRgbMap; decodeMs: number };

/** Share of the preview interval a preview decode may cost (at most one preview per interval). */
export const PREVIEW_DECODE_SHARE = 0.2;
/** The interval the share is taken of, at least (previews may be asked for at every step). */
export const PREVIEW_DECODE_MIN_INTERVAL_MS = 250;

/** Decode previews with the VAE when one decode costs at most this, ms. */
export function previewDecodeBudgetMs(previewIntervalMs: number): number {
  return PREVIEW_DECODE_SHARE * Math.max(previewIntervalMs, PREVIEW_DECODE_MIN_INTERVAL_MS);
}
