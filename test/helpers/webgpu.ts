// Whether onnxruntime-node's WebGPU execution provider finds an adapter here (a GPU, or Mesa lavapipe:
// Vulkan on the CPU, which CI installs). Decided synchronously in a child process so that a test file
// can choose describe or describe.skip while it loads; the reason is printed and in the suite's name.
// Under CI=true a missing adapter fails instead: CI installs lavapipe, so the GPU path must be tested.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ORT_SESSION = path.resolve(__dirname, '../../src/engine/runtime/ortSession.ts');

/** Dawn wants a writable XDG_RUNTIME_DIR (it warns on every run otherwise); set before any session. */
export function ensureXdgRuntimeDir(): void {
  if (process.env.XDG_RUNTIME_DIR) return;
  const dir = path.join(os.tmpdir(), `fisedit-xdg-${process.getuid?.() ?? 'user'}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  process.env.XDG_RUNTIME_DIR = dir;
}

export interface WebGpuProbe {
  available: boolean;
  /** Why not (checkDeviceAvailable's message), when unavailable. */
  reason: string;
}

let cached: WebGpuProbe | null = null;

export function webgpuProbe(): WebGpuProbe {
  if (cached) return cached;
  ensureXdgRuntimeDir();
  const script = `require('tsx/cjs'); require(${JSON.stringify(ORT_SESSION)}).checkDeviceAvailable('webgpu')
    .then(() => process.exit(0), (e) => { process.stdout.write(e.message); process.exit(1); });`;
  const r = spawnSync(process.execPath, ['-e', script], { timeout: 60_000, encoding: 'utf8', env: process.env });
  cached = r.status === 0 ? { available: true, reason: '' } : { available: false, reason: (r.stdout || r.stderr || `probe exited ${r.status}`).trim().slice(0, 500) };
  return cached;
}

/**
 * describe(name, fn) when WebGPU has an adapter. Otherwise: under CI=true one failing test saying so;
 * elsewhere describe.skip, with the reason printed and in the suite's name.
 */
export function describeWithWebGpu(name: string, fn: () => void): void {
  const probe = webgpuProbe();
  if (probe.available) {
    describe(name, fn);
    return;
  }
  if (process.env.CI === 'true') {
    describe(name, () => {
      it('needs a WebGPU adapter (CI=true: .ci/run installs Mesa lavapipe)', () => {
        throw new Error(`no WebGPU adapter: ${probe.reason}`);
      });
    });
    return;
  }
  console.warn(`skipping "${name}": no WebGPU adapter (${probe.reason})`);
  describe.skip(`${name} [skipped: no WebGPU adapter]`, fn);
}
