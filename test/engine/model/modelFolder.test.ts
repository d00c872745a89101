import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseClipTextConfig, parseUNetConfig } from '../../../src/engine/model/configs';
import { expectedClipTensors, expectedUNetTensors, expectedVaeDecoderTensors } from '../../../src/engine/model/expectedTensors';
import { loadModelFolder, ModelFolderError } from '../../../src/engine/model/modelFolder';
import { toFloat32 } from '../../../src/engine/model/tensor';
import { tinyUNetSpecs, TINY_UNET_CONFIG, weightsName, writeTinyModelFolder } from '../../helpers/modelFolderBuilder';
import { writeSafetensors } from '../../helpers/safetensorsWriter';

let tmp: string;
let n = 0;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'model-folder-test-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function freshFolder(opts: Parameters<typeof writeTinyModelFolder>[1] = {}): string {
  const dir = path.join(tmp, `m${n++}`);
  writeTinyModelFolder(dir, opts);
  return dir;
}

function loadError(dir: string, opts?: Parameters<typeof loadModelFolder>[1]): ModelFolderError {
  try {
    loadModelFolder(dir, opts);
  } catch (e) {
    expect(e).toBeInstanceOf(ModelFolderError);
    return e as ModelFolderError;
  }
  throw new Error('expected loadModelFolder to throw');
}

/** Independent float → nearest-even fp16 value (normal and subnormal range, no overflow). */
function roundToHalf(x: number): number {
  if (x === 0) return 0;
  const a = Math.abs(x);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  const ulp = 2 ** (Math.max(e, -14) - 10);
  const q = a / ulp;
  const fl = Math.floor(q);
  const r = q - fl;
  const m = r > 0.5 ? fl + 1 : r < 0.5 ? fl : fl % 2 === 0 ? fl : fl + 1;
  return Math.sign(x) * m * ulp;
}

describe('loadModelFolder: a good folder', () => {
  test('loads configs, weights (renamed VAE attention, squeezed), tokenizer paths and scheduler config', () => {
    const dir = freshFolder({ oldVaeAttention: true, positionIds: true });
    const m = loadModelFolder(dir);
    expect(m.name).toBe(path.basename(dir));
    expect(m.variant).toBeNull();
    expect(m.unet.config.blockOutChannels).toEqual([8, 16]);
    expect(m.unet.weights.size).toBe(expectedUNetTensors(m.unet.config).size);
    expect(m.textEncoder.weights.size).toBe(expectedClipTensors(m.textEncoder.config).size); // position_ids dropped
    expect(m.textEncoder.weights.has('text_model.embeddings.position_ids')).toBe(false);
    const attn = 'decoder.mid_block.attentions.0';
    expect(m.vae.weights.get(`${attn}.to_q.weight`)!.shape).toEqual([8, 8]);
    expect(m.vae.weights.get(`${attn}.to_out.0.bias`)!.shape).toEqual([8]);
    expect(m.vae.weights.has(`${attn}.query.weight`)).toBe(false);
    expect(m.vae.weights.get(`${attn}.to_q.weight`)!.name).toBe(`${attn}.to_q.weight`);
    expect(m.vae.weights.has('encoder.conv_in.weight')).toBe(true); // expected extra, kept for img2img
    expect(m.vae.weights.size).toBe(expectedVaeDecoderTensors(m.vae.config).size + 2);
    expect(m.tokenizer.vocabFile).toBe(path.join(dir, 'tokenizer', 'vocab.json'));
    expect(m.tokenizer.specialTokensMapFile).toBeNull();
    expect(m.schedulerConfig['beta_schedule']).toBe('scaled_linear');
    expect(m.modelIndex['_class_name']).toBe('StableDiffusionPipeline');
    // the renamed weight holds the bytes that were stored under the old name (values are sin ramps)
    expect(toFloat32(m.vae.weights.get(`${attn}.to_q.weight`)!)).toHaveLength(64);
  });

  test('fp16 variant: loads the .fp16 files; values are the F32 values rounded to nearest-even half', () => {
    const dir = freshFolder();
    writeTinyModelFolder(dir, { variant: 'fp16', dtype: 'F16' }); // same folder, extra variant files
    const f32 = loadModelFolder(dir);
    const f16 = loadModelFolder(dir, { variant: 'fp16' });
    expect(f16.unet.weightsFile.endsWith('diffusion_pytorch_model.fp16.safetensors')).toBe(true);
    expect(f16.textEncoder.weightsFile.endsWith('model.fp16.safetensors')).toBe(true);
    let checked = 0;
    const mismatches: string[] = [];
    for (const [name, t] of f16.unet.weights) {
      expect(t.dtype).toBe('F16');
      const want = toFloat32(f32.unet.weights.get(name)!);
      const got = toFloat32(t);
      for (let i = 0; i < got.length; i++) if (got[i] !== roundToHalf(want[i])) mismatches.push(`${name}[${i}]: ${got[i]} vs ${want[i]}`);
      checked += got.length;
    }
    expect(mismatches.slice(0, 5)).toEqual([]);
    expect(checked).toBeGreaterThan(10_000);
  });
});

