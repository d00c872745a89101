// fisedit generate --variant: picks *.<variant>.safetensors, and says which file is missing otherwise.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..');
const cli = path.join(root, 'bin', 'fisedit.js');
const fixture = path.join(root, 'test', 'fixtures', 'models', 'tiny-2level');

describe('fisedit generate --variant', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-variant-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('loads the variant files when present and names the missing one otherwise', () => {
    const model = path.join(tmp, 'model');
    fs.cpSync(fixture, model, { recursive: true });
    const run = () =>
      spawnSync('node', [cli, 'generate', '--model', model, '--variant', 'fp16', '--prompt', 'a red circle', '--steps', '1', '--seed', '1', '--out', path.join(tmp, 'v.png')], { encoding: 'utf8' });
    const missing = run();
    expect(missing.status).toBe(3);
    expect(missing.stderr).toContain('missing variant file diffusion_pytorch_model.fp16.safetensors');
    // The variant files' content is not what's tested here: the same weights under the variant names.
    for (const [sub, base] of [['unet', 'diffusion_pytorch_model'], ['vae', 'diffusion_pytorch_model'], ['text_encoder', 'model']]) {
      fs.renameSync(path.join(model, sub, `${base}.safetensors`), path.join(model, sub, `${base}.fp16.safetensors`));
    }
    const ok = run();
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    expect(fs.statSync(path.join(tmp, 'v.png')).size).toBeGreaterThan(100);
    // --state loads the recording UNet from the same variant files
    const recorded = spawnSync('node', [cli, 'generate', '--model', model, '--variant', 'fp16', '--state', path.join(tmp, 'st'), '--prompt', 'a red circle', '--steps', '1', '--seed', '1', '--out', path.join(tmp, 'r.png')], { encoding: 'utf8' });
    expect(recorded.stderr).toBe('');
    expect(recorded.status).toBe(0);
  });
});
