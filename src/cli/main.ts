// Entry point of the fisedit CLI (bin/fisedit.js loads this file through tsx). See runCli.ts.
import { runCli } from './runCli';

runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr }).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`fisedit: internal error: ${String(e)}\n`);
    process.exitCode = 1;
  },
);
