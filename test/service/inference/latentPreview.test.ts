import sharp from 'sharp';
import { fitLatentRgbMap, latentColourSamples, latentsToRgb, previewDataUrl, SD15_LATENT_RGB } from '../../../src/service/inference/latentPreview';

describe('latent → RGB previews', () => {
  it('applies the SD 1.5 factors per pixel: rgb = Σ z·M, then (x+1)/2·255 clamped', () => {
    // Two pixels, 4 channels, planar [C, 1, 2].
    const z = new Float32Array([1, 0, /* ch1 */ 0, 0, /* ch2 */ 0, 0, /* ch3 */ 0, -1]);
    const rgb = latentsToRgb(z, 4, 1, 2, SD15_LATENT_RGB);
    const expected = (v: number) => Math.round(Math.min(1, Math.max(0, (v + 1) / 2)) * 255);
    expect(Array.from(rgb)).toEqual([
      expected(0.3512), expected(0.2297), expected(0.3227),
      expected(0.212), expected(0.2616), expected(0.7177),
    ]);
  });

  it('fits a known linear map from noisy samples within 1e-2', () => {
    const C = 4;
    const truth = { factors: [[0.5, -0.2, 0.1], [0.0, 0.4, -0.3], [0.25, 0.25, 0.25], [-0.6, 0.1, 0.2]], bias: [0.1, -0.05, 0.02] };
    const n = 2000;
    const z = new Float32Array(n * C);
    const rgb = new Float32Array(n * 3);
    let s = 12345;
    const rand = () => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff) * 2 - 1;
    for (let i = 0; i < n; i++) {
      for (let l = 0; l < C; l++) z[i * C + l] = rand();
      for (let c = 0; c < 3; c++) {
        let v = truth.bias[c] + 0.001 * rand();
        for (let l = 0; l < C; l++) v += z[i * C + l] * truth.factors[l][c];
        rgb[i * 3 + c] = v;
      }
    }
    const fit = fitLatentRgbMap(z, rgb, C);
    for (let l = 0; l < C; l++) for (let c = 0; c < 3; c++) expect(Math.abs(fit.factors[l][c] - truth.factors[l][c])).toBeLessThan(1e-2);
    for (let c = 0; c < 3; c++) expect(Math.abs(fit.bias[c] - truth.bias[c])).toBeLessThan(1e-2);
  });

  it('pairs each latent pixel with the mean colour of the pixels it covers', () => {
    // latents [1, 1, 2] (C=1, h=1, w=2), image [3, 2, 4] with scale 2.
    const lat = new Float32Array([0.5, -0.5]);
    const img = new Float32Array(3 * 2 * 4);
    for (let c = 0; c < 3; c++) for (let y = 0; y < 2; y++) for (let x = 0; x < 4; x++) img[c * 8 + y * 4 + x] = x < 2 ? 0.2 * (c + 1) : -0.1;
    const { z, rgb } = latentColourSamples(lat, img, 1, 1, 2, 2);
    expect(Array.from(z)).toEqual([0.5, -0.5]);
    expect(Array.from(rgb).map((v) => Math.round(v * 1000) / 1000)).toEqual([0.2, 0.4, 0.6, -0.1, -0.1, -0.1]);
  });

  it('encodes a WebP data URL at most maxSide pixels on the long side', async () => {
    const z = new Float32Array(4 * 8 * 16).map((_, i) => Math.sin(i));
    const url = await previewDataUrl(z, 4, 8, 16, SD15_LATENT_RGB, 128, 64, { maxSide: 64 });
    expect(url).toMatch(/^data:image\/webp;base64,/);
    const meta = await sharp(Buffer.from(url.split(',')[1], 'base64')).metadata();
    expect(meta.format).toBe('webp');
    expect([meta.width, meta.height]).toEqual([64, 32]);
  });
});

describe('decoder previews (issue 15 item 5)', () => {
  it('turns the decoder output [3, H, W] in [−1, 1] into interleaved 8-bit RGB, clamped', async () => {
    const { decodedToRgb } = await import('../../../src/service/inference/latentPreview');
    // 2×1 image: pixel 0 white-ish, pixel 1 out of range and NaN.
    const img = new Float32Array([1, -3, /* G */ 0, 2, /* B */ -1, NaN]);
    expect(Array.from(decodedToRgb(img, 2, 1))).toEqual([255, 128, 0, 0, 255, 0]);
    expect(() => decodedToRgb(img, 3, 1)).toThrow(RangeError);
  });

  it('decodes previews when a decode costs at most a fifth of the preview interval (at least 250 ms)', async () => {
    const { previewDecodeBudgetMs } = await import('../../../src/service/inference/latentPreview');
    expect(previewDecodeBudgetMs(0)).toBe(50);
    expect(previewDecodeBudgetMs(1000)).toBe(200);
  });
});
