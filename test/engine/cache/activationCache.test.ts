import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ActivationCache } from '../../../src/engine/cache/activationCache';
import { CacheRead, CacheUsageError } from '../../../src/engine/cache/cacheTypes';
import { DirectorySpillStore } from '../../../src/engine/cache/directorySpillStore';
import { CacheSpillStore, MemorySpillStore } from '../../../src/engine/cache/spillStore';

const halves = (n: number, seed: number) => Uint16Array.from({ length: n }, (_, i) => (i * 131 + seed * 7919) & 0xffff);
const PAGE = 8 * 4 * 2; // one [8, 4] fp16 entry = 64 bytes

function ok(r: CacheRead): Extract<CacheRead, { ok: true }> {
  if (!r.ok) throw new Error(`expected a hit, got: ${r.miss.message}`);
  return r;
}
function missOf(r: CacheRead) {
  if (r.ok) throw new Error('expected a miss');
  return r.miss;
}

// Naive overlay written independently of rows.ts: element by element through explicit indices.
function overlay(base: Uint16Array, shape: number[], rowAxis: number, deltas: Array<{ rows: number[]; data: Uint16Array }>): Uint16Array {
  const out = base.slice();
  const outer = shape.slice(0, rowAxis).reduce((a, b) => a * b, 1);
  const R = shape[rowAxis];
  const inner = shape.slice(rowAxis + 1).reduce((a, b) => a * b, 1);
  for (const d of deltas) {
    d.rows.forEach((row, k) => {
      for (let o = 0; o < outer; o++) for (let c = 0; c < inner; c++) out[(o * R + row) * inner + c] = d.data[(o * d.rows.length + k) * inner + c];
    });
  }
  return out;
}

