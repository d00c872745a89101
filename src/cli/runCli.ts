// Command dispatch and error → exit code mapping for the fisedit CLI.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { editCommand } from './commands/editCommand';
import { encodeTextCommand } from './commands/encodeTextCommand';
import { evalCommand } from './commands/evalCommand';
import { runServe } from './serve';
import { runWorker } from './worker';
import { runImages } from './images';
import { runToken } from './token';
import { generateCommand } from './commands/generateCommand';
import type { CliIo } from './commands/io';
import { tokenizeCommand } from './commands/tokenizeCommand';
import { CliError, EXIT } from './exitCodes';
import { MAIN_HELP } from './help';

const COMMANDS: Record<string, (argv: string[], io: CliIo) => Promise<number>> = {
  generate: generateCommand,
  edit: editCommand,
  'encode-text': encodeTextCommand,
  tokenize: tokenizeCommand,
  eval: evalCommand,
  serve: runServe,
  worker: runWorker,
  token: runToken,
  images: runImages,
};

function version(): string {
  const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/** Runs one CLI invocation and returns its exit code; messages go to io, never process.exit. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      if (command === undefined) {
        io.stderr.write(MAIN_HELP);
        return EXIT.usage;
      }
      io.stdout.write(MAIN_HELP);
      return EXIT.ok;
    }
    if (command === '--version' || command === '-v') {
      io.stdout.write(`fisedit ${version()}\n`);
      return EXIT.ok;
    }
    const run = COMMANDS[command];
    if (!run) throw new CliError(EXIT.usage, `unknown command ${JSON.stringify(command)} (commands: ${Object.keys(COMMANDS).join(', ')}; see fisedit --help)`);
    return await run(rest, io);
  } catch (e) {
    if (e instanceof CliError) {
      io.stderr.write(`fisedit: ${e.message}\n`);
      return e.exitCode;
    }
    io.stderr.write(`fisedit: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return EXIT.internal;
  }
}
