// Spawns the fisedit CLI as a user runs it (node bin/fisedit.js ARGS) and collects its output.
import { spawn } from 'node:child_process';
import * as path from 'node:path';

export const CLI_BIN = path.resolve(__dirname, '..', '..', 'bin', 'fisedit.js');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** env: variables added to (or, set to undefined, removed from) this process's environment. */
export function runFisedit(cwd: string, args: string[], env: Record<string, string | undefined> = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const childEnv = { ...process.env, ...env };
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete childEnv[k];
    const child = spawn(process.execPath, [CLI_BIN, ...args], { cwd, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
