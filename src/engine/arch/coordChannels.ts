// Coordinate input channels (UNet config `coord_channels`, a FISEdit extension; SD folders have none).
// With coord_channels 2, conv_in sees each latent pixel's x and y besides its latent channels (CoordConv):
//   x = (2j + 1) / width − 1,  y = (2i + 1) / height − 1   (pixel centres, in [−1, 1])
// They give a model's layers a position signal that is linear in x and y from the first layer on, for the
// bundled model's training (its scenes are left-right symmetric apart from the caption, and it never learnt
// "left" from "right": training/README.md). Both graphs build the planes themselves, so every caller still
// feeds plain latents: the dense graph from the sample's shape, the sparse step from the pyramid feed's
// coordinate rows of the active pixels.

import { GraphBuilder } from '../graph/graphBuilder';

/** The only coordinate layout defined: x then y. */
export const COORD_CHANNELS = 2;

/** Coordinate of pixel index i along an axis of `size` pixels (its centre, in [−1, 1]). */
export function pixelCoord(i: number, size: number): number {
  return (2 * i + 1) / size - 1;
}

/** [N, 2] (x, y) rows of row-major pixel indices of a height×width grid. */
export function coordRows(pixels: Int32Array, height: number, width: number): Float32Array {
  const out = new Float32Array(pixels.length * COORD_CHANNELS);
  pixels.forEach((p, k) => {
    out[2 * k] = pixelCoord(p % width, width);
    out[2 * k + 1] = pixelCoord(Math.floor(p / width), height);
  });
  return out;
}

/** One axis' coordinates [size] from a 0-d int64 size, computed in the graph (the latent size is dynamic). */
function axisCoords(g: GraphBuilder, size: string): string {
  const idx = g.op('Cast', [g.op('Range', [g.constI64([0], 'zero', []), size, g.constI64([1], 'one', [])])], { to: 1 }); // [n] f32
  const n = g.op('Cast', [size], { to: 1 });
  const two = g.constF32([2], [], 'two');
  const one = g.constF32([1], [], 'one_f');
  return g.op('Sub', [g.op('Div', [g.op('Add', [g.op('Mul', [idx, two]), one]), n]), one]);
}

/** sample [B, C, H, W] → [B, C + 2, H, W] with the x and y planes appended. */
export function appendCoordPlanes(g: GraphBuilder, sample: string): string {
  return g.scope('coord_planes', () => {
    const shape = g.op('Shape', [sample]); // [4] int64
    const dim = (i: number) => g.op('Gather', [shape, g.constI64([i], 'axis', [])], { axis: 0 }); // 0-d
    const xs = g.op('Reshape', [axisCoords(g, dim(3)), g.constI64([1, 1, 1, -1])]); // [1,1,1,W]
    const ys = g.op('Reshape', [axisCoords(g, dim(2)), g.constI64([1, 1, -1, 1])]); // [1,1,H,1]
    const full = g.op('Concat', [g.op('Slice', [shape, g.constI64([0]), g.constI64([1])]), g.constI64([1]), g.op('Slice', [shape, g.constI64([2]), g.constI64([4])])], { axis: 0 }); // [B,1,H,W]
    return g.op('Concat', [sample, g.op('Expand', [xs, full]), g.op('Expand', [ys, full])], { axis: 1 });
  });
}

/** rows [B, N, C] → [B, N, C + 2] with each row's (x, y) from coords [N, 2] (the pyramid feed's level-0 rows). */
export function appendCoordRows(g: GraphBuilder, rows: string, coords: string): string {
  return g.scope('coord_rows', () => {
    const batch = g.op('Slice', [g.op('Shape', [rows]), g.constI64([0]), g.constI64([1])]); // [1]
    const target = g.op('Concat', [batch, g.constI64([1, 1])], { axis: 0 }); // [B,1,1]
    const perRow = g.op('Expand', [g.op('Unsqueeze', [coords, g.constI64([0])]), target]); // [B,N,2]
    return g.op('Concat', [rows, perRow], { axis: 2 });
  });
}
