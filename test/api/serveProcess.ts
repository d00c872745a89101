// `fisedit serve` in its own process, for tests that kill the server (test/api/crashRestart.test.ts).
import { runServe } from '../../src/cli/serve';

runServe(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    console.error(e);
    process.exitCode = 1;
  },
);
