// A contact sheet: tiles in a grid, each framed green (all correct) or red, upscaled for viewing.
import sharp from 'sharp';

export interface SheetTile {
  rgb: Uint8Array;
  width: number;
  height: number;
  /** true → green frame, false → red frame, null → grey frame (reference). */
  ok: boolean | null;
}

export async function writeContactSheet(file: string, rows: SheetTile[][], scale = 2): Promise<void> {
  const pad = 3;
  const tw = Math.max(...rows.flat().map((t) => t.width)) * scale;
  const th = Math.max(...rows.flat().map((t) => t.height)) * scale;
  const cols = Math.max(...rows.map((r) => r.length));
  const W = cols * (tw + 2 * pad);
  const H = rows.length * (th + 2 * pad);
  const composites: sharp.OverlayOptions[] = [];
  for (let r = 0; r < rows.length; r++) {
    for (let c = 0; c < rows[r].length; c++) {
      const t = rows[r][c];
      const frame = t.ok === null ? [160, 160, 160] : t.ok ? [30, 200, 60] : [230, 30, 30];
      const left = c * (tw + 2 * pad);
      const top = r * (th + 2 * pad);
      composites.push({
        input: { create: { width: tw + 2 * pad, height: th + 2 * pad, channels: 3, background: { r: frame[0], g: frame[1], b: frame[2] } } },
        left,
        top,
      });
      const tile = await sharp(Buffer.from(t.rgb), { raw: { width: t.width, height: t.height, channels: 3 } })
        .resize(tw, th, { kernel: 'nearest' }) // every tile fills its cell, whatever its size
        .png()
        .toBuffer();
      composites.push({ input: tile, left: left + pad, top: top + pad });
    }
  }
  await sharp({ create: { width: W, height: H, channels: 3, background: { r: 255, g: 255, b: 255 } } })
    .composite(composites)
    .png()
    .toFile(file);
}
