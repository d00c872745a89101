// The word diff shown while an edit's prompt is typed: checked against hand-worked cases, and on random
// word lists against the two properties that define it (the changes rebuild both prompts; the kept words
// are a longest common subsequence, whose length a plain DP computes independently).
import { diffWords, type WordChange } from '../../src/web/wordDiff';

const text = (cs: WordChange[], kinds: WordChange['kind'][]) => cs.filter((c) => kinds.includes(c.kind)).map((c) => c.text).join(' ');

it('marks replaced, added and removed words', () => {
  expect(diffWords('a red circle on the left', 'a blue circle on the left')).toEqual([
    { kind: 'same', text: 'a' },
    { kind: 'added', text: 'blue' },
    { kind: 'removed', text: 'red' },
    { kind: 'same', text: 'circle on the left' },
  ]);
  expect(diffWords('a cat', 'a small black cat')).toEqual([{ kind: 'same', text: 'a' }, { kind: 'added', text: 'small black' }, { kind: 'same', text: 'cat' }]);
  expect(diffWords('a cat on a mat', 'a cat')).toEqual([{ kind: 'same', text: 'a cat' }, { kind: 'removed', text: 'on a mat' }]);
  expect(diffWords('', 'new words')).toEqual([{ kind: 'added', text: 'new words' }]);
  expect(diffWords('same  spacing', 'same spacing')).toEqual([{ kind: 'same', text: 'same spacing' }]);
});

function lcsLength(a: string[], b: string[]): number {
  let prev = new Array(b.length + 1).fill(0);
  for (const x of a) {
    const cur = [0];
    for (let j = 0; j < b.length; j++) cur.push(x === b[j] ? prev[j] + 1 : Math.max(prev[j + 1], cur[j]));
    prev = cur;
  }
  return prev[b.length];
}

it('rebuilds both prompts and keeps a longest common subsequence (random prompts)', () => {
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const words = ['a', 'red', 'blue', 'cat', 'dog', 'on', 'the', 'mat'];
  const prompt = () => Array.from({ length: Math.floor(rand() * 9) }, () => words[Math.floor(rand() * words.length)]);
  for (let i = 0; i < 300; i++) {
    const a = prompt();
    const b = prompt();
    const d = diffWords(a.join(' '), b.join(' '));
    expect(text(d, ['same', 'removed'])).toBe(a.join(' '));
    expect(text(d, ['same', 'added'])).toBe(b.join(' '));
    const kept = text(d, ['same']).split(' ').filter(Boolean).length;
    expect(kept).toBe(lcsLength(a, b));
  }
});
