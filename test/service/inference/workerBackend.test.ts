// The real engine worker on the tiny fixture model (32×32 images, milliseconds per step), in both modes.
import * as path from 'path';
import { WorkerInferenceBackend } from '../../../src/service/inference/workerBackend';
import { runBackendConformance } from './backendConformance';

const TINY = path.join(__dirname, '../../fixtures/models/tiny-2level');

runBackendConformance('WorkerInferenceBackend, child process (tiny-2level)', () => new WorkerInferenceBackend({ modelDir: TINY, mode: 'process', intraOpNumThreads: 1, previewIntervalMs: 0 }), {
  crash: (b) => (b as WorkerInferenceBackend).crashForTest(),
});

// No crash test for threads: terminating a thread mid-run aborts the process (workerBackend.ts header).
runBackendConformance('WorkerInferenceBackend, worker thread (tiny-2level)', () => new WorkerInferenceBackend({ modelDir: TINY, mode: 'thread', intraOpNumThreads: 1, previewIntervalMs: 0 }));

describe('WorkerInferenceBackend', () => {
  it.each(['process', 'thread'] as const)('refuses a model folder that does not load, naming the folder (%s)', async (mode) => {
    const b = new WorkerInferenceBackend({ modelDir: path.join(__dirname, 'no-such-model'), mode });
    try {
      await expect(b.start()).rejects.toThrow(/cannot load model .*no-such-model/);
    } finally {
      await b.close();
    }
  });
});
