// remnantPixels (src/eval/remnants.ts) on drawn scenes whose remnants are known by construction.
import { remnantPixels } from '../../src/eval/remnants';
import { PALETTE } from '../../src/eval/sceneSpec';

const W = 64;
type Rgb = readonly [number, number, number];

function scene(draw: (x: number, y: number) => Rgb | null, bg: Rgb = PALETTE.white): Uint8Array {
  const out = new Uint8Array(W * W * 3);
  for (let y = 0; y < W; y++) for (let x = 0; x < W; x++) out.set(draw(x, y) ?? bg, 3 * (y * W + x));
  return out;
}
const r2 = (x: number, y: number, cx: number, cy: number) => (x - cx) ** 2 + (y - cy) ** 2;
const disc = (cx: number, cy: number, r: number, c: Rgb) => (x: number, y: number) => (r2(x, y, cx, cy) <= r * r ? c : null);
const all = { width: W, height: W, data: new Uint8Array(W * W).fill(1) };

test('a ring of the old colour left around the new object is counted pixel by pixel; a clean edit has none', () => {
  const parent = scene(disc(20, 20, 8, PALETTE.red));
  const dense = scene(disc(20, 20, 8, PALETTE.green));
  // The edit recoloured the disc but kept a 1-px ring (r 8..9) of orange, the soft edge of red on white.
  let ring = 0;
  const child = scene((x, y) => {
    const d = r2(x, y, 20, 20);
    if (d <= 64) return PALETTE.green;
    if (d <= 81) {
      ring++;
      return PALETTE.orange;
    }
    return null;
  });
  const c = { oldColour: 'red', newColour: 'green', background: 'white' };
  expect(ring).toBeGreaterThan(0);
  expect(remnantPixels(parent, child, dense, W, W, c, all)).toBe(ring);
  expect(remnantPixels(parent, dense, dense, W, W, c, all)).toBe(0);
  // Pixels the dense regeneration also shows in an old colour are not the edit's fault.
  expect(remnantPixels(parent, child, child, W, W, c, all)).toBe(0);
  // Without a named background the parent's border decides it (white here).
  expect(remnantPixels(parent, child, dense, W, W, { ...c, background: null }, all)).toBe(ring);
});

test('only the edited object counts: another object of the old colour that the edit did not touch is not a remnant', () => {
  const red = disc(20, 20, 6, PALETTE.red);
  const otherRed = disc(48, 48, 6, PALETTE.red);
  const parent = scene((x, y) => red(x, y) ?? otherRed(x, y));
  // The edit forgot the whole first disc (a remnant of its full area) and the dense regeneration moved the other one.
  const child = parent;
  const dense = scene(disc(20, 20, 6, PALETTE.green));
  const affected = { width: W, height: W, data: new Uint8Array(W * W) };
  for (let y = 10; y < 30; y++) for (let x = 10; x < 30; x++) affected.data[y * W + x] = 1;
  let area = 0;
  for (let y = 0; y < W; y++) for (let x = 0; x < W; x++) if (r2(x, y, 20, 20) <= 36) area++;
  expect(remnantPixels(parent, child, dense, W, W, { oldColour: 'red', newColour: 'green', background: 'white' }, affected)).toBe(area);
});

test('shape edits: pixels of the object colour where the old shape was and the dense regeneration has none', () => {
  const square = (x: number, y: number) => (x >= 12 && x < 28 && y >= 12 && y < 28 ? PALETTE.blue : null);
  const circle = disc(20, 20, 8, PALETTE.blue);
  const parent = scene(square);
  const dense = scene(circle);
  let corners = 0;
  for (let y = 12; y < 28; y++) for (let x = 12; x < 28; x++) if (r2(x, y, 20, 20) > 64) corners++;
  const c = { oldColour: 'blue', newColour: 'blue', background: 'white' };
  expect(remnantPixels(parent, parent, dense, W, W, c, all)).toBe(corners);
  expect(remnantPixels(parent, dense, dense, W, W, c, all)).toBe(0);
});