describe('loadModelFolder: bad folders give clear errors', () => {
  test('missing folder', () => {
    expect(loadError(path.join(tmp, 'absent')).reason).toBe('missing model folder');
  });

  test('missing config', () => {
    const dir = freshFolder();
    fs.rmSync(path.join(dir, 'unet/config.json'));
    const e = loadError(dir);
    expect(e.reason).toBe('missing config: unet/config.json');
    expect(e.path).toBe(path.join(dir, 'unet/config.json'));
  });

  test('missing model_index.json and scheduler config', () => {
    const a = freshFolder();
    fs.rmSync(path.join(a, 'model_index.json'));
    expect(loadError(a).reason).toMatch(/^missing config: .*model_index\.json$/);
    const b = freshFolder();
    fs.rmSync(path.join(b, 'scheduler/scheduler_config.json'));
    expect(loadError(b).reason).toBe('missing config: scheduler/scheduler_config.json');
  });

  test('bad JSON', () => {
    const dir = freshFolder();
    fs.writeFileSync(path.join(dir, 'vae/config.json'), '{"block_out_channels": [4, 8],');
    expect(loadError(dir).reason).toMatch(/^bad JSON/);
  });

  test('config values the architecture cannot use', () => {
    const dir = freshFolder();
    fs.writeFileSync(path.join(dir, 'unet/config.json'), JSON.stringify({ ...TINY_UNET_CONFIG, norm_num_groups: 3 }));
    expect(loadError(dir).reason).toMatch(/^bad config: block channel 8 is not divisible by norm_num_groups 3/);
  });

  test('.bin-only component', () => {
    const dir = freshFolder();
    fs.rmSync(path.join(dir, 'text_encoder/model.safetensors'));
    fs.writeFileSync(path.join(dir, 'text_encoder/pytorch_model.bin'), 'x');
    expect(loadError(dir).reason).toMatch(/only PyTorch \.bin weights found \(pytorch_model\.bin\); only safetensors are supported/);
  });

  test('missing variant file', () => {
    const dir = freshFolder();
    const e = loadError(dir, { variant: 'fp16' });
    expect(e.reason).toBe('missing variant file diffusion_pytorch_model.fp16.safetensors for variant "fp16" (found: diffusion_pytorch_model.safetensors)');
  });

  test('truncated weights file', () => {
    const dir = freshFolder();
    const file = path.join(dir, 'unet', weightsName('diffusion_pytorch_model'));
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 100));
    const e = loadError(dir);
    expect(e.path).toBe(file);
    expect(e.reason).toMatch(/exceed the data region .*truncated file/);
  });

  test('missing tensor, unexpected tensor and wrong shape: all reported by name in one error', () => {
    const dir = freshFolder();
    const specs = tinyUNetSpecs().filter((t) => t.name !== 'conv_out.bias');
    const conv1 = specs.find((t) => t.name === 'down_blocks.0.resnets.0.conv1.weight')!;
    conv1.shape = [8, 8, 1, 1];
    conv1.values = undefined;
    specs.push({ name: 'down_blocks.0.extra.weight', shape: [2] });
    writeSafetensors(path.join(dir, 'unet', weightsName('diffusion_pytorch_model')), specs);
    const e = loadError(dir);
    expect(e.problems).toEqual([
      'missing tensor conv_out.bias',
      'unexpected tensor down_blocks.0.extra.weight',
      'wrong shape down_blocks.0.resnets.0.conv1.weight: expected [8, 8, 3, 3], found [8, 8, 1, 1]',
    ]);
    expect(e.message).toContain('3 problems');
    for (const p of e.problems) expect(e.message).toContain(p);
  });

  test('a long problem list is abbreviated in the message but complete in error.problems', () => {
    const dir = freshFolder();
    // a VAE file where the UNet belongs: every UNet tensor missing, every VAE tensor unexpected
    fs.copyFileSync(path.join(dir, 'vae', weightsName('diffusion_pytorch_model')), path.join(dir, 'unet', weightsName('diffusion_pytorch_model')));
    const e = loadError(dir);
    const unetCount = expectedUNetTensors(parseUNetConfig(TINY_UNET_CONFIG, '')).size;
    expect(e.problems.filter((p) => p.startsWith('missing tensor'))).toHaveLength(unetCount);
    expect(e.message).toMatch(/… and \d+ more \(see error.problems\)/);
  });

  test('missing tokenizer file and vocab ids beyond the text encoder vocab', () => {
    const a = freshFolder();
    fs.rmSync(path.join(a, 'tokenizer/merges.txt'));
    expect(loadError(a).reason).toBe('missing tokenizer file: tokenizer/merges.txt');
    const b = freshFolder();
    fs.writeFileSync(path.join(b, 'tokenizer/vocab.json'), JSON.stringify({ a: 0, '<|endoftext|>': 12 }));
    expect(loadError(b).reason).toBe('token "<|endoftext|>" has id 12, outside text_encoder vocab_size 12');
  });

  test('components that do not fit together', () => {
    const dir = freshFolder();
    const clip = { hidden_size: 16, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, vocab_size: 12 };
    fs.writeFileSync(path.join(dir, 'text_encoder/config.json'), JSON.stringify(clip));
    writeSafetensors(
      path.join(dir, 'text_encoder', weightsName('model')),
      [...expectedClipTensors(parseClipTextConfig(clip, ''))].map(([name, shape]) => ({ name, shape })),
    );
    expect(loadError(dir).reason).toBe('cross_attention_dim 8 ≠ text encoder hidden_size 16');
  });
});

