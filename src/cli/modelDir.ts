// Where --model points when it is not given: the bundled model at <repo>/models/default.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CliError, EXIT } from './exitCodes';

export const DEFAULT_MODEL_DIR = path.resolve(__dirname, '..', '..', 'models', 'default');

/** The folder to load; a missing default model gets its own explanation (the generic loader error follows otherwise). */
export function resolveModelDir(flag: string | undefined): string {
  if (flag !== undefined) return path.resolve(flag);
  if (!fs.existsSync(path.join(DEFAULT_MODEL_DIR, 'model_index.json'))) {
    throw new CliError(
      EXIT.model,
      `no model given and the bundled default model is missing (${DEFAULT_MODEL_DIR} has no model_index.json); pass --model DIR with a diffusers-layout folder`,
    );
  }
  return DEFAULT_MODEL_DIR;
}
