// The token diff of an edit against its parent, as the engine sees it: both prompts go through the
// model's own CLIP tokenizer and the engine's LCS alignment (src/engine/tokenizer/tokenDiff.ts), so a
// user sees exactly which tokens an edit changed (and, later, which cross-attention maps it used).
// Without a tokenizer (a model folder lacking one) the words are compared instead.

import { bytesToUnicode, ClipTokenizer } from '../../engine/tokenizer/clipTokenizer';
import { diffTokens } from '../../engine/tokenizer/tokenDiff';

export type DiffKind = 'EQUAL' | 'REPLACE' | 'INSERT' | 'DELETE';

export interface PromptDiffSegment {
  kind: DiffKind;
  /** The parent's text of this segment ('' for an insertion). */
  before: string;
  /** The child's text of this segment ('' for a deletion). */
  after: string;
  /** Token positions in the child's prompt (0 = first content token). */
  tokenStart: number;
  tokenEnd: number;
}

const UNICODE_TO_BYTE = new Map(bytesToUnicode().map((u, b) => [u, b]));

/** BPE pieces ("red</w>", byte-level symbols) back to readable text. */
function piecesToText(pieces: string[], tokenizer: ClipTokenizer | null): string {
  if (!tokenizer) return pieces.join(' ');
  const bytes: number[] = [];
  for (const p of pieces) {
    const word = p.endsWith('</w>');
    for (const ch of word ? p.slice(0, -4) : p) bytes.push(UNICODE_TO_BYTE.get(ch) ?? 0x3f);
    if (word) bytes.push(0x20);
  }
  return new TextDecoder().decode(new Uint8Array(bytes)).trim();
}

export function promptDiff(parentPrompt: string, prompt: string, tokenizer: ClipTokenizer | null): PromptDiffSegment[] {
  const split = (s: string) => (tokenizer ? tokenizer.tokenize(s) : s.toLowerCase().match(/[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu) ?? []);
  const a = split(parentPrompt);
  const b = split(prompt);
  const d = diffTokens(a, b);
  return d.ops.map((op) => ({
    kind: op.kind.toUpperCase() as DiffKind,
    before: piecesToText(a.slice(op.aStart, op.aEnd), tokenizer),
    after: piecesToText(b.slice(op.bStart, op.bEnd), tokenizer),
    tokenStart: op.bStart,
    tokenEnd: op.bEnd,
  }));
}
