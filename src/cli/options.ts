// Command-line parsing on node:util parseArgs, with every failure turned into a usage error (exit 2).
import { parseArgs } from 'node:util';
import { usageError } from './exitCodes';

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string }>;

export function parseOptions<T extends OptionSpec>(argv: string[], spec: T, command: string) {
  try {
    return parseArgs({ args: argv, options: spec, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw usageError(`${command}: ${(e as Error).message.split('\n')[0]} (see fisedit ${command} --help)`);
  }
}

export function requireString(v: string | boolean | undefined, flag: string, command: string): string {
  if (typeof v !== 'string') throw usageError(`${command}: --${flag} is required (see fisedit ${command} --help)`);
  return v;
}

export function optionalInt(v: string | boolean | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^[+-]?\d+$/.test(v.trim())) throw usageError(`--${flag} must be an integer (got ${JSON.stringify(v)})`);
  return Number(v);
}

export function optionalFloat(v: string | boolean | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (!Number.isFinite(n)) throw usageError(`--${flag} must be a number (got ${JSON.stringify(v)})`);
  return n;
}
