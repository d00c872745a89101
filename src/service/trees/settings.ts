// Validation of generation settings, before anything is queued. Limits (the contract):
// prompt ≤ the text encoder's tokens (75 for CLIP) and ≤ 2,000 characters; steps 1–150; guidance 0–30;
// width/height multiples of 8 (or of the model's own factor) within the model's limits; seed 0–2^31−1
// (GraphQL Int). Input is refused with a message naming the argument, never adjusted.

import type { ClipTokenizer } from '../../engine/tokenizer/clipTokenizer';
import type { ModelInfo } from '../inference/backend';
import { BadUserInputError } from '../errors';

export const MAX_PROMPT_CHARS = 2000;
export const MAX_TITLE_CHARS = 200;
export const MAX_STEPS = 150;
export const MAX_GUIDANCE = 30;
export const MAX_SEED = 2 ** 31 - 1;
export const PRIORITY_RANGE = [-10, 10] as const;

/**
 * Characters no text field takes: C0 controls but tab, newline and carriage return (NUL, ESC of terminal
 * escapes, …), DEL, and the C1 controls (U+0080–U+009F, where U+009B alone starts a terminal escape).
 */
const CONTROL_CHARS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

/** One rule for every user text (prompts, negative prompts, titles): refused, never stripped. */
export function checkText(arg: string, text: string): void {
  if (CONTROL_CHARS.test(text)) throw new BadUserInputError(arg, 'contains control characters (NUL, escape sequences, …)');
}

export type SchedulerEnum = 'DDIM' | 'DPMPP_2M' | 'EULER';
export type StrategyEnum = 'AUTO' | 'DENSE' | 'SPARSE' | 'ATTENTION';
const SCHEDULERS: Record<SchedulerEnum, string> = { DDIM: 'ddim', DPMPP_2M: 'dpmpp-2m', EULER: 'euler' };

export function schedulerToEngine(s: string): string {
  const v = SCHEDULERS[s as SchedulerEnum];
  if (!v) throw new Error(`src/service/trees/settings.ts: unknown scheduler ${JSON.stringify(s)} in the database`);
  return v;
}

export interface Settings {
  prompt: string;
  negativePrompt: string;
  seed: number;
  steps: number;
  guidance: number;
  scheduler: SchedulerEnum;
  width: number;
  height: number;
}

export class SettingsValidator {
  constructor(private readonly model: ModelInfo, private readonly tokenizer: ClipTokenizer | null) {}

  prompt(arg: string, text: unknown, allowEmpty: boolean): string {
    if (typeof text !== 'string') throw new BadUserInputError(arg, 'must be a string');
    if (!allowEmpty && text.trim() === '') throw new BadUserInputError(arg, 'must not be empty');
    if (text.length > MAX_PROMPT_CHARS) throw new BadUserInputError(arg, `is ${text.length} characters; at most ${MAX_PROMPT_CHARS}`);
    checkText(arg, text);
    if (this.tokenizer) {
      const enc = this.tokenizer.encode(text);
      if (enc.truncated) {
        const n = enc.tokens.length + enc.droppedTokens;
        throw new BadUserInputError(arg, `is ${n} tokens; the model reads at most ${this.model.maxPromptTokens} (shorten it by ${enc.droppedTokens})`);
      }
    }
    return text;
  }

  int(arg: string, v: unknown, min: number, max: number): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new BadUserInputError(arg, `must be an integer in [${min}, ${max}] (got ${JSON.stringify(v)})`);
    return v;
  }

  guidance(v: unknown): number {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > MAX_GUIDANCE) throw new BadUserInputError('guidance', `must be a number in [0, ${MAX_GUIDANCE}] (got ${JSON.stringify(v)})`);
    return v;
  }

  side(arg: 'width' | 'height', v: unknown): number {
    const max = arg === 'width' ? this.model.maxWidth : this.model.maxHeight;
    const m = this.model.sizeMultiple;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < m || v > max || v % m !== 0) {
      throw new BadUserInputError(arg, `must be a multiple of ${m} in [${m}, ${max}] for model ${this.model.name} (got ${JSON.stringify(v)})`);
    }
    return v;
  }

  scheduler(v: unknown): SchedulerEnum {
    if (typeof v !== 'string' || !(v in SCHEDULERS)) throw new BadUserInputError('scheduler', `must be one of ${Object.keys(SCHEDULERS).join(', ')}`);
    return v as SchedulerEnum;
  }

  /** Negative prompts only act through classifier-free guidance (guidance > 1); refuse one that would be ignored. */
  negative(v: unknown, guidance: number): string {
    const text = this.prompt('negativePrompt', v ?? '', true);
    if (text !== '' && guidance <= 1) throw new BadUserInputError('negativePrompt', `has no effect with guidance ${guidance} ≤ 1 (no classifier-free guidance); remove it or raise guidance`);
    return text;
  }

  title(v: unknown, fallback: string): string {
    if (v === undefined || v === null) return fallback.slice(0, 80);
    if (typeof v !== 'string') throw new BadUserInputError('title', 'must be a string');
    if (v.length > MAX_TITLE_CHARS) throw new BadUserInputError('title', `is ${v.length} characters; at most ${MAX_TITLE_CHARS}`);
    checkText('title', v);
    return v;
  }

  priority(v: unknown): number {
    return v === undefined || v === null ? 0 : this.int('priority', v, PRIORITY_RANGE[0], PRIORITY_RANGE[1]);
  }
}

/** A random seed in the GraphQL Int range, when the client gives none. */
export function randomSeed(): number {
  return Math.floor(Math.random() * (MAX_SEED + 1));
}
