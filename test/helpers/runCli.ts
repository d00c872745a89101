// Spawns the fisedit CLI as a user runs it (node bin/fisedit.js ARGS) and collects its output.
import { spawn } from 'node:child_process';
import * as path from 'node:path';

export const CLI_BIN = path.resolve(__dirname, '..', '..', 'bin', 'fisedit.js');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runFisedit(cwd: string, args: string[]): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
