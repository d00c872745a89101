import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { cleanText } from '../../../src/engine/tokenizer/cleanText';
import { bytesToUnicode, ClipTokenizer, parseMerges, TokenizerError } from '../../../src/engine/tokenizer/clipTokenizer';

// A handmade vocab whose BPE results are derived by hand below.
// Merge ranks: 0 "h e", 1 "l o</w>", 2 "he l", 3 "hel lo</w>", 4 "l l".
const MERGES = '#version: 0.2\nh e\nl o</w>\nhe l\nhel lo</w>\nl l\n';
const VOCAB: Record<string, number> = {
  h: 0, e: 1, l: 2, o: 3, 'l</w>': 4, 'o</w>': 5, he: 6, 'lo</w>': 7, hel: 8, 'hello</w>': 9, ll: 10,
  ',</w>': 11, '!</w>': 12, '1</w>': 13, '2</w>': 14, 'Ã': 15, '©</w>': 16, '<pad>': 17,
  '<|startoftext|>': 18, '<|endoftext|>': 19,
};
const BOS = 18;
const EOS = 19;

function tiny(config: Record<string, unknown> = {}): ClipTokenizer {
  return new ClipTokenizer({ vocab: VOCAB, merges: parseMerges(MERGES), config });
}

describe('bytes_to_unicode', () => {
  test('printable bytes map to themselves, the 68 others to U+0100.. in byte order', () => {
    const t = bytesToUnicode();
    expect(t).toHaveLength(256);
    expect(new Set(t).size).toBe(256);
    expect(t[33]).toBe('!');
    expect(t[126]).toBe('~');
    expect(t[161]).toBe('¡');
    expect(t[0]).toBe('\u0100');
    expect(t[32]).toBe('\u0120'); // space: 33rd remapped byte
    expect(t[127]).toBe('\u0121');
    expect(t[160]).toBe('\u0142'); // n = 33 + (160 − 127) = 66 = 0x42
    expect(t[173]).toBe('\u0143'); // soft hyphen, the 68th
    expect(t.filter((c, b) => c.codePointAt(0) !== b)).toHaveLength(68);
  });
});

describe('cleanText (transformers no-ftfy path)', () => {
  test('whitespace runs collapse, ends trimmed, lower-cased', () => {
    expect(cleanText('  A\tBig\n\r CAT\u3000On\u00a0Mat  ')).toBe('a big cat on mat');
  });
  test('control and format chars, NUL and U+FFFD are removed (not turned into spaces)', () => {
    expect(cleanText('\u0000ctrl\u0007chars\u200bzero\ufffdwidth')).toBe('ctrlcharszerowidth');
  });
  test('CJK ideographs get spaces around them; kana does not', () => {
    expect(cleanText('日本の猫')).toBe('日 本 の 猫');
  });
  test('NFC composes combining marks; accents are kept', () => {
    expect(cleanText('Cafe\u0301 NAÏVE')).toBe('café naïve');
  });
  test('empty and blank', () => {
    expect(cleanText('')).toBe('');
    expect(cleanText(' \n\t ')).toBe('');
  });
});

