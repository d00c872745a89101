// CLIP byte-level BPE, as the transformers slow CLIPTokenizer that SD's model_index.json names
// (sd-architecture.md §4): clean → pre-tokenise (regex) → UTF-8 bytes through bytes_to_unicode →
// BPE with "</w>" on the last symbol → vocab ids → [BOS] + ids + [EOS] + pad to model_max_length.

import * as fs from 'fs';
import { parseConfigJson } from '../model/configJson';
import { cleanText } from './cleanText';

export class TokenizerError extends Error {
  constructor(readonly file: string, readonly reason: string) {
    super(`${file}: ${reason}`);
    this.name = 'TokenizerError';
  }
}

export interface EncodedPrompt {
  /** Exactly maxLength ids: BOS, content, EOS, then pad. */
  ids: number[];
  truncated: boolean;
  /** Content tokens cut off to fit maxLength − 2. */
  droppedTokens: number;
  /** The kept content tokens as BPE pieces ("red</w>"); tokens[i] is ids[i + 1]. */
  tokens: string[];
}

export interface ClipTokenizerData {
  vocab: Record<string, number>;
  /** Merge pairs in rank order (first = highest priority). */
  merges: [string, string][];
  /** tokenizer_config.json merged with special_tokens_map.json (the latter wins, as in transformers). */
  config?: Record<string, unknown>;
}

// Python `regex` pattern with re.IGNORECASE; in JS the `u` flag gives \p{…} and the same simple case folding.
const PRETOKENIZE = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;
const CACHE_LIMIT = 100_000;

/**
 * GPT-2/CLIP bytes_to_unicode: printable bytes (33–126, 161–172, 174–255) map to themselves, the other
 * 68 bytes, in increasing order, to U+0100 + n, so every byte is a visible, non-space symbol.
 */
export function bytesToUnicode(): string[] {
  const table: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    table[b] = String.fromCodePoint(printable ? b : 256 + n++);
  }
  return table;
}

const BYTE_TO_UNICODE = bytesToUnicode();
const UTF8 = new TextEncoder();

/** A special token in tokenizer_config.json is a string or an AddedToken object {content, …}. */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

/** merges.txt: optional "#version" header, then one "a b" pair per line; ranks are line order. */
export function parseMerges(text: string): [string, string][] {
  const lines = text.trim().split('\n');
  if (lines.length > 0 && lines[0].startsWith('#version')) lines.shift();
  const merges: [string, string][] = [];
  for (const line of lines) {
    const parts = line.trim().split(/\s+/);
    if (parts.length === 2) merges.push([parts[0], parts[1]]);
  }
  return merges;
}

export class ClipTokenizer {
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly unkId: number;
  readonly maxLength: number;
  private readonly vocab: Map<string, number>;
  private readonly ranks: Map<string, number>;
  private readonly cache = new Map<string, string[]>();
  private readonly idToToken: Map<number, string>;

  constructor(data: ClipTokenizerData, source = '<tokenizer>') {
    this.vocab = new Map(Object.entries(data.vocab));
    this.idToToken = new Map([...this.vocab].map(([t, id]) => [id, t]));
    // Later duplicates win, like Python's dict(zip(merges, range(n))).
    this.ranks = new Map(data.merges.map(([a, b], i) => [`${a} ${b}`, i]));
    const cfg = data.config ?? {};
    const lookup = (key: string, dflt: string): number => {
      const tok = tokenContent(cfg[key]) ?? dflt;
      const id = this.vocab.get(tok);
      if (id === undefined) throw new TokenizerError(source, `${key} ${JSON.stringify(tok)} is not in vocab.json`);
      return id;
    };
    this.bosId = lookup('bos_token', '<|startoftext|>');
    this.eosId = lookup('eos_token', '<|endoftext|>');
    this.unkId = lookup('unk_token', '<|endoftext|>');
    this.padId = cfg['pad_token'] === undefined || cfg['pad_token'] === null ? this.eosId : lookup('pad_token', '<|endoftext|>');
    const maxLength = cfg['model_max_length'] ?? 77;
    if (typeof maxLength !== 'number' || !Number.isInteger(maxLength) || maxLength < 2 || maxLength > 100_000) {
      throw new TokenizerError(source, `model_max_length must be an integer in [2, 100000] (got ${JSON.stringify(maxLength)})`);
    }
    this.maxLength = maxLength;
    this.seedCache();
  }

