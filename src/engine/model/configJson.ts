// JSON for model config files as Python writes them. Python's json module emits the non-standard
// literals NaN, Infinity and -Infinity for float fields (diffusers saves DPM-Solver++'s
// `"lambda_min_clipped": -Infinity`), which JSON.parse refuses. This parser is JSON (RFC 8259) plus
// exactly those three literals, and is meant for model config files only: weight headers, vocabularies,
// state files and everything else stay on strict JSON.parse.

export class ConfigJsonError extends Error {
  constructor(
    readonly reason: string,
    /** Character offset where parsing stopped. */
    readonly position: number,
  ) {
    super(`${reason} at position ${position}`);
    this.name = 'ConfigJsonError';
  }
}

/** The three literals Python's json.dumps writes for non-finite floats (allow_nan=True, its default). */
const NON_FINITE: ReadonlyArray<[string, number]> = [
  ['NaN', NaN],
  ['Infinity', Infinity],
  ['-Infinity', -Infinity],
];

/** Parses JSON text that may hold NaN, Infinity and -Infinity as values. Throws ConfigJsonError. */
export function parseConfigJson(text: string): unknown {
  let i = 0;
  const fail = (reason: string): never => {
    throw new ConfigJsonError(reason, i);
  };
  const ws = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const expect = (ch: string) => {
    if (text[i] !== ch) fail(i >= text.length ? `unexpected end of input, expected '${ch}'` : `unexpected '${text[i]}', expected '${ch}'`);
    i++;
  };

  const string = (): string => {
    // Find the closing quote (skipping escapes) and let JSON.parse decode the literal exactly.
    const start = i;
    i++;
    while (i < text.length && text[i] !== '"') {
      const c = text.charCodeAt(i);
      if (c < 0x20) fail('control character in string');
      i += text[i] === '\\' ? 2 : 1;
    }
    if (i >= text.length) fail('unterminated string');
    i++;
    try {
      return JSON.parse(text.slice(start, i)) as string;
    } catch (e) {
      i = start;
      return fail(`bad string (${(e as Error).message})`);
    }
  };

  const number = (): number => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m) return fail(`unexpected '${text[i]}'`);
    i += m[0].length;
    return Number(m[0]);
  };

  const value = (depth: number): unknown => {
    if (depth > 512) fail('nested too deeply');
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const out: Record<string, unknown> = {};
      ws();
      if (text[i] === '}') {
        i++;
        return out;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail(i >= text.length ? 'unexpected end of input in object' : `unexpected '${text[i]}', expected a key`);
        const key = string();
        ws();
        expect(':');
        // defineProperty: a "__proto__" key is data, as with JSON.parse.
        Object.defineProperty(out, key, { value: value(depth + 1), enumerable: true, writable: true, configurable: true });
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        expect('}');
        return out;
      }
    }
    if (c === '[') {
      i++;
      const out: unknown[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return out;
      }
      for (;;) {
        out.push(value(depth + 1));
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        expect(']');
        return out;
      }
    }
    if (c === '"') return string();
    for (const [word, v] of [['true', true], ['false', false], ['null', null], ...NON_FINITE] as [string, unknown][]) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    if (c === '-' || (c >= '0' && c <= '9')) return number();
    return fail(i >= text.length ? 'unexpected end of input' : `unexpected '${c}'`);
  };

  const out = value(0);
  ws();
  if (i < text.length) fail(`unexpected '${text[i]}' after the value`);
  return out;
}
