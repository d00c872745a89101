// Text cleaning of the transformers slow CLIPTokenizer when ftfy is not installed: it runs BERT's
// BasicTokenizer(strip_accents=False, do_split_on_punc=False) and joins the result with spaces
// (sd-architecture.md §4 step 1). We follow that path, not the ftfy one, because it is fully specified
// and has no hidden heuristics. Steps, in transformers' order:
//   1. drop U+0000, U+FFFD and control/format chars (general category C*, except \t \n \r);
//      map \t \n \r and space separators (Zs) to " "
//   2. surround CJK ideographs with spaces
//   3. NFC
//   4. split on whitespace, lower-case each piece (no accent stripping), join with single spaces

const CONTROL = /\p{C}/u;
const SPACE_SEPARATOR = /\p{Zs}/u;

/** BERT's _is_chinese_char: CJK Unified Ideographs blocks and compatibility ideographs. */
function isCjk(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

export function cleanText(text: string): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r') {
      out += ' ';
      continue;
    }
    if (cp === 0 || cp === 0xfffd || CONTROL.test(ch)) continue;
    if (SPACE_SEPARATOR.test(ch)) out += ' ';
    else if (isCjk(cp)) out += ` ${ch} `;
    else out += ch;
  }
  // Python's str.split() also splits on U+2028/U+2029 (not Zs, not C*); JS \s covers them as well.
  return out
    .normalize('NFC')
    .split(/\s+/)
    .filter((w) => w.length > 0)
    .map((w) => w.toLowerCase())
    .join(' ');
}
