// The contract every InferenceBackend implementation passes (STYLE.md: one seam, one shared suite).
import { GenerateRequest, InferenceBackend, InferenceCancelledError, InferenceCrashedError, InferenceInputError, InferenceProgress, ModelInfo } from '../../../src/service/inference/backend';

export interface ConformanceHooks {
  /** Kill the backend's executor as a crash would (optional). */
  crash?: (b: InferenceBackend) => Promise<void>;
}

export function runBackendConformance(name: string, make: () => InferenceBackend, hooks: ConformanceHooks = {}): void {
  describe(`${name} (InferenceBackend conformance)`, () => {
    let backend: InferenceBackend;
    let info: ModelInfo;
    beforeAll(async () => {
      backend = make();
      info = await backend.start();
    });
    afterAll(async () => {
      await backend.close();
    });

    const request = (over: Partial<GenerateRequest> = {}): GenerateRequest => ({
      prompt: 'a red circle on the left',
      negativePrompt: '',
      seed: 7,
      steps: 4,
      guidance: 7.5,
      scheduler: 'dpmpp-2m',
      width: info.defaultWidth,
      height: info.defaultHeight,
      ...over,
    });

    it('reports model limits that are consistent', () => {
      expect(info.defaultWidth % info.sizeMultiple).toBe(0);
      expect(info.defaultHeight % info.sizeMultiple).toBe(0);
      expect(info.sizeMultiple % 8).toBe(0);
      expect(info.maxWidth).toBeGreaterThanOrEqual(info.defaultWidth);
      expect(info.maxPromptTokens).toBeGreaterThan(0);
      expect(['cpu', 'webgpu', 'cuda']).toContain(info.device);
      // Only WebGPU graphs report an attention form (workerBackend.test.ts starts one on webgpu).
      expect(info.attention).toBeNull();
    });

    it('generates an image with ordered progress and previews, and is deterministic per seed', async () => {
      const events: InferenceProgress[] = [];
      const a = await backend.generate('conf-a', request(), (p) => events.push(p));
      expect(a.width).toBe(info.defaultWidth);
      expect(a.height).toBe(info.defaultHeight);
      expect(a.rgb.length).toBe(a.width * a.height * 3);
      expect(a.mode).toBe('DENSE');
      expect(a.wallMs).toBeGreaterThan(0);
      const steps = events.filter((e) => e.phase === 'DENOISING' || e.phase === 'DECODING').map((e) => e.step);
      expect(steps).toEqual([1, 2, 3, 4]);
      expect(events[0].phase).toBe('ENCODING');
      expect(events.every((e) => e.totalSteps === 4)).toBe(true);
      expect(events.find((e) => e.step === 1)?.preview).toMatch(/^data:image\/webp;base64,[A-Za-z0-9+/]+=*$/);
      const b = await backend.generate('conf-b', request(), () => undefined);
      expect(Buffer.from(b.rgb).equals(Buffer.from(a.rgb))).toBe(true);
      const c = await backend.generate('conf-c', request({ seed: 8 }), () => undefined);
      expect(Buffer.from(c.rgb).equals(Buffer.from(a.rgb))).toBe(false);
    });

    it('cancels at the next step', async () => {
      let seen = 0;
      const run = backend.generate('conf-cancel', request({ steps: 60 }), (p) => {
        if (p.step >= 2 && seen === 0) {
          seen = p.step;
          expect(backend.cancel('conf-cancel')).toBe(true);
        }
      });
      const err = await run.then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(InferenceCancelledError);
      // "At the next step": at most a couple of steps past the one where cancel was asked (messages are async).
      expect((err as InferenceCancelledError).completedSteps).toBeLessThanOrEqual(seen + 3);
      expect(backend.cancel('conf-cancel')).toBe(false);
    });

    it('reports input errors it cannot run as InferenceInputError', async () => {
      await expect(backend.generate('conf-bad', request({ width: info.defaultWidth + 1 }), () => undefined)).rejects.toBeInstanceOf(InferenceInputError);
    });

    if (hooks.crash) {
      it('rejects active runs on a crash and recovers on the next run', async () => {
        let crashed = false;
        const run = backend.generate('conf-crash', request({ steps: 60 }), (p) => {
          if (p.step >= 1 && !crashed) {
            crashed = true;
            void hooks.crash!(backend);
          }
        });
        await expect(run).rejects.toBeInstanceOf(InferenceCrashedError);
        const again = await backend.generate('conf-after-crash', request(), () => undefined);
        expect(again.rgb.length).toBe(again.width * again.height * 3);
      });
    }
  });
}