describe('ActivationCache: deltas', () => {
  test('three generations resolve through the chain (CFG layout [2, R, C], rowAxis 1)', async () => {
    const cache = new ActivationCache({ budgetBytes: Infinity });
    const shape = [2, 8, 3];
    const root = halves(48, 1);
    const d1 = { rows: [1, 3, 6], data: halves(2 * 3 * 3, 2) };
    const d2 = { rows: [3, 4], data: halves(2 * 2 * 3, 3) };
    await cache.createNode('root', null);
    await cache.createNode('child', 'root');
    await cache.createNode('grand', 'child');
    for (const step of [0, 1]) {
      await cache.putFull('root', step, 'conv.in', { shape, rowAxis: 1, data: root });
      await cache.putFull('root', step, 'gn.stats', { shape: [2, 6], rowAxis: 1, data: halves(12, 9) });
      await cache.putDelta('child', step, 'conv.in', { shape, rowAxis: 1, rows: Int32Array.from(d1.rows), data: d1.data });
      await cache.putDelta('grand', step, 'conv.in', { shape, rowAxis: 1, rows: Int32Array.from(d2.rows), data: d2.data });
    }
    const g = ok(await cache.readRows('grand', 1, 'conv.in'));
    expect(g.chain).toEqual(['grand', 'child', 'root']);
    expect(g.shape).toEqual(shape);
    expect(Array.from(g.data)).toEqual(Array.from(overlay(root, shape, 1, [d1, d2])));
    // Row 3 was rewritten by both generations: the grandchild wins.
    expect(g.data[3 * 3]).toBe(d2.data[0]);
    const into = new Uint16Array(48).fill(7);
    const viaInto = ok(await cache.readRows('grand', 1, 'conv.in', { into }));
    expect(viaInto.data).toBe(into);
    expect(Array.from(into)).toEqual(Array.from(g.data));
    await expect(cache.readRows('grand', 1, 'conv.in', { into: new Uint16Array(47) })).rejects.toThrow(/into has 47 values/);
    const c = ok(await cache.readRows('child', 0, 'conv.in'));
    expect(Array.from(c.data)).toEqual(Array.from(overlay(root, shape, 1, [d1])));
    // The root's own data was not touched by the overlays, and a full read is the stored array itself.
    const r = ok(await cache.readRows('root', 0, 'conv.in'));
    expect(r.data).toBe(root);
    expect(Array.from(root)).toEqual(Array.from(halves(48, 1)));
    // An entry the children never recorded is inherited from the root.
    const gn = ok(await cache.readRows('grand', 0, 'gn.stats'));
    expect(gn.chain).toEqual(['root']);
    expect(cache.entryNames('grand', 0)).toEqual(['conv.in', 'gn.stats']);
    expect(cache.stats()).toMatchObject({ hits: 5, misses: 0 });
  });

  test('a child may record full entries (its dense steps): they cut the chain', async () => {
    const cache = new ActivationCache({ budgetBytes: Infinity });
    await cache.createNode('r', null);
    await cache.createNode('c', 'r');
    await cache.putFull('r', 0, 'x', { shape: [8, 4], data: halves(32, 1) });
    await cache.putFull('c', 0, 'x', { shape: [8, 4], data: halves(32, 2) });
    const got = ok(await cache.readRows('c', 0, 'x'));
    expect(got.chain).toEqual(['c']);
    expect(got.data[5]).toBe(halves(32, 2)[5]);
  });

  test('misuse is a CacheUsageError with the reason', async () => {
    const cache = new ActivationCache({ budgetBytes: Infinity });
    await cache.createNode('r', null);
    await cache.createNode('c', 'r');
    await cache.putFull('r', 0, 'x', { shape: [8, 4], data: halves(32, 1) });
    const delta = (rows: number[], shape = [8, 4]) => ({ shape, rows: Int32Array.from(rows), data: halves(rows.length * shape[1], 1) });
    await expect(cache.createNode('d', 'nobody')).rejects.toThrow(/base node nobody of d is unknown/);
    await expect(cache.createNode('r', 'c')).rejects.toThrow(/exists with base null/);
    await expect(cache.createNode('../x', null)).rejects.toThrow(CacheUsageError);
    await expect(cache.putFull('ghost', 0, 'x', { shape: [8, 4], data: halves(32, 1) })).rejects.toThrow(/node ghost is unknown/);
    await expect(cache.putFull('r', 0, 'x', { shape: [8, 4], data: halves(31, 1) })).rejects.toThrow(/31 values, shape \[8, 4\] needs 32/);
    await expect(cache.putFull('r', -1, 'x', { shape: [8, 4], data: halves(32, 1) })).rejects.toThrow(/non-negative integer/);
    await expect(cache.putDelta('r', 0, 'x', delta([1]))).rejects.toThrow(/has no base node/);
    await expect(cache.putDelta('c', 0, 'y', delta([1]))).rejects.toThrow(/no node of r holds "y" at step 0/);
    await expect(cache.putDelta('c', 0, 'x', delta([1], [4, 8]))).rejects.toThrow(/differs from the base's \[8, 4\]/);
    await expect(cache.putDelta('c', 0, 'x', delta([3, 1]))).rejects.toThrow(/strictly increasing/);
    await expect(cache.putDelta('c', 0, 'x', delta([8]))).rejects.toThrow(/outside 0\.\.7/);
    await expect(cache.putDelta('c', 0, 'x', { shape: [8, 4], rows: Int32Array.of(1, 2), data: halves(4, 1) })).rejects.toThrow(/2 rows/);
    expect(() => cache.pin('ghost')).toThrow(/unknown/);
    // The queue survives rejected operations.
    expect(ok(await cache.readRows('r', 0, 'x')).data.length).toBe(32);
  });
});

describe('ActivationCache: budget and LRU', () => {
  test('evicts the least recently used page; reads count as use', async () => {
    const cache = new ActivationCache({ budgetBytes: 3 * PAGE });
    await cache.createNode('a', null);
    for (const s of [0, 1, 2]) await cache.putFull('a', s, 'x', { shape: [8, 4], data: halves(32, s) });
    ok(await cache.readRows('a', 0, 'x')); // order now 1, 2, 0
    await cache.putFull('a', 3, 'x', { shape: [8, 4], data: halves(32, 3) }); // evicts 1
    expect(cache.stats()).toMatchObject({ residentBytes: 3 * PAGE, evictions: 1, droppedPages: 1 });
    const m = missOf(await cache.readRows('a', 1, 'x'));
    expect(m).toMatchObject({ node: 'a', missingNode: 'a', step: 1, reason: 'evicted' });
    expect(m.message).toMatch(/cache of node a at step 1 was evicted \(budget 0\.0 MiB\): no spill store/);
    await cache.putFull('a', 4, 'x', { shape: [8, 4], data: halves(32, 4) }); // evicts 2 (0 was read after it)
    expect(missOf(await cache.readRows('a', 2, 'x')).reason).toBe('evicted');
    for (const s of [0, 3, 4]) expect(ok(await cache.readRows('a', s, 'x')).data[0]).toBe(halves(32, s)[0]);
    expect(cache.stats()).toMatchObject({ hits: 4, misses: 2, evictions: 2 });
  });

  test('resident bytes never exceed the budget over a random workload', async () => {
    const budget = 5 * PAGE + 17;
    const cache = new ActivationCache({ budgetBytes: budget });
    await cache.createNode('r', null);
    let a = 12345;
    const rand = () => ((a = (Math.imul(a, 1103515245) + 12345) >>> 0) / 2 ** 32);
    for (let i = 0; i < 200; i++) {
      const step = Math.floor(rand() * 12);
      if (rand() < 0.6) await cache.putFull('r', step, `e${Math.floor(rand() * 2)}`, { shape: [8, 4], data: halves(32, i) });
      else await cache.readRows('r', step, 'e0');
      expect(cache.stats().residentBytes).toBeLessThanOrEqual(budget);
    }
    const s = cache.stats();
    expect(s.nodes[0].residentBytes).toBe(s.residentBytes);
    expect(s.evictions).toBeGreaterThan(0);
  });

  test('replacing an entry re-counts its bytes', async () => {
    const cache = new ActivationCache({ budgetBytes: Infinity });
    await cache.createNode('r', null);
    await cache.putFull('r', 0, 'x', { shape: [8, 4], data: halves(32, 1) });
    await cache.putFull('r', 0, 'x', { shape: [4, 4], data: halves(16, 2) });
    expect(cache.stats().residentBytes).toBe(32);
    expect(ok(await cache.readRows('r', 0, 'x')).shape).toEqual([4, 4]);
  });

  test('evicting a parent makes its children unresolvable, with a message that says so', async () => {
    const cache = new ActivationCache({ budgetBytes: 2 * PAGE });
    await cache.createNode('p', null);
    await cache.createNode('c', 'p');
    await cache.putFull('p', 0, 'x', { shape: [8, 4], data: halves(32, 1) });
    await cache.putDelta('c', 0, 'x', { shape: [8, 4], rows: Int32Array.of(2), data: halves(4, 2) });
    expect(cache.check('c', [0])).toEqual({ ok: true });
    await cache.createNode('other', null);
    await cache.putFull('other', 0, 'y', { shape: [8, 4], data: halves(32, 3) }); // pushes p out
    const m = missOf(await cache.readRows('c', 0, 'x'));
    expect(m).toMatchObject({ node: 'c', missingNode: 'p', reason: 'evicted' });
    expect(m.message).toMatch(/node c builds on it \(its entries are deltas over node p's\), so it cannot be resolved either/);
    const check = cache.check('c', [0, 1], ['x']);
    expect(check.ok).toBe(false);
    if (!check.ok) {
      expect(check.misses.map((x) => [x.step, x.reason, x.missingNode])).toEqual([[0, 'evicted', 'p'], [1, 'not-recorded', 'p']]);
    }
  });

  test('pinning keeps an edit\'s chain resident; the budget is soft until release', async () => {
    const cache = new ActivationCache({ budgetBytes: 2 * PAGE });
    await cache.createNode('p', null);
    await cache.createNode('c', 'p');
    await cache.createNode('o', null);
    await cache.putFull('p', 0, 'x', { shape: [8, 4], data: halves(32, 1) });
    const release = cache.pin('c'); // pins c and p
    await cache.putDelta('c', 0, 'x', { shape: [8, 4], rows: Int32Array.of(2), data: halves(4, 2) });
    await cache.putFull('o', 0, 'y', { shape: [8, 4], data: halves(32, 3) }); // o is the only unpinned page: it goes
    expect(missOf(await cache.readRows('o', 0, 'y')).reason).toBe('evicted');
    await cache.putFull('p', 1, 'x', { shape: [8, 4], data: halves(32, 4) }); // over budget, all pinned
    expect(cache.stats().overBudgetEvents).toBeGreaterThan(0);
    expect(cache.stats().residentBytes).toBeGreaterThan(2 * PAGE);
    expect(ok(await cache.readRows('c', 0, 'x')).chain).toEqual(['c', 'p']);
    release();
    release(); // idempotent
    await cache.readRows('p', 1, 'x'); // any later operation sees the budget enforced
    expect(cache.stats().residentBytes).toBeLessThanOrEqual(2 * PAGE);
  });

  test('deleteNode removes the node and everything built on it', async () => {
    const spill = new MemorySpillStore();
    const cache = new ActivationCache({ budgetBytes: Infinity, spill });
    await cache.createNode('r', null);
    await cache.createNode('c', 'r');
    await cache.createNode('g', 'c');
    await cache.createNode('s', 'r');
    await cache.putFull('r', 0, 'x', { shape: [8, 4], data: halves(32, 1) });
    await cache.putDelta('g', 0, 'x', { shape: [8, 4], rows: Int32Array.of(0), data: halves(4, 1) });
    await cache.persist();
    expect((await cache.deleteNode('c')).sort()).toEqual(['c', 'g']);
    expect(cache.hasNode('g')).toBe(false);
    expect(missOf(await cache.readRows('g', 0, 'x')).reason).toBe('unknown-node');
    expect(ok(await cache.readRows('s', 0, 'x')).chain).toEqual(['r']);
    expect((await spill.listNodes()).map((n) => n.node)).toEqual(['r', 's']);
    expect(cache.stats().residentBytes).toBe(PAGE);
  });
});

describe.each([
  ['memory', async () => ({ spill: new MemorySpillStore() as CacheSpillStore, dir: '' })],
  ['directory', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cache-spill-'));
    return { spill: new DirectorySpillStore(dir) as CacheSpillStore, dir };
  }],
])('ActivationCache with a %s spill store', (_name, make) => {
  let spill: CacheSpillStore;
  let dir: string;
  beforeEach(async () => ({ spill, dir } = await make()));
  afterEach(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  async function threeGenerations(cache: ActivationCache): Promise<Map<string, Uint16Array>> {
    const expected = new Map<string, Uint16Array>();
    await cache.createNode('r', null);
    await cache.createNode('c', 'r');
    await cache.createNode('g', 'c');
    for (let step = 0; step < 3; step++) {
      const base = halves(64, step);
      const d1 = { rows: [0, 5], data: halves(2 * 2 * 4, 10 + step) };
      const d2 = { rows: [5, 7], data: halves(2 * 2 * 4, 20 + step) };
      await cache.putFull('r', step, 'x', { shape: [2, 8, 4], rowAxis: 1, data: base });
      await cache.putDelta('c', step, 'x', { shape: [2, 8, 4], rowAxis: 1, rows: Int32Array.from(d1.rows), data: d1.data });
      await cache.putDelta('g', step, 'x', { shape: [2, 8, 4], rowAxis: 1, rows: Int32Array.from(d2.rows), data: d2.data });
      expected.set(`r/${step}`, base);
      expected.set(`c/${step}`, overlay(base, [2, 8, 4], 1, [d1]));
      expected.set(`g/${step}`, overlay(base, [2, 8, 4], 1, [d1, d2]));
    }
    return expected;
  }

  test('evicted pages spill and come back on demand, bit for bit', async () => {
    const cache = new ActivationCache({ budgetBytes: 2 * 128, spill });
    const expected = await threeGenerations(cache);
    for (const [key, want] of expected) {
      const [node, step] = key.split('/');
      expect(Array.from(ok(await cache.readRows(node, Number(step), 'x')).data)).toEqual(Array.from(want));
      expect(cache.stats().residentBytes).toBeLessThanOrEqual(2 * 128);
    }
    const s = cache.stats();
    expect(s.droppedPages).toBe(0);
    expect(s.spilledPages).toBeGreaterThan(0);
    expect(s.spillLoads).toBeGreaterThan(0);
    expect(s.nodes.map((n) => n.residentBytes + n.spilledBytes)).toEqual([3 * 128, 3 * (32 + 8), 3 * (32 + 8)]); // delta: 2 rows × [2, 4] fp16 + 2 int32 indices
  });

  test('persist, then open a new cache on the same store: every node resolves', async () => {
    const first = new ActivationCache({ budgetBytes: Infinity, spill });
    const expected = await threeGenerations(first);
    await first.persist();
    const second = await ActivationCache.open({ budgetBytes: 256, spill });
    expect(second.restoreWarnings).toEqual([]);
    expect(second.chain('g')).toEqual(['g', 'c', 'r']);
    expect(second.check('g', [0, 1, 2], ['x'])).toEqual({ ok: true });
    for (const [key, want] of expected) {
      const [node, step] = key.split('/');
      expect(Array.from(ok(await second.readRows(node, Number(step), 'x')).data)).toEqual(Array.from(want));
    }
    expect(second.entryNames('g', 0)).toEqual(['x']);
    // A delta written in the new process is validated against the restored base.
    await expect(second.putDelta('g', 0, 'x', { shape: [8, 8], rowAxis: 1, rows: Int32Array.of(1), data: halves(8, 1) })).rejects.toThrow(/differs from the base's/);
  });

  test('a damaged page found only after a restart: check() cannot see it, the read reports it', async () => {
    const first = new ActivationCache({ budgetBytes: Infinity, spill });
    await threeGenerations(first);
    await first.persist();
    const r0 = await spill.readPage('r', 0);
    if (!r0.ok) throw new Error('page should exist');
    await spill.writePage('r', 0, r0.bytes.subarray(0, r0.bytes.length - 5)); // truncated
    const second = await ActivationCache.open({ budgetBytes: Infinity, spill });
    expect(second.check('g', [0], ['x'])).toEqual({ ok: true }); // index only: unread pages are assumed fine
    expect(second.stats().spilledBytes).toBeGreaterThan(0);
    const m = missOf(await second.readRows('g', 0, 'x'));
    expect(m).toMatchObject({ reason: 'spill-corrupt', missingNode: 'r' });
    expect(second.check('g', [0], ['x'])).toMatchObject({ ok: false, misses: [{ reason: 'spill-corrupt', missingNode: 'r' }] });
    expect(ok(await second.readRows('g', 1, 'x')).chain).toEqual(['g', 'c', 'r']);
  });

  test('a missing or damaged spilled page is a miss with the reason, never an exception', async () => {
    const cache = new ActivationCache({ budgetBytes: 0, spill }); // everything spills at once
    await threeGenerations(cache);
    expect(cache.stats().residentBytes).toBe(0);
    await spill.deletePage('r', 0);
    const gone = missOf(await cache.readRows('g', 0, 'x'));
    expect(gone).toMatchObject({ reason: 'spill-missing', missingNode: 'r', node: 'g' });
    const r1 = await spill.readPage('c', 1);
    if (!r1.ok) throw new Error('page should exist');
    const damaged = r1.bytes.slice();
    damaged[damaged.length - 1] ^= 0x40;
    await spill.writePage('c', 1, damaged);
    const bad = missOf(await cache.readRows('g', 1, 'x'));
    expect(bad).toMatchObject({ reason: 'spill-corrupt', missingNode: 'c' });
    expect(bad.message).toMatch(/checksum mismatch/);
    // Later reads keep giving the same answer, and the other steps are fine.
    expect(missOf(await cache.readRows('c', 1, 'x')).reason).toBe('spill-corrupt');
    expect(ok(await cache.readRows('g', 2, 'x')).chain).toEqual(['g', 'c', 'r']);
    expect(cache.check('g', [0, 1, 2], ['x'])).toMatchObject({ ok: false, misses: [{ step: 0, reason: 'spill-missing' }, { step: 1, reason: 'spill-corrupt' }] });
    // Re-recording the lost page (a dense rerun of the parent) repairs the chain.
    await cache.putFull('r', 0, 'x', { shape: [2, 8, 4], rowAxis: 1, data: halves(64, 0) });
    expect(ok(await cache.readRows('g', 0, 'x')).chain).toEqual(['g', 'c', 'r']);
  });
});

test('a failing spill write drops the page and says why', async () => {
  const failing: CacheSpillStore = Object.assign(new MemorySpillStore(), {
    location: 'broken disk',
    writePage: async () => {
      throw new Error('ENOSPC: no space left on device');
    },
  });
  const cache = new ActivationCache({ budgetBytes: PAGE, spill: failing });
  await cache.createNode('r', null);
  await cache.putFull('r', 0, 'x', { shape: [8, 4], data: halves(32, 1) });
  await cache.putFull('r', 1, 'x', { shape: [8, 4], data: halves(32, 2) });
  const m = missOf(await cache.readRows('r', 0, 'x'));
  expect(m.reason).toBe('evicted');
  expect(m.message).toMatch(/spill write to broken disk failed: ENOSPC/);
  expect(cache.stats()).toMatchObject({ spillWriteFailures: 1, droppedPages: 1 });
  await expect(cache.persist()).rejects.toThrow(/cache spill store \(broken disk\): cannot write node r step 1/);
});

test('a spilled node without metadata is ignored on open, with a warning', async () => {
  const spill = new MemorySpillStore();
  await spill.writePage('stray', 0, Uint8Array.of(1, 2, 3));
  const cache = await ActivationCache.open({ budgetBytes: Infinity, spill });
  expect(cache.hasNode('stray')).toBe(false);
  expect(cache.restoreWarnings[0]).toMatch(/stray has pages but no readable metadata/);
});