// Fixture models come from tools/reference/make_fixtures.py (PyTorch). Skipped until they are generated.
const FIXTURES = path.join(__dirname, '../../fixtures/models');
for (const [model, unetChannels, oldVaeNames] of [['sd-narrow', [32, 64, 64, 64], true], ['tiny-2level', [32, 64], false]] as const) {
  const dir = path.join(FIXTURES, model);
  (fs.existsSync(dir) ? describe : describe.skip)(`fixture model ${model}`, () => {
    test('loads with no error; every expected tensor present with its shape', () => {
      const m = loadModelFolder(dir);
      expect(m.unet.config.blockOutChannels).toEqual([...unetChannels]);
      expect(m.unet.weights.size).toBe(expectedUNetTensors(m.unet.config).size);
      expect(m.textEncoder.weights.size).toBe(expectedClipTensors(m.textEncoder.config).size);
      for (const [name, shape] of expectedVaeDecoderTensors(m.vae.config)) expect(m.vae.weights.get(name)?.shape).toEqual(shape);
      expect(m.vae.config.blockOutChannels).toEqual(model === 'sd-narrow' ? [16, 32, 32, 32] : [16, 32]);
      if (model === 'tiny-2level') expect(m.vae.config.scalingFactor).toBe(0.5);
      const header = fs.readFileSync(path.join(dir, 'vae', 'diffusion_pytorch_model.safetensors')).subarray(0, 200_000).toString('latin1');
      expect(header.includes('mid_block.attentions.0.query.weight')).toBe(oldVaeNames);
    });

    test('fp16 conversion of the weights matches nearest-even rounding', () => {
      const m = loadModelFolder(dir);
      const t = m.unet.weights.get('conv_in.weight')!;
      // sd-narrow ships its UNet as F16 already (tools/reference/make_fixtures.py); tiny-2level as F32.
      expect(t.dtype).toBe(model === 'sd-narrow' ? 'F16' : 'F32');
      const out = path.join(tmp, `${model}-fp16`);
      fs.cpSync(dir, out, { recursive: true });
      writeSafetensors(path.join(out, 'unet', 'diffusion_pytorch_model.fp16.safetensors'), [...m.unet.weights.values()].map((w) => ({ name: w.name, shape: w.shape, dtype: 'F16' as const, values: toFloat32(w) })));
      for (const [sub, base] of [['text_encoder', 'model'], ['vae', 'diffusion_pytorch_model']]) {
        fs.copyFileSync(path.join(dir, sub, `${base}.safetensors`), path.join(out, sub, `${base}.fp16.safetensors`));
      }
      const h = loadModelFolder(out, { variant: 'fp16' });
      const want = toFloat32(t);
      const got = toFloat32(h.unet.weights.get('conv_in.weight')!);
      const mismatches = Array.from(want).filter((w, i) => got[i] !== roundToHalf(w));
      expect(mismatches).toEqual([]);
      expect(want.length).toBeGreaterThan(100);
    });
  });
}
