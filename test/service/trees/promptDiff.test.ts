import * as path from 'path';
import { ClipTokenizer } from '../../../src/engine/tokenizer/clipTokenizer';
import { promptDiff } from '../../../src/service/trees/promptDiff';
import { collectSubtree } from '../../../src/service/trees/treeService';

const TOK = path.join(__dirname, '../../fixtures/models/tiny-2level/tokenizer');
const tokenizer = ClipTokenizer.fromFiles(path.join(TOK, 'vocab.json'), path.join(TOK, 'merges.txt'), path.join(TOK, 'tokenizer_config.json'), path.join(TOK, 'special_tokens_map.json'));

describe('promptDiff', () => {
  it('reports replaced, inserted and deleted tokens with positions in the child prompt', () => {
    const d = promptDiff('a red circle on the left', 'a green circle on the left', tokenizer);
    expect(d.filter((s) => s.kind !== 'EQUAL')).toEqual([{ kind: 'REPLACE', before: 'red', after: 'green', tokenStart: 1, tokenEnd: 2 }]);
    expect(d.map((s) => s.after).join(' ')).toBe('a green circle on the left');
    const ins = promptDiff('a circle', 'a big circle', tokenizer).filter((s) => s.kind !== 'EQUAL');
    expect(ins).toEqual([{ kind: 'INSERT', before: '', after: 'big', tokenStart: 1, tokenEnd: 2 }]);
    const del = promptDiff('a big circle', 'a circle', tokenizer).filter((s) => s.kind !== 'EQUAL');
    expect(del).toEqual([{ kind: 'DELETE', before: 'big', after: '', tokenStart: 1, tokenEnd: 1 }]);
  });
  it('is all EQUAL for the same prompt, case and spacing aside (CLIP lower-cases and cleans)', () => {
    expect(promptDiff('A  Red circle', 'a red circle', tokenizer).every((s) => s.kind === 'EQUAL')).toBe(true);
  });
  it('falls back to words without a tokenizer', () => {
    expect(promptDiff('a red circle', 'a blue circle', null).filter((s) => s.kind !== 'EQUAL')).toEqual([{ kind: 'REPLACE', before: 'red', after: 'blue', tokenStart: 1, tokenEnd: 2 }]);
  });
});

describe('collectSubtree', () => {
  it('collects a node and all its descendants, and nothing else', () => {
    const nodes = [
      { id: 'r', parentId: null },
      { id: 'a', parentId: 'r' },
      { id: 'a1', parentId: 'a' },
      { id: 'a11', parentId: 'a1' },
      { id: 'b', parentId: 'r' },
    ];
    expect(collectSubtree('a', nodes)).toEqual(new Set(['a', 'a1', 'a11']));
    expect(collectSubtree('r', nodes).size).toBe(5);
    expect(collectSubtree('b', nodes)).toEqual(new Set(['b']));
  });
});
