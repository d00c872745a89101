// The fisedit CLI end to end: spawned as a user runs it (node bin/fisedit.js) on the fixture models.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { readPngText } from '../../src/engine/image/png';
import { readNpy, writeNpy } from '../../src/engine/io/npy';
import { runFisedit } from '../helpers/runCli';

const ROOT = path.resolve(__dirname, '../..');
const BIN = path.join(ROOT, 'bin', 'fisedit.js');
const MODEL = path.join(ROOT, 'test/fixtures/models/tiny-2level');
const GOLDEN = path.join(ROOT, 'test/fixtures/golden/tiny-2level');
const meta = JSON.parse(fs.readFileSync(path.join(GOLDEN, 'meta.json'), 'utf8'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const fisedit = (...args: string[]) => runFisedit(tmp, args);

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('fisedit generate', () => {
  test('writes a PNG with metadata and prints one JSON object with timings', async () => {
    const out = path.join(tmp, 'cat.png');
    const r = await fisedit('generate', '--model', MODEL, '--prompt', 'a red cat, café', '--negative', 'blurry', '--seed', '18446744073709551615',
      '--steps', '3', '--guidance', '5.5', '--scheduler', 'euler', '--out', out, '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const j = JSON.parse(lines[0]);
    expect(j).toMatchObject({
      out, model: 'tiny-2level', prompt: 'a red cat, café', negative: 'blurry', seed: '18446744073709551615',
      steps: 3, guidance: 5.5, scheduler: 'euler', width: 32, height: 32, promptTruncated: false, initLatents: null,
    });
    expect(Object.keys(j.timings)).toEqual(['loadModel', 'encodeText', 'prepareLatents', 'denoise', 'decode', 'postprocess', 'writeOutput']);
    for (const v of Object.values(j.timings)) expect(v).toBeGreaterThanOrEqual(0);
    expect(j.timings.denoise).toBeGreaterThan(0);
    // totalMs is the inference phases only: model loading and file writing are reported beside it
    const phases = j.timings.encodeText + j.timings.prepareLatents + j.timings.denoise + j.timings.decode + j.timings.postprocess;
    // The gaps between phases (input checks, scheduler set-up, GC) are small but not bounded on a loaded
    // machine; what matters is that totalMs spans the phases and excludes model loading and writing.
    expect(j.totalMs).toBeGreaterThanOrEqual(phases - 0.5);
    expect(j.totalMs - phases).toBeLessThan(50 + 0.2 * phases);
    expect(j.timings.loadModel).toBeGreaterThan(0);

    const { info } = await sharp(out).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([32, 32, 3]);
    expect(readPngText(out)).toEqual({
      prompt: 'a red cat, café', negative: 'blurry', seed: '18446744073709551615', steps: '3', scheduler: 'euler',
      guidance: '5.5', model: 'tiny-2level', width: '32', height: '32', Software: 'fisedit',
    });
  });

  test('a seed reproduces its image exactly; defaults apply (dpmpp-2m, 20 steps, 7.5)', async () => {
    const runs = await Promise.all(
      ['a.png', 'b.png'].map((f) => fisedit('generate', '--model', MODEL, '--prompt', 'a blue square', '--seed', '7', '--out', path.join(tmp, f), '--json')),
    );
    for (const r of runs) expect(r.code).toBe(0);
    const j = JSON.parse(runs[0].stdout);
    expect([j.scheduler, j.steps, j.guidance, j.seed]).toEqual(['dpmpp-2m', 20, 7.5, 7]);
    const [a, b] = await Promise.all(['a.png', 'b.png'].map((f) => sharp(path.join(tmp, f)).raw().toBuffer()));
    expect(a.equals(b)).toBe(true);
  });

  test.each(['ddim', 'dpmpp-2m', 'euler'])('--init-latents reproduces the golden final latents with %s (1e-3)', async (scheduler) => {
    const saved = path.join(tmp, `latents_${scheduler}.npy`);
    const out = path.join(tmp, `golden_${scheduler}.png`);
    const r = await fisedit('generate', '--model', MODEL, '--prompt', meta.prompt, '--negative', meta.negative, '--steps', String(meta.steps),
      '--guidance', String(meta.guidance), '--scheduler', scheduler, '--init-latents', path.join(GOLDEN, 'init_noise.npy'),
      '--save-latents', saved, '--out', out);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${out}: 32×32, init latents`);
    const got = readNpy(saved);
    expect(got.shape).toEqual([1, 4, 16, 16]);
    const ref = readNpy(path.join(GOLDEN, `latents_${scheduler}.npy`)).data as Float32Array;
    expect(maxDiff(got.data as Float32Array, ref)).toBeLessThan(1e-3);
    expect(readPngText(out)).toMatchObject({ init_latents: 'init_noise.npy', scheduler });
    expect(readPngText(out).seed).toBeUndefined();
  });

  test('ddim image equals the postprocessed golden decoder output to within one level', async () => {
    const png = await sharp(path.join(tmp, 'golden_ddim.png')).raw().toBuffer();
    const img = readNpy(path.join(GOLDEN, 'image.npy')).data as Float32Array; // [1,3,32,32]
    let worst = 0;
    for (let p = 0; p < 32 * 32; p++) {
      for (let c = 0; c < 3; c++) {
        const want = Math.min(1, Math.max(0, img[c * 1024 + p] / 2 + 0.5)) * 255;
        worst = Math.max(worst, Math.abs(png[p * 3 + c] - want));
      }
    }
    expect(worst).toBeLessThanOrEqual(1);
  });
});

describe('fisedit tokenize and encode-text', () => {
  test('tokenize prints the reference ids and the truncated flag', async () => {
    const tokens = JSON.parse(fs.readFileSync(path.join(GOLDEN, 'tokens.json'), 'utf8')) as { prompt: string; ids: number[]; truncated: boolean }[];
    for (const t of [tokens[1], tokens.find((x) => x.truncated)!]) {
      const r = await fisedit('tokenize', '--model', MODEL, '--prompt', t.prompt);
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.ids).toEqual(t.ids);
      expect(j.truncated).toBe(t.truncated);
    }
  });

  test('encode-text writes last_hidden_state [1,77,32] equal to the reference prompt row', async () => {
    const out = path.join(tmp, 'embeds.npy');
    const r = await fisedit('encode-text', '--model', MODEL, '--prompt', meta.prompt, '--out', out, '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ out, shape: [1, 77, 32], truncated: false });
    const got = readNpy(out);
    expect(got.shape).toEqual([1, 77, 32]);
    const ref = readNpy(path.join(GOLDEN, 'text_embeds.npy')).data as Float32Array; // [negative, prompt]
    expect(maxDiff(got.data as Float32Array, ref.subarray(77 * 32))).toBeLessThan(1e-4);
  });
});

describe('fisedit errors', () => {
  test('a bad model folder exits 3 naming the problem', async () => {
    const bad = path.join(tmp, 'bad-model');
    fs.mkdirSync(bad, { recursive: true });
    fs.writeFileSync(path.join(bad, 'model_index.json'), '{}');
    const r = await fisedit('generate', '--model', bad, '--prompt', 'x', '--seed', '1', '--out', path.join(tmp, 'never.png'));
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^fisedit: .*bad-model.*unet.*config/m);
    expect(fs.existsSync(path.join(tmp, 'never.png'))).toBe(false);
    const missing = await fisedit('tokenize', '--model', path.join(tmp, 'nope'), '--prompt', 'x');
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain('nope');
  });

  test('a scheduler config the engine cannot honour exits 3 naming the file and the key', async () => {
    const copy = path.join(tmp, 'vpred-model');
    fs.cpSync(MODEL, copy, { recursive: true });
    const cfgFile = path.join(copy, 'scheduler', 'scheduler_config.json');
    fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, 'utf8')), prediction_type: 'v_prediction' }));
    const r = await fisedit('generate', '--model', copy, '--prompt', 'x', '--seed', '1', '--steps', '2', '--scheduler', 'ddim', '--out', path.join(tmp, 'v.png'));
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${copy}${path.sep}scheduler/scheduler_config.json: ddim supports prediction_type "epsilon" only (got "v_prediction")`);
  });

  test('without --model the bundled default model (models/default, committed) is used', async () => {
    const t = await fisedit('tokenize', '--prompt', 'a red circle on the left');
    expect(t.code).toBe(0);
    // Every scene word is one token in the bundled model's vocabulary; EOS pads to 77.
    const tok = JSON.parse(t.stdout);
    expect(tok.tokens).toEqual(['a</w>', 'red</w>', 'circle</w>', 'on</w>', 'the</w>', 'left</w>']);
    expect(tok.ids).toHaveLength(77);
    expect(tok.ids.slice(7).every((id: number) => id === tok.ids[7])).toBe(true);
    const out = path.join(tmp, 'default.png');
    const g = await fisedit('generate', '--prompt', 'a red circle on the left on a white background', '--seed', '3', '--steps', '2', '--out', out, '--json');
    expect(g.code).toBe(0);
    expect(JSON.parse(g.stdout)).toMatchObject({ model: 'default', width: 64, height: 64, steps: 2 });
    expect(fs.statSync(out).size).toBeGreaterThan(100);
  });

  test.each([
    [['generate', '--model', MODEL], 2, /--prompt is required/],
    [['generate', '--model', MODEL, '--prompt', 'x', '--steps', '0'], 2, /steps: must be an integer in \[1, 150\]/],
    [['generate', '--model', MODEL, '--prompt', 'x', '--steps', 'ten'], 2, /--steps must be an integer/],
    [['generate', '--model', MODEL, '--prompt', 'x', '--guidance', '31'], 2, /guidance: must be a number in \[0, 30\]/],
    [['generate', '--model', MODEL, '--prompt', 'x', '--scheduler', 'pndm'], 2, /scheduler: must be one of ddim, dpmpp-2m, euler/],
    [['generate', '--model', MODEL, '--prompt', 'x', '--seed', '-3'], 2, /seed/],
    [['generate', '--model', MODEL, '--prompt', 'x', '--width', '30'], 2, /width: must be a multiple of 4/],
    [['generate', '--model', MODEL, '--prompt', 'x', '--seed', '1', '--init-latents', 'z.npy'], 2, /exclude each other/],
    [['generate', '--model', MODEL, '--prompt', 'x', '--init-latents', 'missing.npy'], 4, /missing\.npy/],
    [['generate', '--model', MODEL, '--prompt', 'x', '--frobnicate'], 2, /Unknown option '--frobnicate'/],
    [['paint'], 2, /unknown command "paint"/],
  ])('%j exits %i', async (args, code, message) => {
    const r = await fisedit(...(args as string[]));
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(code);
  });

  test('Ctrl-C (SIGINT) during denoising stops before the next step: exit 130, no PNG', async () => {
    const out = path.join(tmp, 'interrupted.png');
    const child = spawn(process.execPath, [BIN, 'generate', '--model', MODEL, '--prompt', 'x', '--seed', '1', '--steps', '150', '--progress', 'lines', '--out', out], {
      cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (d) => {
      stderr += d;
      if (!sent && stderr.includes('step 1/150')) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(130);
    expect(stderr).toMatch(/fisedit: generate: generation aborted after \d+ of 150 steps/);
    expect(fs.existsSync(out)).toBe(false);
  });

  test('init latents that do not fit the requested size are refused with both shapes', async () => {
    const f = path.join(tmp, 'small.npy');
    writeNpy(f, { dtype: 'float32', shape: [1, 4, 8, 8], data: new Float32Array(256) });
    const r = await fisedit('generate', '--model', MODEL, '--prompt', 'x', '--init-latents', f, '--width', '32');
    expect(r.code).toBe(2);
    // height defaults from the file (8 latent rows → 16 px), width 32 needs 16 latent columns
    expect(r.stderr).toMatch(/initLatents: must be float32 \[1, 4, 8, 16\] \(512 values\) for 32×16; got 256 values/);
  });

  test('--help lists commands and exit codes', async () => {
    const r = await fisedit('--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/generate[\s\S]*encode-text[\s\S]*tokenize[\s\S]*Exit codes:[\s\S]*3 +model error/);
    const g = await fisedit('generate', '--help');
    expect(g.stdout).toContain('--init-latents FILE');
  });
});
