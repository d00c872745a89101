// bench/gpu: the pieces of the offline GPU bundle that can be checked without a GPU — travel-size
// accounting, which ICU items the bundled node drops, the PNG stand-in for sharp (against sharp itself),
// the random SD-topology model (the engine loads and runs it), and, when `npm run bundle:gpu` has been
// run here, the bundle itself (its node runs the app, with onnxruntime, from the archives alone).

import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { initScale, presetConfigs, writeRandomModelFolder } from '../../bench/gpu/randomModel';
import realShim, { decodePngRaw, encodePngRaw } from '../../bench/gpu/sharpShim';
import { formatTravelReport, icuItemsToDrop, travelReport, TRAVEL_LIMIT_BYTES } from '../../bench/gpu/travel';
import { parseUNetConfig } from '../../src/engine/model/configs';
import { expectedUNetTensors } from '../../src/engine/model/expectedTensors';
import { loadModelFolder } from '../../src/engine/model/modelFolder';
import { DiffusionEngine } from '../../src/engine/pipeline/engine';

const ROOT = path.resolve(__dirname, '../..');

describe('travel accounting', () => {
  test('sums tracked, untracked and bundle bytes against 64 MiB', () => {
    const r = travelReport({ trackedBytes: 40 * 2 ** 20, untrackedBytes: 2 ** 20, bundleFiles: [15 * 2 ** 20, 6 * 2 ** 20, 2 ** 20] });
    expect(r.limitBytes).toBe(67108864);
    expect(r.bundleBytes).toBe(22 * 2 ** 20);
    expect(r.totalBytes).toBe(63 * 2 ** 20);
    expect(r.headroomBytes).toBe(2 ** 20);
    expect(r.fits).toBe(true);
    const over = travelReport({ trackedBytes: TRAVEL_LIMIT_BYTES, bundleFiles: [1] });
    expect(over.fits).toBe(false);
    expect(formatTravelReport(over)).toMatch(/0\.00 MiB OVER/);
  });

  test('ICU trimming keeps root, English and every non-locale item', () => {
    const items = [
      'af.res', 'de.res', 'de_CH.res', 'ars.res', 'zh_Hant_TW.res', 'en.res', 'en_US.res', 'en_GB.res', 'root.res', 'res_index.res', 'pool.res',
      'coll/de.res', 'coll/de_.res', 'coll/root.res', 'coll/ucadata.icu', 'coll/res_index.res', 'zone/fr.res', 'zone/en.res', 'zone/pool.res',
      'zoneinfo64.res', 'metaZones.res', 'supplementalData.res', 'likelySubtags.res', 'plurals.res', 'numberingSystems.res', 'icuver.res',
      'nfc.nrm', 'uprops.icu', 'ucase.icu', 'ibm-1390_P110-2003.cnv', 'cnvalias.icu', 'unames.icu', 'translit/root.res', 'brkitr/root.res', 'brkitr/cjdict.dict',
    ];
    expect(icuItemsToDrop(items).sort()).toEqual(
      ['af.res', 'de.res', 'de_CH.res', 'ars.res', 'zh_Hant_TW.res', 'coll/de.res', 'coll/de_.res', 'zone/fr.res', 'ibm-1390_P110-2003.cnv', 'cnvalias.icu', 'unames.icu', 'translit/root.res', 'brkitr/root.res', 'brkitr/cjdict.dict'].sort(),
    );
  });
});

describe('sharpShim: the bundle PNG codec agrees with sharp', () => {
  const noise = (n: number, seed: number) => {
    let x = seed;
    return Uint8Array.from({ length: n }, (_, i) => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24) ^ (i % 7 === 0 ? 0 : (i * 3) & 0xff));
  };
  for (const channels of [1, 3, 4]) {
    test(`${channels} channel(s): shim → sharp and sharp (adaptive filters) → shim round trips`, async () => {
      const w = 37;
      const h = 23;
      const px = noise(w * h * channels, channels);
      const decoder = sharp(encodePngRaw(px, w, h, channels));
      // sharp widens grey to sRGB unless told to keep it grey.
      const viaSharp = await (channels === 1 ? decoder.toColourspace('b-w') : decoder).raw().toBuffer({ resolveWithObject: true });
      expect(viaSharp.info).toMatchObject({ width: w, height: h, channels });
      expect(new Uint8Array(viaSharp.data)).toEqual(px);
      // sharp picks PNG filters per row (sub/up/average/paeth on smooth rows): a gradient exercises them.
      const smooth = Uint8Array.from({ length: w * h * channels }, (_, i) => (Math.floor(i / channels) % w) * 3 + Math.floor(i / (w * channels)) * 5 + (i % channels) * 40);
      for (const img of [px, smooth]) {
        const raw = sharp(Buffer.from(img), { raw: { width: w, height: h, channels: channels as 1 | 3 | 4 } });
        const png = await (channels === 1 ? raw.toColourspace('b-w') : raw).png({ adaptiveFiltering: true }).toBuffer();
        const d = decodePngRaw(png);
        expect([d.width, d.height, d.channels]).toEqual([w, h, channels]);
        expect(new Uint8Array(d.data)).toEqual(img);
      }
    });
  }

  test('the sharp-shaped calls the engine makes (raw→png, png→raw, ensureAlpha)', async () => {
    const rgb = noise(8 * 5 * 3, 9);
    const png = (await realShim(rgb, { raw: { width: 8, height: 5, channels: 3 } }).png().toBuffer()) as Buffer;
    const back = (await realShim(png).raw().toBuffer({ resolveWithObject: true })) as { data: Buffer; info: { channels: number } };
    expect(back.info.channels).toBe(3);
    expect(new Uint8Array(back.data)).toEqual(rgb);
    const rgba = (await realShim(png).toColourspace('srgb').ensureAlpha().raw().toBuffer({ resolveWithObject: true })) as { data: Buffer };
    const want = await sharp(png).toColourspace('srgb').ensureAlpha().raw().toBuffer();
    expect(new Uint8Array(rgba.data)).toEqual(new Uint8Array(want));
  });
});

