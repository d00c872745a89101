// Word-level diff of two prompts (longest common subsequence over words), for showing the words an edit
// changes while it is typed. The server's promptDiff (CLIP tokens) is shown once the edit exists.

export type WordChange = { kind: 'same' | 'added' | 'removed'; text: string };

export function diffWords(before: string, after: string): WordChange[] {
  const a = before.split(/\s+/).filter(Boolean);
  const b = after.split(/\s+/).filter(Boolean);
  // lcs[i][j]: length of the LCS of a[i..] and b[j..]; prompts are at most ~75 words, so O(n·m) is fine.
  const lcs = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  }
  const out: WordChange[] = [];
  const push = (kind: WordChange['kind'], text: string) => {
    const last = out[out.length - 1];
    if (last?.kind === kind) last.text += ` ${text}`;
    else out.push({ kind, text });
  };
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) (push('same', a[i]), i++, j++);
    else if (j < b.length && (i === a.length || lcs[i][j + 1] >= lcs[i + 1][j])) push('added', b[j++]);
    else push('removed', a[i++]);
  }
  return out;
}
