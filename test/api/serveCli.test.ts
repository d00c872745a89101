// `fisedit serve` and `fisedit token` as modules (src/cli/main.ts dispatches to them).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runServe } from '../../src/cli/serve';
import { runToken } from '../../src/cli/token';
import { ortBindingDir } from '../../src/engine/runtime/ortSession';
import { gqlOk, TINY_MODEL } from './harness';

function bufferIo() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) } }, out, err };
}

it('token create prints a token that serve accepts; serve prints its URL and how to authenticate', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-cli-'));
  const t = bufferIo();
  expect(await runToken(['create', '--user', 'zoe', '--data', dataDir], t.io)).toBe(0);
  const token = t.out.join('').trim();
  expect(token).toMatch(/^fse_[A-Za-z0-9_-]{43}$/);
  expect(t.err.join('')).toMatch(/created user zoe/);

  const s = bufferIo();
  let stop!: () => void;
  const stopSignal = new Promise<void>((r) => (stop = r));
  let url = '';
  const listening = new Promise<void>((resolve) => {
    void runServe(['--port', '0', '--data', dataDir, '--model', TINY_MODEL, '--threads', '1', '--engine', 'thread'], s.io, {
      stopSignal,
      onListening: (u) => {
        url = u;
        resolve();
      },
    }).then((code) => (exitCode = code));
  });
  let exitCode: number | null = null;
  await listening;
  const printed = s.out.join('');
  expect(printed).toMatch(new RegExp(`FISEdit GraphQL API: ${url}/graphql`));
  expect(printed).toMatch(/fisedit token create --user NAME/);
  expect(printed).toMatch(/Authorization: Bearer <token>/);
  const q = await gqlOk(url, '{ me { name } model { name defaultWidth device attention { form reason } } }', {}, token);
  expect(q.me.name).toBe('zoe');
  expect(q.model.device).toBe('cpu');
  expect(q.model.attention).toBeNull(); // a form is reported on WebGPU only

  // Revoking works while the server runs (it honours a revoke within its 10 s token cache).
  const r = bufferIo();
  expect(await runToken(['revoke', '--token', token, '--data', dataDir], r.io)).toBe(0);
  stop();
  for (let i = 0; i < 200 && exitCode === null; i++) await new Promise((res) => setTimeout(res, 50));
  expect(exitCode).toBe(0);
});

it.each([
  [['--port', 'abc'], /--port must be an integer/],
  [['--port', '70000'], /--port must be in/],
  [['--engine', 'gpu'], /--engine must be process or thread/],
  [['--sqlite-sync', 'OFF'], /--sqlite-sync must be FULL or NORMAL/],
  [['--device', 'tpu'], /--device must be one of cpu, webgpu, cuda/],
  [['--bogus'], /Unknown option/],
  [['--image-store', 's3'], /--image-store must be directory or database/],
  [['--image-store', 'database', '--images-dir', '/tmp/x'], /--images-dir is for --image-store directory/],
  [['--images-dir', ''], /--images-dir must name a folder/],
])('serve %j → usage error (exit 2)', async (argv, message) => {
  const b = bufferIo();
  expect(await runServe(argv as string[], b.io)).toBe(2);
  expect(b.err.join('')).toMatch(message);
});

const cudaInstalled = fs.existsSync(path.join(ortBindingDir(), 'libonnxruntime_providers_cuda.so'));
if (cudaInstalled) console.log('serveCli.test: the CUDA provider libraries are installed here; "serve --device cuda without them" is skipped');
(cudaInstalled ? it.skip : it)('serve --device cuda without the CUDA provider libraries exits 3 at start-up saying how to install them', async () => {
  const b = bufferIo();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-cli-'));
  expect(await runServe(['--port', '0', '--data', dataDir, '--model', TINY_MODEL, '--device', 'cuda'], b.io)).toBe(3);
  expect(b.err.join('')).toMatch(/ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci/);
  // Nothing was started: the data dir holds no database
  expect(fs.readdirSync(dataDir)).toEqual([]);
});

it('serve with a missing model exits 3 and names the folder', async () => {
  const b = bufferIo();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-cli-'));
  expect(await runServe(['--port', '0', '--data', dataDir, '--model', '/nonexistent/model'], b.io)).toBe(3);
  expect(b.err.join('')).toMatch(/nonexistent\/model/);
});

it.each([
  [[], 2, /Usage: fisedit token create/],
  [['create'], 2, /--user is required/],
  [['create', '--user', 'bad name!'], 2, /userName/],
  [['rotate'], 2, /unknown action/],
  [['revoke', '--token', 'fse_nope'], 2, /no such active token/],
])('token %j → exit %i', async (argv, code, message) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-cli-'));
  const b = bufferIo();
  const args = argv.length > 1 ? [...argv, '--data', dataDir] : argv;
  expect(await runToken(args as string[], b.io)).toBe(code);
  expect(b.err.join('')).toMatch(message);
});
