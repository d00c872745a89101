// The real engine worker on the tiny fixture model (32×32 images, milliseconds per step), in both modes.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { EditRequest, GenerateRequest, InferenceProgress } from '../../../src/service/inference/backend';
import { WorkerInferenceBackend } from '../../../src/service/inference/workerBackend';
import { describeWithWebGpu } from '../../helpers/webgpu';
import { runBackendConformance } from './backendConformance';

const TINY = path.join(__dirname, '../../fixtures/models/tiny-2level');

const stateDir = () => path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-worker-')), 'engine-state');

// The child process records every run into an engine node store (the service's default).
runBackendConformance('WorkerInferenceBackend, child process with engine state (tiny-2level)', () => new WorkerInferenceBackend({ modelDir: TINY, mode: 'process', intraOpNumThreads: 1, previewIntervalMs: 0, stateDir: stateDir() }), {
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

describe('WorkerInferenceBackend with engine state: FISEdit edits', () => {
  let backend: WorkerInferenceBackend;
  beforeAll(async () => {
    backend = new WorkerInferenceBackend({ modelDir: TINY, mode: 'process', intraOpNumThreads: 1, previewIntervalMs: 0, stateDir: stateDir(), cacheBytes: 64 * 2 ** 20 });
    await backend.start();
  });
  afterAll(async () => {
    await backend.close();
  });

  const root: GenerateRequest = { prompt: 'a red circle on the left', negativePrompt: '', seed: 11, steps: 5, guidance: 7.5, scheduler: 'dpmpp-2m', width: 32, height: 32 };
  const edit = (over: Partial<EditRequest>): EditRequest => ({ ...root, prompt: 'a green circle on the left', parentNodeId: 'p', parentPrompt: root.prompt, strategy: 'AUTO', mask: null, ...over });

  it('records roots and edits them sparsely inside a user mask, keeping the parent outside it', async () => {
    const parent = await backend.generate('st-root', root, () => undefined);
    expect(parent.engineNodeId).toMatch(/^[0-9a-f]{10}$/);
    // Image pixels [0, 8) × [0, 32): the left quarter, 4 of 16 latent columns.
    const data = new Uint8Array(32 * 32);
    for (let y = 0; y < 32; y++) for (let x = 0; x < 8; x++) data[y * 32 + x] = 200;
    const events: InferenceProgress[] = [];
    const r = await backend.edit('st-edit', edit({ parentEngineNodeId: parent.engineNodeId, mask: { data, width: 32, height: 32 } }), (p) => events.push(p));
    expect(r.mode).toBe('SPARSE');
    expect(r.maskedFraction).toBeCloseTo(0.25, 6);
    expect(r.engineNodeId).toMatch(/^[0-9a-f]{10}$/);
    expect(r.engineNodeId).not.toBe(parent.engineNodeId);
    // The process's first dense run is its warm-up: no dense estimate from it (NodeStats.denseEstimateMs).
    expect(r.denseEstimateMs).toBeNull();
    expect(r.mask).not.toBeNull();
    expect(Array.from(r.mask!.data)).toEqual(Array.from(data, (v) => (v > 0 ? 255 : 0)));
    // Columns 10… are outside the mask dilated by one latent pixel (2 image pixels): the parent's bytes.
    for (let y = 0; y < 32; y++) {
      const row = (b: Uint8Array) => Buffer.from(b.subarray((y * 32 + 10) * 3, (y * 32 + 32) * 3));
      expect(row(r.rgb).equals(row(parent.rgb))).toBe(true);
    }
    expect(Buffer.from(r.rgb).equals(Buffer.from(parent.rgb))).toBe(false);
    const steps = events.filter((e) => e.phase === 'DENOISING' || e.phase === 'DECODING').map((e) => e.step);
    expect(steps).toEqual([1, 2, 3, 4, 5]);
  });

  it('rebuilds a parent with no engine state from the lineage (same image as editing the recorded parent) and refuses changed settings', async () => {
    const parent = await backend.generate('st-root2', root, () => undefined);
    const asRecorded = await backend.edit('st-recorded', edit({ parentEngineNodeId: parent.engineNodeId }), () => undefined);
    expect(asRecorded.fallbackReason).toBeNull();
    const lineage = (engineNodeId: string | null) => [{ nodeId: 'p', engineNodeId, prompt: root.prompt, negativePrompt: '', strategy: null, mask: null }];
    const phases: string[] = [];
    const noState = await backend.edit('st-nostate', edit({ parentEngineNodeId: null, lineage: lineage(null) }), (p) => phases.push(p.phase));
    expect(noState.mode).toBe(asRecorded.mode);
    expect(Buffer.from(noState.rgb).equals(Buffer.from(asRecorded.rgb))).toBe(true);
    expect(noState.fallbackReason).toMatch(/node p was never recorded by the engine: rebuilt it \(regenerated the root from its seed\)/);
    expect(noState.rebuilt).toEqual([{ nodeId: 'p', engineNodeId: expect.stringMatching(/^[0-9a-f]{10}$/) }]);
    expect(phases).toContain('REBUILDING');
    const gone = await backend.edit('st-gone', edit({ parentEngineNodeId: 'ffffffffff', lineage: lineage('ffffffffff') }), () => undefined);
    expect(gone.fallbackReason).toMatch(/the engine state of node p is gone/);
    expect(Buffer.from(gone.rgb).equals(Buffer.from(asRecorded.rgb))).toBe(true);
    // An edit keeps its parent's seed: a request that changes it is refused, not regenerated.
    await expect(backend.edit('st-seed', edit({ parentEngineNodeId: parent.engineNodeId, seed: 12 }), () => undefined)).rejects.toThrow(/changes the parent's seed/);
  });

  // Linux: /proc/<pid>/task/<tid>/stat field 19 is each thread's nice value (niceness is per thread).
  const childThreadNice = (): number[] => {
    const out: number[] = [];
    for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      let stat: string;
      try {
        stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      } catch {
        continue;
      }
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 on
      if (Number(fields[1]) !== process.pid) continue; // field 4: ppid
      // Only the engine worker: an earlier test file in this jest worker may have left other children
      // (a browser, a server) that run at the default nice.
      if (!fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('engineWorker')) continue;
      for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
        const t = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        out.push(Number(t.slice(t.lastIndexOf(')') + 2).split(' ')[16])); // field 19
      }
    }
    return out;
  };

  (process.platform === 'linux' ? it : it.skip)('runs the engine below the API: its main and inference threads are niced to 10', async () => {
    await backend.generate('st-nice', root, () => undefined); // onnxruntime's threads exist by now
    const nice = childThreadNice();
    expect(nice.length).toBeGreaterThan(1);
    // The main thread (tid = pid, listed first), which runs the sessions with intraOpNumThreads 1 and starts
    // any onnxruntime pool threads, runs at 10; V8's helper threads started before it lowered itself.
    expect(nice[0]).toBe(10);
    expect(nice.every((n) => n === 10 || n === 0)).toBe(true);
  });

  it('returns the parent for an unchanged prompt (mode PARENT)', async () => {
    const parent = await backend.generate('st-root3', root, () => undefined);
    const r = await backend.edit('st-same', edit({ prompt: root.prompt, parentEngineNodeId: parent.engineNodeId }), () => undefined);
    expect(r.mode).toBe('PARENT');
    expect(r.maskedFraction).toBe(0);
    expect(Buffer.from(r.rgb).equals(Buffer.from(parent.rgb))).toBe(true);
  });
});

describeWithWebGpu('WorkerInferenceBackend on webgpu', () => {
  it('reports the attention form its graphs build, chosen by the start-up check in the worker, and generates', async () => {
    const b = new WorkerInferenceBackend({ modelDir: TINY, mode: 'process', intraOpNumThreads: 1, previewIntervalMs: 0, device: 'webgpu' });
    try {
      const info = await b.start();
      expect(info.device).toBe('webgpu');
      expect(['mha', 'matmul']).toContain(info.attention?.form);
      expect(info.attention?.reason).toMatch(new RegExp(`^auto, ${info.attention?.form}: the (only|fastest right) form`));
      const r = await b.generate('gpu-a', { prompt: 'a red circle', negativePrompt: '', seed: 3, steps: 2, guidance: 7.5, scheduler: 'dpmpp-2m', width: 32, height: 32 }, () => undefined);
      expect(r.rgb.length).toBe(32 * 32 * 3);
    } finally {
      await b.close();
    }
  }, 120_000);
});
