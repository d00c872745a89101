// Ctrl-C during a run: the first aborts at the next step (the engine checks its AbortSignal), a second
// exits at once. One listener for the whole run: swapping listeners would briefly restore the default
// (kill) action.
import { EXIT } from './exitCodes';

export function abortOnSigint(): { signal: AbortSignal; release: () => void } {
  const abort = new AbortController();
  const onSigint = () => {
    if (abort.signal.aborted) process.exit(EXIT.interrupted);
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  return { signal: abort.signal, release: () => process.removeListener('SIGINT', onSigint) };
}