  /** As in transformers, the two literal CLIP specials bypass BPE (no "</w>"); the regex matches them whole. */
  private seedCache(): void {
    this.cache.clear();
    for (const special of ['<|startoftext|>', '<|endoftext|>']) this.cache.set(special, [special]);
  }

  static fromFiles(vocabJson: string, mergesTxt: string, tokenizerConfigJson?: string, specialTokensMapJson?: string): ClipTokenizer {
    // The vocabulary is strict JSON; the two config files may hold Python's NaN / Infinity (configJson.ts).
    const readJson = (file: string, parse: (text: string) => unknown = JSON.parse): Record<string, unknown> => {
      let v: unknown;
      try {
        v = parse(fs.readFileSync(file, 'utf8'));
      } catch (e) {
        throw new TokenizerError(file, `cannot read JSON (${(e as Error).message})`);
      }
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TokenizerError(file, 'expected a JSON object');
      return v as Record<string, unknown>;
    };
    const vocab = readJson(vocabJson);
    for (const [tok, id] of Object.entries(vocab)) {
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) throw new TokenizerError(vocabJson, `token ${JSON.stringify(tok)} has a non-integer id`);
    }
    let mergesText: string;
    try {
      mergesText = fs.readFileSync(mergesTxt, 'utf8');
    } catch (e) {
      throw new TokenizerError(mergesTxt, `cannot read (${(e as Error).message})`);
    }
    const config = {
      ...(tokenizerConfigJson ? readJson(tokenizerConfigJson, parseConfigJson) : {}),
      ...(specialTokensMapJson ? readJson(specialTokensMapJson, parseConfigJson) : {}),
    };
    return new ClipTokenizer({ vocab: vocab as Record<string, number>, merges: parseMerges(mergesText), config }, tokenizerConfigJson ?? vocabJson);
  }

  /** BPE pieces of the whole text (no special tokens added, no truncation). */
  tokenize(text: string): string[] {
    const pieces: string[] = [];
    for (const m of cleanText(text).matchAll(PRETOKENIZE)) {
      let mapped = '';
      for (const b of UTF8.encode(m[0])) mapped += BYTE_TO_UNICODE[b];
      pieces.push(...this.bpe(mapped));
    }
    return pieces;
  }

  encode(text: string): EncodedPrompt {
    const all = this.tokenize(text);
    const room = this.maxLength - 2;
    const tokens = all.slice(0, room);
    const content = tokens.map((t) => this.vocab.get(t) ?? this.unkId);
    const ids = [this.bosId, ...content, this.eosId];
    while (ids.length < this.maxLength) ids.push(this.padId);
    return { ids, truncated: all.length > room, droppedTokens: Math.max(0, all.length - room), tokens };
  }

  /** Ids back to text: "</w>" ends a word; BOS/EOS/pad are dropped. For logs and tests, not exact inversion. */
  decode(ids: number[]): string {
    const unicodeToByte = new Map(BYTE_TO_UNICODE.map((u, b) => [u, b]));
    const specials = new Set([this.bosId, this.eosId, this.padId]);
    const text = ids
      .filter((id) => !specials.has(id))
      .map((id) => this.idToToken.get(id) ?? '')
      .join('');
    const bytes: number[] = [];
    for (const ch of text.replace(/<\/w>/g, ' ')) bytes.push(ch === ' ' ? 0x20 : (unicodeToByte.get(ch) ?? 0x3f));
    return new TextDecoder().decode(new Uint8Array(bytes)).trim();
  }

  /** Lowest-rank merge first, all non-overlapping occurrences left to right, until no pair has a rank. */
  private bpe(token: string): string[] {
    const hit = this.cache.get(token);
    if (hit) return hit;
    const chars = Array.from(token);
    let word = [...chars.slice(0, -1), chars[chars.length - 1] + '</w>'];
    while (word.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best];
      const second = word[best + 1];
      const merged: string[] = [];
      for (let i = 0; i < word.length; ) {
        if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
          merged.push(first + second);
          i += 2;
        } else {
          merged.push(word[i]);
          i += 1;
        }
      }
      word = merged;
    }
    if (this.cache.size >= CACHE_LIMIT) this.seedCache();
    this.cache.set(token, word);
    return word;
  }
}
