// Which tokens an edit changed: a longest-common-subsequence alignment of the parent's content tokens
// (a) with the child's (b). The edit pipeline uses it to find the changed words (e.g. to pick their
// cross-attention maps) and to tell an empty edit from a real one. Positions are indices into the
// token arrays; the id position in the 77-long sequence is position + 1 (after BOS).

export type TokenDiffKind = 'equal' | 'replace' | 'insert' | 'delete';

/** A run of positions: a[aStart, aEnd) aligned with b[bStart, bEnd). Empty on one side for insert/delete. */
export interface TokenDiffOp {
  kind: TokenDiffKind;
  aStart: number;
  aEnd: number;
  bStart: number;
  bEnd: number;
}

export interface TokenDiff {
  ops: TokenDiffOp[];
  /** a positions removed or replaced. */
  changedA: number[];
  /** b positions inserted or replacing something. */
  changedB: number[];
  /** b positions inside pure insertions (no counterpart in a). */
  inserted: number[];
  /** a positions inside pure deletions (no counterpart in b). */
  deleted: number[];
  /** [aPos, bPos] of every token kept. */
  matched: [number, number][];
  identical: boolean;
}

function range(start: number, end: number): number[] {
  return Array.from({ length: end - start }, (_, i) => start + i);
}

export function diffTokens(a: readonly string[], b: readonly string[]): TokenDiff {
  // lcs[i][j] = LCS length of a[i:] and b[j:]; prompts are ≤ 75 tokens, so O(n·m) is nothing.
  const n = a.length;
  const m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Int32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  // Walk forward, taking a match whenever it is on an optimal path (earliest matches win).
  const matched: [number, number][] = [];
  for (let i = 0, j = 0; i < n && j < m; ) {
    if (a[i] === b[j] && lcs[i][j] === lcs[i + 1][j + 1] + 1) {
      matched.push([i, j]);
      i++;
      j++;
    } else if (lcs[i + 1][j] >= lcs[i][j + 1]) i++;
    else j++;
  }

  const ops: TokenDiffOp[] = [];
  const pushGap = (aStart: number, aEnd: number, bStart: number, bEnd: number) => {
    if (aStart === aEnd && bStart === bEnd) return;
    const kind: TokenDiffKind = aStart === aEnd ? 'insert' : bStart === bEnd ? 'delete' : 'replace';
    ops.push({ kind, aStart, aEnd, bStart, bEnd });
  };
  let pa = 0;
  let pb = 0;
  for (const [i, j] of matched) {
    pushGap(pa, i, pb, j);
    const last = ops[ops.length - 1];
    if (last && last.kind === 'equal' && last.aEnd === i && last.bEnd === j) {
      last.aEnd++;
      last.bEnd++;
    } else ops.push({ kind: 'equal', aStart: i, aEnd: i + 1, bStart: j, bEnd: j + 1 });
    pa = i + 1;
    pb = j + 1;
  }
  pushGap(pa, n, pb, m);

  const changedA: number[] = [];
  const changedB: number[] = [];
  const inserted: number[] = [];
  const deleted: number[] = [];
  for (const op of ops) {
    if (op.kind === 'equal') continue;
    changedA.push(...range(op.aStart, op.aEnd));
    changedB.push(...range(op.bStart, op.bEnd));
    if (op.kind === 'insert') inserted.push(...range(op.bStart, op.bEnd));
    if (op.kind === 'delete') deleted.push(...range(op.aStart, op.aEnd));
  }
  return { ops, changedA, changedB, inserted, deleted, matched, identical: changedA.length === 0 && changedB.length === 0 };
}
