// DeviceEntryTier's bookkeeping on stand-in tensors (the WebGPU path itself: test/engine/device/):
// byte budget, least-recently-used eviction of whole nodes, shared tensors released once, a step too
// large for the budget not kept, and lookups that need every named entry.
import { DeviceEntryTier, deviceTensorBytes } from '../../../src/engine/cache/deviceEntryTier';
import type { DeviceTensor } from '../../../src/engine/runtime/ortSession';

function fake(elements: number): DeviceTensor & { freed: number } {
  const t = { dims: [1, elements], dtype: 'float16', freed: 0, release() { t.freed++; } };
  return t as unknown as DeviceTensor & { freed: number };
}
const step = (entries: Record<string, DeviceTensor>) => new Map(Object.entries(entries));

describe('DeviceEntryTier', () => {
  test('bytes follow the tensors (fp16: 2 bytes an element)', () => {
    expect(deviceTensorBytes(fake(10))).toBe(20);
    const tier = new DeviceEntryTier(1000);
    tier.put('a', 0, step({ x: fake(10), y: fake(5) }));
    expect(tier.stats.bytes).toBe(30);
    expect(tier.stats.nodes).toBe(1);
  });

  test('a lookup needs every named entry; hits and misses are counted', () => {
    const tier = new DeviceEntryTier(1000);
    const x = fake(10);
    tier.put('a', 0, step({ x }));
    expect(tier.get('a', 0, ['x'])!.get('x')).toBe(x);
    expect(tier.get('a', 0, ['x', 'y'])).toBeNull();
    expect(tier.get('a', 1, ['x'])).toBeNull();
    expect(tier.get('b', 0, ['x'])).toBeNull();
    expect(tier.stats).toMatchObject({ hits: 1, misses: 3 });
  });

  test('past the budget the least recently used node goes, whole, and its tensors are released', () => {
    const tier = new DeviceEntryTier(100);
    const a = [fake(10), fake(10)];
    tier.put('a', 0, step({ x: a[0] }));
    tier.put('a', 1, step({ x: a[1] }));
    const b = fake(10);
    tier.put('b', 0, step({ x: b }));
    tier.get('a', 0, ['x']); // a is now the most recent
    const c = fake(20);
    tier.put('c', 0, step({ x: c })); // 40 + 20 + 40 = 100: fits
    expect(tier.stats.nodes).toBe(3);
    const d = fake(5);
    tier.put('d', 0, step({ x: d })); // 110 > 100: b (least recent) goes
    expect(tier.has('b')).toBe(false);
    expect(b.freed).toBe(1);
    expect(a.map((t) => t.freed)).toEqual([0, 0]);
    expect(tier.stats.bytes).toBe(40 + 40 + 10);
  });

  test('a tensor shared by two nodes (a child reuses its parent statistics) is released with the last of them', () => {
    const tier = new DeviceEntryTier(1000);
    const stats = fake(4);
    tier.put('parent', 0, step({ mean: stats, k: fake(10) }));
    tier.put('child', 0, step({ mean: stats, k: fake(10) }));
    expect(tier.stats.bytes).toBe(8 + 20 + 20);
    tier.drop('parent');
    expect(stats.freed).toBe(0);
    expect(tier.get('child', 0, ['mean', 'k'])).not.toBeNull();
    tier.drop('child');
    expect(stats.freed).toBe(1);
    expect(tier.stats.bytes).toBe(0);
  });

  test('an edit never evicts the parent it is reading: its own step is dropped instead', () => {
    const tier = new DeviceEntryTier(60);
    tier.put('parent', 0, step({ k: fake(20) }));
    tier.put('parent', 1, step({ k: fake(5) }));
    expect(tier.get('parent', 0, ['k'])).not.toBeNull();
    const child = fake(20);
    tier.put('child', 0, step({ k: child })); // 50 + 40 > 60, and the parent is the node being read
    expect(tier.has('parent')).toBe(true);
    expect(tier.has('child')).toBe(false);
    expect(child.freed).toBe(1);
    expect(tier.stats.bytes).toBe(50);
  });

  test('a step that does not fit even alone is not kept (the host cache serves it)', () => {
    const tier = new DeviceEntryTier(50);
    const small = fake(10);
    tier.put('a', 0, step({ x: small }));
    const big = fake(100);
    tier.put('b', 0, step({ x: big }));
    expect(big.freed).toBe(1);
    expect(small.freed).toBe(1); // evicted while making room, before the step was found too large
    expect(tier.has('b')).toBe(false);
    expect(tier.stats.bytes).toBe(0);
  });

  test('replacing a step releases the old tensors; release() empties the tier', () => {
    const tier = new DeviceEntryTier(1000);
    const old = fake(10);
    tier.put('a', 0, step({ x: old }));
    const fresh = fake(10);
    tier.put('a', 0, step({ x: fresh }));
    expect(old.freed).toBe(1);
    expect(tier.stats.bytes).toBe(20);
    tier.release();
    expect(fresh.freed).toBe(1);
    expect(tier.stats).toMatchObject({ nodes: 0, bytes: 0 });
  });
});
