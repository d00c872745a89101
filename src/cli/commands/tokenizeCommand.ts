// fisedit tokenize: the CLIP token ids of a prompt, from the model's tokenizer/ files only (no weights).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ClipTokenizer } from '../../engine/tokenizer/clipTokenizer';
import { CliError, EXIT, inPhase } from '../exitCodes';
import { TOKENIZE_HELP } from '../help';
import { resolveModelDir } from '../modelDir';
import { parseOptions, requireString } from '../options';
import type { CliIo } from './io';

const SPEC = {
  model: { type: 'string', short: 'm' },
  prompt: { type: 'string', short: 'p' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function tokenizeCommand(argv: string[], io: CliIo): Promise<number> {
  const o = parseOptions(argv, SPEC, 'tokenize');
  if (o.help) {
    io.stdout.write(TOKENIZE_HELP);
    return EXIT.ok;
  }
  const prompt = requireString(o.prompt, 'prompt', 'tokenize');
  const dir = path.join(resolveModelDir(o.model), 'tokenizer');
  if (!fs.existsSync(dir)) throw new CliError(EXIT.model, `${dir}: missing tokenizer folder (is --model a diffusers-layout model folder?)`);
  const file = (f: string) => path.join(dir, f);
  const special = fs.existsSync(file('special_tokens_map.json')) ? file('special_tokens_map.json') : undefined;
  const tokenizer = await inPhase(EXIT.model, () =>
    ClipTokenizer.fromFiles(file('vocab.json'), file('merges.txt'), file('tokenizer_config.json'), special),
  );
  const { ids, truncated, droppedTokens, tokens } = tokenizer.encode(prompt);
  io.stdout.write(`${JSON.stringify({ ids, truncated, droppedTokens, tokens })}\n`);
  return EXIT.ok;
}
