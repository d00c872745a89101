// What one host↔device copy costs on an execution provider that keeps data on the device (WebGPU): a
// Relu graph timed with its input and output on the host or in device memory (gpu-buffer);
// upload ≈ t(host in, device out) − t(device in, device out), download ≈ t(device in, host out) −
// t(device in, device out). A run whose input and output stay on the device returns once its work is
// queued (there is no sync point without a download), so upload and download include that wait.
// Used by copies.ts (the table, plus the bundled UNet's text copy) and bench.ts (phase 1c, on the GPU).
import { GraphBuilder } from '../../src/engine/graph/graphBuilder';
import { gaussianFloat32 } from '../../src/engine/random/gaussian';
import { createSession, float32Tensor, type DeviceTensor, type EngineDevice, type EngineTensor } from '../../src/engine/runtime/ortSession';
import { median } from '../sparse/benchArgs';

export interface CopyCost {
  label: string;
  mib: number;
  /** Medians, ms. */
  deviceRunMs: number;
  hostRunMs: number;
  uploadMs: number;
  downloadMs: number;
}

/** The tensors the engine moves per step, by the names the tables print. */
export const STEP_TENSORS: readonly [string, number][] = [
  ['SD latents, CFG batch 2, 512 px (also ε)', 2 * 4 * 64 * 64],
  ['CLIP text embeddings, CFG batch 2', 2 * 77 * 768],
  ['SD image, 512 px (VAE output)', 3 * 512 * 512],
  ['16 MiB of cached rows', 4 * 2 ** 20],
  ['64 MiB of cached rows', 16 * 2 ** 20],
];

/** Median ms of each variant, the variants interleaved rep by rep so that load on the machine hits all alike. */
export async function timeInterleaved(fns: (() => Promise<unknown>)[], reps: number): Promise<number[]> {
  for (const fn of fns) await fn(); // warm-up (pipeline compilation, buffer pools)
  const ts: number[][] = fns.map(() => []);
  for (let i = 0; i < reps; i++) {
    for (let k = 0; k < fns.length; k++) {
      const t0 = performance.now();
      await fns[k]();
      ts[k].push(performance.now() - t0);
    }
  }
  return ts.map(median);
}

export async function copyCost(label: string, n: number, reps: number, device: EngineDevice = 'webgpu'): Promise<CopyCost> {
  const g = new GraphBuilder('relu');
  g.output('y', g.op('Relu', [g.input('x', 'float32', [n])]), 'float32', [n]);
  const built = g.build();
  const toHost = await createSession(built, { device });
  const toDevice = await createSession(built, { device, deviceOutputs: ['y'] });
  const x: EngineTensor = float32Tensor(gaussianFloat32(1n, n), [n]);
  let onDevice: DeviceTensor = (await toDevice.runWithDevice({ x })).device.y;
  try {
    const [hh, dd, hd, dh] = await timeInterleaved(
      [
        () => toHost.run({ x }),
        async () => {
          const r = await toDevice.runWithDevice({ x: onDevice });
          onDevice.release();
          onDevice = r.device.y;
        },
        async () => (await toDevice.runWithDevice({ x })).device.y.release(),
        () => toHost.run({ x: onDevice }),
      ],
      reps,
    );
    return { label, mib: (4 * n) / 2 ** 20, deviceRunMs: dd, hostRunMs: hh, uploadMs: hd - dd, downloadMs: dh - dd };
  } finally {
    onDevice.release(); // before the sessions that made it (DeviceTensor)
    await Promise.all([toHost.release(), toDevice.release()]);
  }
}

export const COPY_TABLE_HEAD = ['| tensor | MiB | device→device run | host→host run | upload | download |', '|---|---|---|---|---|---|'];

export function copyRow(c: CopyCost): string {
  return `| ${c.label} | ${c.mib.toFixed(2)} | ${c.deviceRunMs.toFixed(2)} | ${c.hostRunMs.toFixed(2)} | ${c.uploadMs.toFixed(2)} | ${c.downloadMs.toFixed(2)} |`;
}
