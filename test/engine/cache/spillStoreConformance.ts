// The one conformance suite every CacheSpillStore implementation must pass (STYLE.md: Hono-style seams).
// Usage: describeSpillStoreConformance('name', async () => ({ store, cleanup })).

import { CacheUsageError } from '../../../src/engine/cache/cacheTypes';
import { CacheSpillStore } from '../../../src/engine/cache/spillStore';

export interface SpillStoreFixture {
  store: CacheSpillStore;
  cleanup(): Promise<void>;
}

export function describeSpillStoreConformance(name: string, make: () => Promise<SpillStoreFixture>): void {
  describe(`CacheSpillStore conformance: ${name}`, () => {
    let fx: SpillStoreFixture;
    beforeEach(async () => (fx = await make()));
    afterEach(async () => fx.cleanup());

    const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

    test('a page round-trips byte for byte, and the store keeps its own copy', async () => {
      const b = bytes(1000, 1);
      await fx.store.writePage('n1', 3, b);
      b[0] ^= 0xff; // the caller's buffer changes after the write
      const r = await fx.store.readPage('n1', 3);
      expect(r.ok).toBe(true);
      if (r.ok) expect(Buffer.from(r.bytes).equals(Buffer.from(bytes(1000, 1)))).toBe(true);
      // And a read returns a copy the caller may change.
      if (r.ok) r.bytes[1] ^= 0xff;
      const again = await fx.store.readPage('n1', 3);
      if (again.ok) expect(again.bytes[1]).toBe(bytes(1000, 1)[1]);
    });

    test('a large page (3 MiB) and an empty page round-trip', async () => {
      const big = bytes(3 << 20, 7);
      await fx.store.writePage('big', 0, big);
      await fx.store.writePage('big', 1, new Uint8Array(0));
      const r = await fx.store.readPage('big', 0);
      expect(r.ok && Buffer.from(r.bytes).equals(Buffer.from(big))).toBe(true);
      const e = await fx.store.readPage('big', 1);
      expect(e.ok && e.bytes.length === 0).toBe(true);
    });

    test('missing pages and nodes are answers, not errors', async () => {
      const r = await fx.store.readPage('nobody', 0);
      expect(r).toMatchObject({ ok: false, reason: 'missing' });
      if (!r.ok) expect(r.detail).toMatch(/nobody/);
      await fx.store.deletePage('nobody', 0);
      await fx.store.deleteNode('nobody');
      expect(await fx.store.listNodes()).toEqual([]);
    });

    test('writing a page again replaces it; deletePage removes just that page', async () => {
      await fx.store.writePage('n', 0, bytes(10, 1));
      await fx.store.writePage('n', 0, bytes(20, 2));
      await fx.store.writePage('n', 1, bytes(5, 3));
      const r = await fx.store.readPage('n', 0);
      expect(r.ok && r.bytes.length).toBe(20);
      await fx.store.deletePage('n', 0);
      expect((await fx.store.readPage('n', 0)).ok).toBe(false);
      expect((await fx.store.readPage('n', 1)).ok).toBe(true);
    });

    test('listNodes reports metadata and pages (ascending), deleteNode removes everything of one node', async () => {
      await fx.store.writeNode('root', { base: null });
      await fx.store.writeNode('child', { base: 'root' });
      await fx.store.writePage('root', 10, bytes(7, 1));
      await fx.store.writePage('root', 2, bytes(3, 1));
      await fx.store.writePage('orphan', 0, bytes(4, 1));
      await fx.store.writeNode('child', { base: 'root' }); // rewriting metadata is fine
      expect(await fx.store.listNodes()).toEqual([
        { node: 'child', meta: { base: 'root' }, pages: [] },
        { node: 'orphan', meta: null, pages: [{ step: 0, bytes: 4 }] },
        { node: 'root', meta: { base: null }, pages: [{ step: 2, bytes: 3 }, { step: 10, bytes: 7 }] },
      ]);
      await fx.store.deleteNode('root');
      expect((await fx.store.readPage('root', 2)).ok).toBe(false);
      expect((await fx.store.listNodes()).map((n) => n.node)).toEqual(['child', 'orphan']);
    });

    test('concurrent writes to different pages all land', async () => {
      await Promise.all(Array.from({ length: 20 }, (_, i) => fx.store.writePage(`c${i % 4}`, i, bytes(100 + i, i))));
      for (let i = 0; i < 20; i++) {
        const r = await fx.store.readPage(`c${i % 4}`, i);
        expect(r.ok && Buffer.from(r.bytes).equals(Buffer.from(bytes(100 + i, i)))).toBe(true);
      }
    });

    test('unsafe node ids and bad steps are refused the same way everywhere', async () => {
      for (const bad of ['../x', 'a/b', '', '.hidden', 'x'.repeat(200)]) {
        await expect(fx.store.writePage(bad, 0, bytes(1, 1))).rejects.toThrow(CacheUsageError);
        await expect(fx.store.readPage(bad, 0)).rejects.toThrow(CacheUsageError);
        await expect(fx.store.writeNode(bad, { base: null })).rejects.toThrow(CacheUsageError);
        await expect(fx.store.deleteNode(bad)).rejects.toThrow(CacheUsageError);
      }
      await expect(fx.store.writePage('ok', -1, bytes(1, 1))).rejects.toThrow(/non-negative integer/);
      await expect(fx.store.writePage('ok', 1.5, bytes(1, 1))).rejects.toThrow(/non-negative integer/);
    });
  });
}
