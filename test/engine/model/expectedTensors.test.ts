// The expected-tensor lists are derived from configs in code; shared/reference/sd15-keys/*.tsv were
// derived independently (sd-architecture.md [K]). For SD 1.5 they must agree line by line.

import * as fs from 'fs';
import * as path from 'path';
import { parseClipTextConfig, parseUNetConfig, parseVaeConfig } from '../../../src/engine/model/configs';
import { expectedClipTensors, expectedUNetTensors, expectedVaeDecoderTensors, ExpectedTensors, isVaeEncoderTensor } from '../../../src/engine/model/expectedTensors';
import { numel } from '../../../src/engine/model/tensor';
import { SD15_CLIP, SD15_UNET, SD15_VAE } from '../../helpers/sd15Configs';

// Copied from shared/reference/sd15-keys (derived from the diffusers constructors for the SD 1.5 configs)
// so the suite runs from any checkout.
const KEYS = path.join(__dirname, '..', '..', 'fixtures', 'sd15-keys');

function readTsv(name: string): [string, number[]][] {
  return fs
    .readFileSync(`${KEYS}/${name}`, 'utf8')
    .trim()
    .split('\n')
    .map((line) => {
      const [key, shape] = line.split('\t');
      return [key, JSON.parse(shape) as number[]];
    });
}

const asLines = (m: ExpectedTensors | [string, number[]][]) => [...m].map(([k, s]) => `${k}\t[${s.join(', ')}]`);
const params = (m: ExpectedTensors) => [...m.values()].reduce((a, s) => a + numel(s), 0);

describe('expected tensors for SD 1.5 match sd15-keys', () => {
  test('UNet: 686 names and shapes, same order, 859,520,964 params', () => {
    const got = expectedUNetTensors(parseUNetConfig(SD15_UNET, 'unet/config.json'));
    const want = readTsv('unet.tsv');
    expect(want).toHaveLength(686);
    expect(asLines(got)).toEqual(asLines(want));
    expect(params(got)).toBe(859_520_964);
  });

  test('VAE decoder: the post_quant_conv + decoder.* subset of vae.tsv; the rest is encoder/quant_conv', () => {
    const got = expectedVaeDecoderTensors(parseVaeConfig(SD15_VAE, 'vae/config.json'));
    const all = readTsv('vae.tsv');
    const decoder = all.filter(([k]) => !isVaeEncoderTensor(k));
    expect(all).toHaveLength(248);
    expect(decoder).toHaveLength(140);
    expect(asLines(got)).toEqual(asLines(decoder));
    // every other key is an encoder-side extra
    expect(all.filter(([k]) => isVaeEncoderTensor(k)).every(([k]) => k.startsWith('encoder.') || k.startsWith('quant_conv.'))).toBe(true);
  });

  test('CLIP text encoder: 196 names and shapes, 123,060,480 params', () => {
    const got = expectedClipTensors(parseClipTextConfig(SD15_CLIP, 'text_encoder/config.json'));
    const want = readTsv('text_encoder.tsv');
    expect(want).toHaveLength(196);
    expect(asLines(got)).toEqual(asLines(want));
    expect(params(got)).toBe(123_060_480);
  });
});

describe('expected tensors follow the config', () => {
  test('use_linear_projection makes proj_in/proj_out Linear [C, C]', () => {
    const got = expectedUNetTensors(parseUNetConfig({ ...SD15_UNET, use_linear_projection: true }, 'unet/config.json'));
    expect(got.get('down_blocks.1.attentions.0.proj_in.weight')).toEqual([640, 640]);
    expect(got.get('up_blocks.3.attentions.2.proj_out.weight')).toEqual([320, 320]);
    expect(got.size).toBe(686);
  });

  test('coord_channels 2 widens conv_in by two input channels; SD folders have none; other counts are refused', () => {
    expect(parseUNetConfig(SD15_UNET, 'unet/config.json').coordChannels).toBe(0);
    const got = expectedUNetTensors(parseUNetConfig({ ...SD15_UNET, coord_channels: 2 }, 'unet/config.json'));
    expect(got.get('conv_in.weight')).toEqual([320, 6, 3, 3]);
    expect(got.get('conv_out.weight')).toEqual([4, 320, 3, 3]); // the output stays latent-shaped
    expect(() => parseUNetConfig({ ...SD15_UNET, coord_channels: 3 }, 'unet/config.json')).toThrow(/coord_channels 3: only 0 or 2/);
  });

  test('a 2-level UNet (tiny-2level shape): skip channels, shortcuts, GEGLU and cross-attention dims', () => {
    const cfg = parseUNetConfig(
      {
        block_out_channels: [32, 64], down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'], up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
        layers_per_block: 1, norm_num_groups: 8, attention_head_dim: 2, cross_attention_dim: 32, use_linear_projection: true,
      },
      'unet/config.json',
    );
    const got = expectedUNetTensors(cfg);
    // Hand-derived: up0 (out 64, prev 64, in 32): r0 64+64=128, r1 64+32=96; up1 (out 32, prev 64, in 32): r0 64+32=96, r1 32+32=64.
    expect(got.get('up_blocks.0.resnets.0.conv1.weight')).toEqual([64, 128, 3, 3]);
    expect(got.get('up_blocks.0.resnets.1.conv_shortcut.weight')).toEqual([64, 96, 1, 1]);
    expect(got.get('up_blocks.1.resnets.0.conv1.weight')).toEqual([32, 96, 3, 3]);
    expect(got.get('up_blocks.1.resnets.1.conv_shortcut.weight')).toEqual([32, 64, 1, 1]);
    expect(got.has('down_blocks.0.resnets.0.conv_shortcut.weight')).toBe(false); // 32 → 32
    expect(got.get('down_blocks.1.resnets.0.conv_shortcut.weight')).toEqual([64, 32, 1, 1]);
    expect(got.has('down_blocks.1.downsamplers.0.conv.weight')).toBe(false); // last level
    expect(got.has('up_blocks.1.upsamplers.0.conv.weight')).toBe(false);
    expect(got.get('up_blocks.0.upsamplers.0.conv.weight')).toEqual([64, 64, 3, 3]);
    expect(got.get('mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj.weight')).toEqual([512, 64]);
    expect(got.get('up_blocks.1.attentions.1.transformer_blocks.0.attn2.to_k.weight')).toEqual([32, 32]);
    expect(got.get('time_embedding.linear_1.weight')).toEqual([128, 32]);
    expect([...got.keys()].some((k) => k.startsWith('up_blocks.0.attentions'))).toBe(false);
  });

  test('VAE without post_quant_conv or mid attention', () => {
    const got = expectedVaeDecoderTensors(parseVaeConfig({ ...SD15_VAE, use_post_quant_conv: false, mid_block_add_attention: false }, 'vae/config.json'));
    expect(got.has('post_quant_conv.weight')).toBe(false);
    expect([...got.keys()].some((k) => k.includes('attentions'))).toBe(false);
    expect(got.size).toBe(140 - 2 - 10);
  });
});
