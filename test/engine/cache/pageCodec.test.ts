import { CacheEntry } from '../../../src/engine/cache/cacheTypes';
import { crc32, decodePage, encodePage, PageDecodeError } from '../../../src/engine/cache/pageCodec';

function sample(): Map<string, CacheEntry> {
  return new Map<string, CacheEntry>([
    ['down.0.resnet.0.conv1.in', { kind: 'full', shape: [2, 6, 3], rowAxis: 1, data: Uint16Array.from({ length: 36 }, (_, i) => i * 97) }],
    ['latents', { kind: 'delta', shape: [4, 6], rowAxis: 1, rows: Int32Array.of(1, 4, 5), data: Uint16Array.from({ length: 12 }, (_, i) => 0x3c00 + i) }],
    ['odd', { kind: 'full', shape: [3], rowAxis: 0, data: Uint16Array.of(1, 2, 3) }], // 6 bytes: the next blob must be re-aligned
    ['empty-delta', { kind: 'delta', shape: [5, 2], rowAxis: 0, rows: new Int32Array(0), data: new Uint16Array(0) }],
  ]);
}

describe('page codec', () => {
  test('round trip preserves every entry exactly', () => {
    const bytes = encodePage('node-1', 17, sample());
    const back = decodePage(bytes, 'node-1', 17);
    expect([...back.keys()]).toEqual([...sample().keys()]);
    for (const [name, e] of sample()) {
      const b = back.get(name)!;
      expect(b.kind).toBe(e.kind);
      expect(b.shape).toEqual(e.shape);
      expect(b.rowAxis).toBe(e.rowAxis);
      expect(Array.from(b.data)).toEqual(Array.from(e.data));
      if (e.kind === 'delta' && b.kind === 'delta') expect(Array.from(b.rows)).toEqual(Array.from(e.rows));
    }
  });

  test('decodes from a misaligned buffer (a copy is made)', () => {
    const bytes = encodePage('n', 0, sample());
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    expect(decodePage(shifted.subarray(1), 'n', 0).get('odd')!.data[2]).toBe(3);
  });

  test('damage is detected with a reason: flipped byte, truncation, wrong page, garbage', () => {
    const bytes = encodePage('n', 2, sample());
    const flipped = bytes.slice();
    flipped[flipped.length - 3] ^= 1;
    expect(() => decodePage(flipped, 'n', 2)).toThrow(/checksum mismatch/);
    expect(() => decodePage(bytes.subarray(0, bytes.length - 10), 'n', 2)).toThrow(/checksum mismatch/);
    expect(() => decodePage(bytes.subarray(0, 20), 'n', 2)).toThrow(PageDecodeError);
    expect(() => decodePage(bytes, 'n', 3)).toThrow(/expected node "n" step 3/);
    expect(() => decodePage(bytes, 'm', 2)).toThrow(/expected node "m"/);
    expect(() => decodePage(Uint8Array.of(1, 2, 3), 'n', 2)).toThrow(/shorter than the 16-byte preamble/);
    expect(() => decodePage(new Uint8Array(64), 'n', 2)).toThrow(/bad magic/);
  });

  test('crc32 matches the standard check value', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
  });
});
