// Reference renders of scene specs (same geometry as training/scenes.py), for the contact sheet's
// "what was asked" row. 2× supersampled, box-averaged to 64×64.
import { PALETTE } from './sceneSpec';

export interface RenderableObject {
  colour: string;
  shape: string;
  size: string;
  cell: [number, number];
  jitter: [number, number];
}

const IMG = 64;
const SS = 2;
const CELL = IMG / 3;
const HALF_EXTENT: Record<string, number> = { small: 5.5, medium: 7.0, large: 9.0 };

export function renderScene(objects: RenderableObject[], background: string): Uint8Array {
  const n = IMG * SS;
  const acc = new Float32Array(n * n * 3);
  const bg = PALETTE[background];
  for (let i = 0; i < n * n; i++) acc.set(bg, i * 3);
  for (const o of objects) {
    const r = HALF_EXTENT[o.size];
    const margin = CELL / 2 - r - 1.0;
    const cx = (o.cell[1] + 0.5) * CELL + o.jitter[0] * margin;
    const cy = (o.cell[0] + 0.5) * CELL + o.jitter[1] * margin;
    const col = PALETTE[o.colour];
    for (let y = 0; y < n; y++) {
      const yy = (y + 0.5) / SS;
      for (let x = 0; x < n; x++) {
        const xx = (x + 0.5) / SS;
        let inside: boolean;
        if (o.shape === 'circle') inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r;
        else if (o.shape === 'square') inside = Math.abs(xx - cx) <= r && Math.abs(yy - cy) <= r;
        else {
          const t = (yy - (cy - r)) / (2 * r); // 0 at the apex, 1 at the base
          inside = t >= 0 && t <= 1 && Math.abs(xx - cx) <= t * r;
        }
        if (inside) acc.set(col, (y * n + x) * 3);
      }
    }
  }
  const out = new Uint8Array(IMG * IMG * 3);
  for (let y = 0; y < IMG; y++) {
    for (let x = 0; x < IMG; x++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let dy = 0; dy < SS; dy++) for (let dx = 0; dx < SS; dx++) s += acc[((y * SS + dy) * n + x * SS + dx) * 3 + c];
        out[(y * IMG + x) * 3 + c] = Math.min(255, Math.max(0, Math.round(s / (SS * SS))));
      }
    }
  }
  return out;
}
