// `fisedit worker` in its own process, for tests that kill workers (test/api/scaleOut.test.ts).
import { runWorker } from '../../src/cli/worker';

runWorker(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    console.error(e);
    process.exitCode = 1;
  },
);
