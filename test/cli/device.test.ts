// --device / FISEDIT_DEVICE for the commands that run the engine: a bad name is a usage error (exit 2),
// a device that cannot run here fails before the model load (exit 3) saying what to install, and the
// JSON output reports the device that ran.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ortBindingDir } from '../../src/engine/runtime/ortSession';
import { runFisedit } from '../helpers/runCli';
import { describeWithWebGpu } from '../helpers/webgpu';

const ROOT = path.resolve(__dirname, '../..');
const MODEL = path.join(ROOT, 'test/fixtures/models/tiny-2level');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-device-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
// FISEDIT_DEVICE from the caller's shell must not leak into these runs.
const fisedit = (args: string[], env: Record<string, string | undefined> = {}) => runFisedit(tmp, args, { FISEDIT_DEVICE: undefined, ...env });

const cudaInstalled = fs.existsSync(path.join(ortBindingDir(), 'libonnxruntime_providers_cuda.so'));
if (cudaInstalled) console.log('cli/device.test: the CUDA provider libraries are installed here; the "cuda without them" tests are skipped');
const describeNoCuda = cudaInstalled ? describe.skip : describe;

describeNoCuda('--device cuda without the CUDA provider libraries', () => {
  test.each([
    ['generate', ['generate', '--model', MODEL, '--prompt', 'x', '--seed', '1', '--steps', '1', '--device', 'cuda']],
    ['eval', ['eval', '--model', MODEL, '--limit', '1', '--steps', '1', '--device', 'cuda']],
    ['encode-text', ['encode-text', '--model', MODEL, '--prompt', 'x', '--device', 'cuda', '--out', path.join(tmp, 'never.npy')]],
  ])('%s exits 3 before loading the model, saying how to install them', async (_name, args) => {
    const out = path.join(tmp, 'never.png');
    const r = await fisedit([...args, ...(args[0] === 'generate' ? ['--out', out] : [])]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/libonnxruntime_providers_cuda\.so/);
    expect(r.stderr).toMatch(/ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci/);
    expect(fs.existsSync(out)).toBe(false);
  });

  test('edit exits 3 too (its state folder is checked first, so a real one is given)', async () => {
    const state = path.join(tmp, 'state');
    const g = await fisedit(['generate', '--model', MODEL, '--prompt', 'a red square', '--seed', '2', '--steps', '2', '--state', state, '--out', path.join(tmp, 'p.png'), '--json']);
    expect(g.code).toBe(0);
    const r = await fisedit(['edit', '--model', MODEL, '--state', state, '--prompt', 'a blue square', '--device', 'cuda']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/ONNXRUNTIME_NODE_INSTALL=cuda12/);
  });

  test('FISEDIT_DEVICE=cuda does the same; --device overrides it', async () => {
    const r = await fisedit(['generate', '--model', MODEL, '--prompt', 'x', '--seed', '1', '--steps', '1', '--out', path.join(tmp, 'e.png')], { FISEDIT_DEVICE: 'cuda' });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/npm rebuild onnxruntime-node/);
    const c = await fisedit(['generate', '--model', MODEL, '--prompt', 'x', '--seed', '1', '--steps', '1', '--device', 'cpu', '--out', path.join(tmp, 'c.png'), '--json'], { FISEDIT_DEVICE: 'cuda' });
    expect(c.code).toBe(0);
    expect(JSON.parse(c.stdout).device).toBe('cpu');
  });
});

test('--device webgpu with no Vulkan driver exits 3 before loading the model, naming the missing adapter', async () => {
  // An ICD list that names no file: the Vulkan loader finds no driver, as on a machine without one.
  const r = await fisedit(['generate', '--model', MODEL, '--prompt', 'x', '--seed', '1', '--steps', '1', '--device', 'webgpu', '--out', path.join(tmp, 'w.png')], {
    VK_ICD_FILENAMES: path.join(tmp, 'no-such-icd.json'),
    VK_DRIVER_FILES: path.join(tmp, 'no-such-icd.json'),
  });
  expect(r.code).toBe(3);
  expect(r.stderr).toMatch(/webgpu execution provider could not run a graph[\s\S]*Vulkan driver[\s\S]*No supported adapters/);
  expect(fs.existsSync(path.join(tmp, 'w.png'))).toBe(false);
});