describe('randomModel: SD-topology random weights the engine loads', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-gpu-random-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('init scale is PyTorch default: norms 1/0, weights and biases ±1/√fan_in', () => {
    const shapes = expectedUNetTensors(parseUNetConfig(presetConfigs('sd15').unet, 'unet/config.json'));
    expect(initScale('down_blocks.0.resnets.0.norm1.weight', [320], shapes)).toEqual({ constant: 1 });
    expect(initScale('down_blocks.0.resnets.0.norm1.bias', [320], shapes)).toEqual({ constant: 0 });
    expect(initScale('down_blocks.0.attentions.0.transformer_blocks.0.norm2.weight', [320], shapes)).toEqual({ constant: 1 });
    expect(initScale('conv_in.weight', [320, 4, 3, 3], shapes)).toEqual({ uniform: 1 / 6 });
    expect(initScale('conv_in.bias', [320], shapes)).toEqual({ uniform: 1 / 6 });
    expect(initScale('down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight', [320, 768], shapes)).toEqual({ uniform: 1 / Math.sqrt(768) });
  });

  test('the narrow preset loads, its values follow the init, and a generation runs to finite pixels', async () => {
    const first = writeRandomModelFolder(dir, 'narrow', 3);
    expect(first.reused).toBe(false);
    expect(writeRandomModelFolder(dir, 'narrow', 3).reused).toBe(true);
    const folder = loadModelFolder(dir);
    expect(folder.unet.config.blockOutChannels).toEqual([32, 64, 64, 64]);
    expect(folder.unet.config.crossAttentionDim).toBe(folder.textEncoder.config.hiddenSize);
    const norm = folder.unet.weights.get('conv_norm_out.weight')!;
    expect([...new Float32Array(norm.data.buffer, norm.data.byteOffset, 32)]).toEqual(Array(32).fill(1));
    const conv = folder.unet.weights.get('conv_in.weight')!;
    const vals = new Float32Array(conv.data.buffer, conv.data.byteOffset, conv.data.byteLength / 4);
    const bound = 1 / 6;
    expect(Math.max(...vals.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...vals.map(Math.abs))).toBeGreaterThan(0.9 * bound);
    const engine = await DiffusionEngine.load(dir, { intraOpNumThreads: 1 });
    try {
      const r = await engine.generate({ prompt: 'a red circle on the left', seed: 1, steps: 2, width: 64, height: 64 });
      expect([r.width, r.height]).toEqual([64, 64]);
      expect(r.latents.every(Number.isFinite)).toBe(true);
      expect(new Set(r.rgb).size).toBeGreaterThan(1);
    } finally {
      await engine.dispose();
    }
  });
});

const BUNDLE = path.join(ROOT, '.gpu-bundle');
const haveBundle = ['node.xz', 'ort.tar.xz', 'app.tar.xz'].every((f) => fs.existsSync(path.join(BUNDLE, f)));
if (!haveBundle) console.log('test/bench/gpuBundle.test.ts: no .gpu-bundle here (npm run bundle:gpu builds it, ~5 min): the bundle check is skipped');
(haveBundle ? describe : describe.skip)('the built bundle (.gpu-bundle)', () => {
  test("its node, alone, loads the archived onnxruntime and runs the app's argument check", () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-gpu-bundle-'));
    try {
      execFileSync('sh', ['-c', `xz -dc "${BUNDLE}/node.xz" > node && chmod +x node && mkdir app && xz -dc "${BUNDLE}/ort.tar.xz" | tar xf - -C app && xz -dc "${BUNDLE}/app.tar.xz" | tar xf - -C app`], { cwd: work });
      const env = { PATH: '/usr/bin:/bin', HOME: work };
      const ort = execFileSync(path.join(work, 'node'), ['-e', 'console.log(JSON.stringify(require("onnxruntime-node").listSupportedBackends().map((b) => b.name)), new Intl.NumberFormat("en").format(1234.5))'], { cwd: path.join(work, 'app'), env }).toString();
      expect(ort).toMatch(/"cpu".*"webgpu".*1,234\.5/);
      let err = '';
      try {
        execFileSync(path.join(work, 'node'), [path.join(work, 'app/bench.js'), '--bogus', '1'], { env, stdio: 'pipe' });
      } catch (e) {
        err = String((e as { stderr: Buffer }).stderr);
      }
      expect(err).toMatch(/bench\/gpu: unknown argument --bogus/);
      expect(fs.readdirSync(path.join(work, 'app/debs')).some((f) => /^libvulkan1_.*_amd64\.deb$/.test(f))).toBe(true);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
});
