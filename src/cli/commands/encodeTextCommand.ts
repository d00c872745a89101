// fisedit encode-text: last_hidden_state [1, L, D] of one prompt as float32 .npy.
import * as path from 'node:path';
import { writeNpy } from '../../engine/io/npy';
import { DiffusionEngine } from '../../engine/pipeline/engine';
import { DEVICE_OPTION, parseDevice, requireDevice } from '../device';
import { EXIT, inPhase } from '../exitCodes';
import { ENCODE_TEXT_HELP } from '../help';
import { resolveModelDir } from '../modelDir';
import { parseOptions, requireString } from '../options';
import type { CliIo } from './io';

const SPEC = {
  model: { type: 'string', short: 'm' },
  prompt: { type: 'string', short: 'p' },
  out: { type: 'string', short: 'o' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  ...DEVICE_OPTION,
} as const;

export async function encodeTextCommand(argv: string[], io: CliIo): Promise<number> {
  const o = parseOptions(argv, SPEC, 'encode-text');
  if (o.help) {
    io.stdout.write(ENCODE_TEXT_HELP);
    return EXIT.ok;
  }
  const prompt = requireString(o.prompt, 'prompt', 'encode-text');
  const out = path.resolve(requireString(o.out, 'out', 'encode-text'));
  const device = parseDevice(o.device, 'encode-text');
  const modelDir = resolveModelDir(o.model);
  await requireDevice(device, 'encode-text');
  const engine = await inPhase(EXIT.model, () => DiffusionEngine.load(modelDir, { components: ['textEncoder'], sessionOptions: { device } }));
  try {
    const { encoded, hidden } = await inPhase(EXIT.inference, () => engine.encodePrompt(prompt));
    const shape = [1, engine.info.textLength, engine.info.textHiddenSize];
    await inPhase(EXIT.io, () => writeNpy(out, { dtype: 'float32', shape, data: hidden }));
    if (o.json) io.stdout.write(`${JSON.stringify({ out, shape, truncated: encoded.truncated, model: engine.info.name, device: engine.device })}\n`);
    else io.stdout.write(`${out}: float32 [${shape.join(', ')}]${encoded.truncated ? ' (prompt truncated)' : ''}\n`);
    return EXIT.ok;
  } finally {
    await engine.dispose();
  }
}
