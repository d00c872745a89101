// Child process of the dense bench: holds ONE UNet session (ours or the torch export) and runs it when
// the parent asks. Started by variantProcess.ts with the WorkerSpec as JSON in argv[2] and --expose-gc.
//
// Both variants go through the engine's createSession with the same options (CPU EP, graph optimisation
// 'all', intra-op threads from the spec, inter-op 1) and both hand ORT their weights as in-memory
// external data (ours: views into the safetensors buffer; torch: unet_torch.onnx.data read into memory),
// so session creation time and peak RSS compare the graphs, not two loading paths.

import * as fs from 'fs';
import * as path from 'path';
import { buildUNetGraph } from '../../src/engine/arch/unet';
import { BuiltModel } from '../../src/engine/graph/graphBuilder';
import { loadModelFolder } from '../../src/engine/model/modelFolder';
import { gaussianFloat32 } from '../../src/engine/random/gaussian';
import { createSession, EngineTensor, float32Tensor, OrtModelSession } from '../../src/engine/runtime/ortSession';
import { CreateTimings, InputSpec, ParentMessage, WorkerMessage, WorkerSpec } from './protocol';

const MB = 1024 * 1024;
/** fs.readSync reads at most 2^31−1 bytes per call; SD 1.5's external data is 3.4 GB. */
const READ_CHUNK = 1 << 30;

function send(m: WorkerMessage): void {
  process.send!(m);
}

function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) gc();
}

function readLargeFile(file: string): Uint8Array {
  const size = fs.statSync(file).size;
  const out = new Uint8Array(size);
  const fd = fs.openSync(file, 'r');
  try {
    for (let done = 0; done < size; ) {
      const n = fs.readSync(fd, out, done, Math.min(READ_CHUNK, size - done), done);
      if (n === 0) throw new Error(`bench/dense: ${file}: unexpected end of file at byte ${done} of ${size}`);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

function modelBytes(built: BuiltModel): number {
  return built.model.byteLength + (built.externalData ?? []).reduce((s, e) => s + e.data.byteLength, 0);
}

/** ours: folder → buildUNetGraph → build() → session (the product path, pipeline/engine.ts). */
async function createOurs(spec: WorkerSpec): Promise<{ session: OrtModelSession; create: CreateTimings; bytes: number }> {
  const t0 = performance.now();
  const folder = loadModelFolder(spec.source);
  const t1 = performance.now();
  const unet = buildUNetGraph(folder.unet.config, folder.unet.weights);
  if (unet.unusedWeights.length) throw new Error(`bench/dense: ${spec.source}: UNet weights not used by the graph: ${unet.unusedWeights.join(', ')}`);
  const built = unet.g.build();
  const t2 = performance.now();
  const session = await createSession(built, { intraOpNumThreads: spec.threads });
  const t3 = performance.now();
  return { session, bytes: modelBytes(built), create: { readMs: t1 - t0, buildMs: t2 - t1, sessionMs: t3 - t2, totalMs: t3 - t0 } };
}

/** torch: unet_torch.onnx (+ unet_torch.onnx.data, referenced by that file name) → session. */
async function createTorch(spec: WorkerSpec): Promise<{ session: OrtModelSession; create: CreateTimings; bytes: number }> {
  const t0 = performance.now();
  const model = readLargeFile(spec.source);
  const dataFile = `${spec.source}.data`;
  const externalData = fs.existsSync(dataFile) ? [{ path: path.basename(dataFile), data: readLargeFile(dataFile) }] : undefined;
  // inputs/outputs describe graphs we build; createSession does not read them.
  const built: BuiltModel = { model, externalData, inputs: [], outputs: [] };
  const t1 = performance.now();
  const session = await createSession(built, { intraOpNumThreads: spec.threads });
  const t2 = performance.now();
  return { session, bytes: modelBytes(built), create: { readMs: t1 - t0, buildMs: 0, sessionMs: t2 - t1, totalMs: t2 - t0 } };
}

/** sample [B,C,h,w] (one latent repeated, as CFG does), timestep [B], encoder_hidden_states [B,L,D]. */
function makeFeeds(s: InputSpec): Record<string, EngineTensor> {
  const latent = gaussianFloat32(s.seed, s.channels * s.height * s.width);
  const sample = new Float32Array(s.batch * latent.length);
  for (let b = 0; b < s.batch; b++) sample.set(latent, b * latent.length);
  const text = gaussianFloat32(s.seed + 1, s.batch * s.seq * s.contextDim);
  return {
    sample: float32Tensor(sample, [s.batch, s.channels, s.height, s.width]),
    timestep: float32Tensor(new Float32Array(s.batch).fill(s.timestep), [s.batch]),
    encoder_hidden_states: float32Tensor(text, [s.batch, s.seq, s.contextDim]),
  };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]) as WorkerSpec;
  const baselineRssMB = process.memoryUsage().rss / MB;
  const { session, create, bytes } = spec.variant === 'ours' ? await createOurs(spec) : await createTorch(spec);
  // ORT copied the in-memory weights; the JS buffers are garbage now (as in DiffusionEngine.load).
  collectGarbage();
  if (session.outputNames.length !== 1) throw new Error(`bench/dense: ${spec.source}: expected one graph output, got ${session.outputNames.join(', ')}`);
  const outputName = session.outputNames[0];
  const feeds = makeFeeds(spec.input);
  send({ kind: 'ready', create, baselineRssMB, rssAfterCreateMB: process.memoryUsage().rss / MB, modelBytes: bytes, outputName });

  process.on('message', (m: ParentMessage) => {
    void (async () => {
      try {
        if (m.cmd === 'run') {
          const c0 = process.cpuUsage();
          const t0 = performance.now();
          const out = await session.run(feeds, [outputName]);
          const wallMs = performance.now() - t0;
          const c = process.cpuUsage(c0);
          const y = out[outputName];
          send(m.returnOutput
            ? { kind: 'ran', wallMs, cpuMs: (c.user + c.system) / 1000, output: y.data as Float32Array, outputDims: y.dims }
            : { kind: 'ran', wallMs, cpuMs: (c.user + c.system) / 1000 });
        } else {
          // maxRSS is in kilobytes on Linux and macOS.
          send({ kind: 'final', peakRssMB: process.resourceUsage().maxRSS / 1024, rssMB: process.memoryUsage().rss / MB });
          await session.release();
          process.disconnect();
        }
      } catch (e) {
        send({ kind: 'error', message: (e as Error).stack ?? String(e) });
      }
    })();
  });
}

main().catch((e: unknown) => {
  send({ kind: 'error', message: (e as Error).stack ?? String(e) });
  process.disconnect();
});
