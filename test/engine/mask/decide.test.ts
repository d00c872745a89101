import { decideEditMode } from '../../../src/engine/mask/decide';

const mask = (active: number, total = 100) => ({ width: total, height: 1, data: Uint8Array.from({ length: total }, (_, i) => (i < active ? 1 : 0)) });

describe('decideEditMode', () => {
  test('empty → PARENT, small → SPARSE, above the cut-off → DENSE with the reason', () => {
    expect(decideEditMode(mask(0)).mode).toBe('PARENT');
    const s = decideEditMode(mask(25));
    expect(s).toMatchObject({ mode: 'SPARSE', fraction: 0.25 });
    const d = decideEditMode(mask(61));
    expect(d).toMatchObject({ mode: 'DENSE', fraction: 0.61 });
    expect(d.reason).toMatch(/61\.0 % of the image, above the 60\.0 %/);
    expect(decideEditMode(mask(60)).mode).toBe('SPARSE');
  });

  test('the cut-off is configurable and validated', () => {
    expect(decideEditMode(mask(25), { denseAboveFraction: 0.2 }).mode).toBe('DENSE');
    expect(decideEditMode(mask(100), { denseAboveFraction: 1 }).mode).toBe('SPARSE');
    expect(() => decideEditMode(mask(5), { denseAboveFraction: 0 })).toThrow(/\(0, 1\]/);
    expect(() => decideEditMode({ width: 2, height: 1, data: Uint8Array.from([0, 2]) })).toThrow(/only 0 and 1/);
  });
});
