// Exit codes of the fisedit CLI (also listed in `fisedit --help`), and the error type that carries one.

export const EXIT = {
  ok: 0,
  /** A bug: an error nobody anticipated. */
  internal: 1,
  /** Bad command line or input values (unknown option, steps out of range, size not a multiple…). */
  usage: 2,
  /** The model folder is missing or unusable (configs, weights, tokenizer, graph or session creation), or --device cannot run here. */
  model: 3,
  /** A file given on the command line cannot be read or written (--init-latents, --out, --save-latents). */
  io: 4,
  /** Inference failed while running (runtime error, NaN in the latents). */
  inference: 5,
  /** Interrupted (Ctrl-C) between denoising steps. */
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class CliError extends Error {
  constructor(readonly exitCode: ExitCode, message: string) {
    super(message);
    this.name = 'CliError';
  }
}

export function usageError(message: string): CliError {
  return new CliError(EXIT.usage, message);
}

/** Runs one phase of a command; any error that is not already a CliError gets the phase's exit code. */
export async function inPhase<T>(code: ExitCode, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(code, e instanceof Error ? e.message : String(e));
  }
}
