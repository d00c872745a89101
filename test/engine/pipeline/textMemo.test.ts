/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// DiffusionEngine.encodeText keeps recent rows: an embedding served from the memo is the same bits as the
// row computed inside a batch by a fresh engine, whatever the order and company of the rows.
import { DiffusionEngine } from '../../../src/engine/pipeline/engine';
import { TINY } from './editFixtures';

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

describe('encodeText memo', () => {
  it('a memo hit equals the batch computation bit for bit', async () => {
    const fresh = await DiffusionEngine.load(TINY, { components: ['textEncoder'], intraOpNumThreads: 1 });
    const warm = await DiffusionEngine.load(TINY, { components: ['textEncoder'], intraOpNumThreads: 1 });
    try {
      const [neg, a, b] = ['', 'a red circle on the left', 'a blue square'].map((p) => fresh.tokenize(p).ids);
      const batch = await fresh.encodeText([neg, a, b]);
      const n = batch.length / 3;
      await warm.encodeText([a]); // a alone, then from the memo
      const mixed = await warm.encodeText([neg, a, b]);
      expect(bits(mixed)).toEqual(bits(batch));
      const again = await warm.encodeText([b, b, neg]);
      expect(bits(again)).toEqual(bits(new Float32Array([...batch.subarray(2 * n), ...batch.subarray(2 * n), ...batch.subarray(0, n)])));
      // More prompts than the memo holds: still right.
      for (let i = 0; i < 12; i++) await warm.encodeText([warm.tokenize(`a red circle ${i}`).ids]);
      expect(bits(await warm.encodeText([neg, a, b]))).toEqual(bits(batch));
    } finally {
      await Promise.all([fresh.dispose(), warm.dispose()]);
    }
  });
});
