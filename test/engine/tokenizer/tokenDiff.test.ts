import { diffTokens, TokenDiff } from '../../../src/engine/tokenizer/tokenDiff';

const w = (s: string) => (s ? s.split(' ') : []);

describe('diffTokens', () => {
  test('identical prompts', () => {
    const d = diffTokens(w('a red circle'), w('a red circle'));
    expect(d.identical).toBe(true);
    expect(d.ops).toEqual([{ kind: 'equal', aStart: 0, aEnd: 3, bStart: 0, bEnd: 3 }]);
    expect(d.matched).toEqual([[0, 0], [1, 1], [2, 2]]);
  });

  test('one word replaced', () => {
    const d = diffTokens(w('a red circle on the left'), w('a green circle on the left'));
    expect(d.identical).toBe(false);
    expect(d.ops).toEqual([
      { kind: 'equal', aStart: 0, aEnd: 1, bStart: 0, bEnd: 1 },
      { kind: 'replace', aStart: 1, aEnd: 2, bStart: 1, bEnd: 2 },
      { kind: 'equal', aStart: 2, aEnd: 6, bStart: 2, bEnd: 6 },
    ]);
    expect(d.changedA).toEqual([1]);
    expect(d.changedB).toEqual([1]);
    expect(d.inserted).toEqual([]);
    expect(d.deleted).toEqual([]);
  });

  test('insertion, deletion, and a multi-token replacement', () => {
    const ins = diffTokens(w('a cat'), w('a big cat'));
    expect(ins.ops.map((o) => o.kind)).toEqual(['equal', 'insert', 'equal']);
    expect(ins.inserted).toEqual([1]);
    expect(ins.changedB).toEqual([1]);
    expect(ins.changedA).toEqual([]);

    const del = diffTokens(w('a big fat cat'), w('a cat'));
    expect(del.deleted).toEqual([1, 2]);
    expect(del.changedB).toEqual([]);

    const rep = diffTokens(w('a b c d'), w('a x y z d'));
    expect(rep.ops[1]).toEqual({ kind: 'replace', aStart: 1, aEnd: 3, bStart: 1, bEnd: 4 });
    expect(rep.changedA).toEqual([1, 2]);
    expect(rep.changedB).toEqual([1, 2, 3]);
  });

  test('empty sides', () => {
    expect(diffTokens([], []).identical).toBe(true);
    expect(diffTokens([], w('a b')).ops).toEqual([{ kind: 'insert', aStart: 0, aEnd: 0, bStart: 0, bEnd: 2 }]);
    expect(diffTokens(w('a b'), []).deleted).toEqual([0, 1]);
  });

  test('repeated tokens: earliest matches win', () => {
    const d = diffTokens(w('x y x'), w('x'));
    expect(d.matched).toEqual([[0, 0]]);
    expect(d.deleted).toEqual([1, 2]);
  });

  // Property check against an independent brute-force LCS length on random short sequences.
  test('random sequences: a valid alignment of maximal length that covers both sides', () => {
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const bruteLcs = (a: string[], b: string[]): number => {
      // all subsequences of a (≤ 2^8), longest one that is a subsequence of b
      let best = 0;
      for (let mask = 0; mask < 1 << a.length; mask++) {
        const sub = a.filter((_, i) => mask & (1 << i));
        if (sub.length <= best) continue;
        let j = 0;
        for (const t of b) if (j < sub.length && sub[j] === t) j++;
        if (j === sub.length) best = sub.length;
      }
      return best;
    };
    const covers = (d: TokenDiff, n: number, m: number) => {
      let pa = 0;
      let pb = 0;
      for (const o of d.ops) {
        if (o.aStart !== pa || o.bStart !== pb) return false;
        pa = o.aEnd;
        pb = o.bEnd;
      }
      return pa === n && pb === m;
    };
    for (let trial = 0; trial < 300; trial++) {
      const a = Array.from({ length: rand(9) }, () => 'abc'[rand(3)]);
      const b = Array.from({ length: rand(9) }, () => 'abc'[rand(3)]);
      const d = diffTokens(a, b);
      expect(d.matched.length).toBe(bruteLcs(a, b));
      for (let k = 0; k < d.matched.length; k++) {
        const [i, j] = d.matched[k];
        expect(a[i]).toBe(b[j]);
        if (k > 0) expect(i > d.matched[k - 1][0] && j > d.matched[k - 1][1]).toBe(true);
      }
      expect(covers(d, a.length, b.length)).toBe(true);
      expect(d.changedA.length + d.matched.length).toBe(a.length);
      expect(d.changedB.length + d.matched.length).toBe(b.length);
      expect(d.identical).toBe(a.join() === b.join());
    }
  });
});