describe('ClipTokenizer with a handmade vocab', () => {
  test('hello: h e → he, then l o</w> (rank 1) before he l (rank 2), then hel, then hello</w>', () => {
    const e = tiny().encode('hello');
    expect(e.tokens).toEqual(['hello</w>']);
    expect(e.ids.slice(0, 4)).toEqual([BOS, 9, EOS, EOS]);
    expect(e.ids).toHaveLength(77);
    expect(e.truncated).toBe(false);
    expect(e.droppedTokens).toBe(0);
  });

  test('merge ranks decide, not position', () => {
    const t = tiny();
    expect(t.tokenize('hell')).toEqual(['hel', 'l</w>']); // he l → hel; "hel l</w>" has no rank
    expect(t.tokenize('llo')).toEqual(['l', 'lo</w>']); // l o</w> (1) beats l l (4)
    expect(t.tokenize('lol')).toEqual(['l', 'o', 'l</w>']); // "l o" ≠ "l o</w>"
    expect(t.tokenize('lll')).toEqual(['ll', 'l</w>']);
    expect(t.tokenize('llll')).toEqual(['ll', 'l', 'l</w>']); // (l, l) merged left to right; the last l is l</w>
  });

  test('punctuation and digits: punctuation runs are one pre-token, digits one each', () => {
    const e = tiny().encode('Hello, hell!! 12');
    expect(e.tokens).toEqual(['hello</w>', ',</w>', 'hel', 'l</w>', '!', '!</w>', '1</w>', '2</w>']);
    // '!' (no </w>) is not in the vocab → unk = <|endoftext|>
    expect(e.ids.slice(0, 10)).toEqual([BOS, 9, 11, 8, 4, EOS, 12, 13, 14, EOS]);
  });

  test('contractions split off; whitespace carries no marker', () => {
    // "he" is h e</w>: the merge is "h e", not "h e</w>"
    expect(tiny().tokenize("he's  he'll")).toEqual(['h', 'e</w>', "'", 's</w>', 'h', 'e</w>', "'", 'l', 'l</w>']);
  });

  test('non-ASCII goes through UTF-8 bytes and bytes_to_unicode', () => {
    // é = C3 A9 → 'Ã' '©'; ā = C4 81 → 'Ä' and byte 0x81 = 129 → the 36th remapped byte → U+0123 'ģ'
    const t = tiny();
    expect(t.tokenize('é')).toEqual(['Ã', '©</w>']);
    expect(t.encode('é').ids.slice(0, 4)).toEqual([BOS, 15, 16, EOS]);
    expect(t.tokenize('ā')).toEqual(['Ä', 'ģ</w>']);
  });

  test('special tokens in the text map to their ids, matched case-insensitively after lower-casing', () => {
    const e = tiny().encode('<|startoftext|>hello<|ENDOFTEXT|>');
    expect(e.tokens).toEqual(['<|startoftext|>', 'hello</w>', '<|endoftext|>']);
    expect(e.ids.slice(0, 6)).toEqual([BOS, BOS, 9, EOS, EOS, EOS]);
  });

  test('empty prompt: BOS then EOS/pad', () => {
    const e = tiny().encode('');
    expect(e.ids).toEqual([BOS, ...Array(76).fill(EOS)]);
    expect(e.tokens).toEqual([]);
  });

  test('truncation keeps model_max_length − 2 content tokens', () => {
    const t = tiny({ model_max_length: 6 });
    const e = t.encode('hello hello hello hello hello hello');
    expect(e.ids).toEqual([BOS, 9, 9, 9, 9, EOS]);
    expect(e.truncated).toBe(true);
    expect(e.droppedTokens).toBe(2);
    expect(e.tokens).toHaveLength(4);
    const exact = t.encode('hello hello hello hello');
    expect(exact.truncated).toBe(false);
    expect(exact.ids).toEqual([BOS, 9, 9, 9, 9, EOS]);
  });

  test('pad token from the config; AddedToken objects accepted', () => {
    const t = tiny({ model_max_length: 5, pad_token: '<pad>', bos_token: { __type: 'AddedToken', content: '<|startoftext|>' } });
    expect(t.encode('hello').ids).toEqual([BOS, 9, EOS, 17, 17]);
    expect(t.padId).toBe(17);
  });

  test('merges.txt without a #version line uses every line; duplicates keep the later rank', () => {
    expect(parseMerges('h e\nl o</w>\n')).toEqual([['h', 'e'], ['l', 'o</w>']]);
    expect(parseMerges('#version: 0.2\r\nh e\r\n\r\n')).toEqual([['h', 'e']]);
    // "l l" listed again after "he l": it now ranks 5, so it still loses to "l o</w>"
    const t = new ClipTokenizer({ vocab: VOCAB, merges: parseMerges(MERGES + 'l l\n') });
    expect(t.tokenize('llo')).toEqual(['l', 'lo</w>']);
  });

  test('special tokens missing from the vocab and bad model_max_length are errors', () => {
    expect(() => tiny({ pad_token: '<nope>' })).toThrow(TokenizerError);
    expect(() => tiny({ pad_token: '<nope>' })).toThrow(/pad_token "<nope>" is not in vocab.json/);
    expect(() => tiny({ model_max_length: 1e30 })).toThrow(/model_max_length must be an integer/);
  });

  test('decode inverts encode for in-vocab text', () => {
    const t = tiny();
    expect(t.decode(t.encode('Hello, hell é').ids)).toBe('hello , hell é');
  });

  test('fromFiles reads vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tok-'));
    try {
      fs.writeFileSync(path.join(dir, 'vocab.json'), JSON.stringify(VOCAB));
      fs.writeFileSync(path.join(dir, 'merges.txt'), MERGES);
      fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ model_max_length: 4, pad_token: '<|endoftext|>' }));
      fs.writeFileSync(path.join(dir, 'special_tokens_map.json'), JSON.stringify({ pad_token: '<pad>' }));
      const t = ClipTokenizer.fromFiles(...(['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json'].map((f) => path.join(dir, f)) as [string, string, string, string]));
      expect(t.encode('hello').ids).toEqual([BOS, 9, EOS, 17]);
      fs.writeFileSync(path.join(dir, 'vocab.json'), '[1]');
      expect(() => ClipTokenizer.fromFiles(path.join(dir, 'vocab.json'), path.join(dir, 'merges.txt'))).toThrow(/vocab.json: expected a JSON object/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

// Goldens from tools/reference/clip_bpe.py (an independent Python implementation using the `regex` module).
const GOLDEN = path.join(__dirname, '../../fixtures/golden');
const MODELS = path.join(__dirname, '../../fixtures/models');
for (const model of ['sd-narrow', 'tiny-2level']) {
  const golden = path.join(GOLDEN, model, 'tokens.json');
  const tok = path.join(MODELS, model, 'tokenizer');
  (fs.existsSync(golden) && fs.existsSync(tok) ? describe : describe.skip)(`golden tokens: ${model}`, () => {
    test('every prompt gives the reference ids and truncation flag', () => {
      const t = ClipTokenizer.fromFiles(
        path.join(tok, 'vocab.json'),
        path.join(tok, 'merges.txt'),
        path.join(tok, 'tokenizer_config.json'),
        path.join(tok, 'special_tokens_map.json'),
      );
      const cases = JSON.parse(fs.readFileSync(golden, 'utf8')) as { prompt: string; ids: number[]; truncated: boolean }[];
      expect(cases.length).toBeGreaterThanOrEqual(10);
      expect(cases.some((c) => c.truncated)).toBe(true);
      for (const c of cases) {
        const e = t.encode(c.prompt);
        expect({ prompt: c.prompt, ids: e.ids, truncated: e.truncated }).toEqual(c);
      }
    });
  });
}