test('an unknown device is a usage error (exit 2) naming the choices, from the flag or the environment', async () => {
  const r = await fisedit(['generate', '--model', MODEL, '--prompt', 'x', '--device', 'tpu']);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/--device must be one of cpu, webgpu, cuda \(got "tpu"\)/);
  const e = await fisedit(['generate', '--model', MODEL, '--prompt', 'x'], { FISEDIT_DEVICE: 'gpu' });
  expect(e.code).toBe(2);
  expect(e.stderr).toMatch(/FISEDIT_DEVICE must be one of/);
});

test('a bad FISEDIT_WEBGPU_ATTENTION is a usage error (exit 2) on webgpu, before anything loads; other devices do not read it', async () => {
  const r = await fisedit(['generate', '--model', MODEL, '--prompt', 'x', '--steps', '1', '--device', 'webgpu', '--out', path.join(tmp, 'f.png')], { FISEDIT_WEBGPU_ATTENTION: 'flash' });
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/generate: FISEDIT_WEBGPU_ATTENTION must be auto, mha, matmul, mha-unfused, chunked or chunked:<chunks> \(got "flash"\)/);
  const c = await fisedit(['generate', '--model', MODEL, '--prompt', 'x', '--seed', '1', '--steps', '1', '--device', 'cpu', '--out', path.join(tmp, 'f.png')], { FISEDIT_WEBGPU_ATTENTION: 'flash' });
  expect(c.code).toBe(0);
});

test('generate --json reports the device (cpu by default); --help documents --device', async () => {
  const r = await fisedit(['generate', '--model', MODEL, '--prompt', 'x', '--seed', '1', '--steps', '1', '--out', path.join(tmp, 'd.png'), '--json']);
  expect(r.code).toBe(0);
  expect(JSON.parse(r.stdout)).toMatchObject({ device: 'cpu', attention: null });
  for (const cmd of ['generate', 'edit', 'encode-text']) expect((await fisedit([cmd, '--help'])).stdout).toMatch(/--device NAME[\s\S]*FISEDIT_DEVICE/);
});

test('encode-text --json reports the device it ran on', async () => {
  const r = await fisedit(['encode-text', '--model', MODEL, '--prompt', 'a red circle', '--out', path.join(tmp, 't.npy'), '--json', '--device', 'cpu']);
  expect(r.code).toBe(0);
  expect(JSON.parse(r.stdout)).toMatchObject({ device: 'cpu', shape: [1, 77, 32] });
});

describeWithWebGpu('generate --device webgpu reports the attention form its graphs use', () => {
  test('auto (the default): the form the start-up probe chose, and why; a form named in FISEDIT_WEBGPU_ATTENTION as it is', async () => {
    const args = ['generate', '--model', MODEL, '--prompt', 'x', '--seed', '1', '--steps', '1', '--device', 'webgpu', '--json'];
    const r = await fisedit([...args, '--out', path.join(tmp, 'wa.png')], { FISEDIT_WEBGPU_ATTENTION: undefined });
    expect(r.code).toBe(0);
    const { device, attention } = JSON.parse(r.stdout);
    expect(device).toBe('webgpu');
    // On lavapipe the fused kernel is wrong and the probe keeps matmul; on a GPU where it is right it may take mha.
    expect(['mha', 'matmul']).toContain(attention.form);
    expect(attention.reason).toMatch(new RegExp(`^auto, ${attention.form}: the (only|fastest right) form`));
    const n = await fisedit([...args, '--out', path.join(tmp, 'wb.png')], { FISEDIT_WEBGPU_ATTENTION: 'chunked:4' });
    expect(n.code).toBe(0);
    expect(JSON.parse(n.stdout).attention).toEqual({ form: 'chunked:4', reason: 'set by FISEDIT_WEBGPU_ATTENTION' });
  }, 180_000);
});
