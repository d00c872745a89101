// The tensors each architecture needs, name → shape, derived from its config exactly as diffusers /
// transformers construct the modules (shared/reference/sd-architecture.md §2.2, §3, §5). Order follows
// the forward pass, the same order as shared/reference/sd15-keys/*.tsv, so the lists can be compared
// line by line. Shapes are PyTorch layouts: Conv2d [out, in, kh, kw], Linear [out, in].

import { ClipTextConfig, convInChannels, UNetConfig, VaeConfig } from './configs';

export type ExpectedTensors = Map<string, number[]>;

function add(m: ExpectedTensors, name: string, shape: number[]): void {
  if (m.has(name)) throw new Error(`expectedTensors: duplicate name ${name}`);
  m.set(name, shape);
}
function conv(m: ExpectedTensors, p: string, cout: number, cin: number, k: number): void {
  add(m, `${p}.weight`, [cout, cin, k, k]);
  add(m, `${p}.bias`, [cout]);
}
function linear(m: ExpectedTensors, p: string, cout: number, cin: number, bias = true): void {
  add(m, `${p}.weight`, [cout, cin]);
  if (bias) add(m, `${p}.bias`, [cout]);
}
function norm(m: ExpectedTensors, p: string, c: number): void {
  add(m, `${p}.weight`, [c]);
  add(m, `${p}.bias`, [c]);
}

/** ResnetBlock2D; temb = null for the VAE (no time_emb_proj). conv_shortcut only when cin ≠ cout. */
function resnet(m: ExpectedTensors, p: string, cin: number, cout: number, temb: number | null): void {
  norm(m, `${p}.norm1`, cin);
  conv(m, `${p}.conv1`, cout, cin, 3);
  if (temb !== null) linear(m, `${p}.time_emb_proj`, cout, temb);
  norm(m, `${p}.norm2`, cout);
  conv(m, `${p}.conv2`, cout, cout, 3);
  if (cin !== cout) conv(m, `${p}.conv_shortcut`, cout, cin, 1);
}

/** Transformer2DModel with one BasicTransformerBlock (GEGLU feed-forward, inner = 4C). */
function transformer(m: ExpectedTensors, p: string, c: number, crossDim: number, linearProj: boolean): void {
  const proj = (name: string) => (linearProj ? linear(m, `${p}.${name}`, c, c) : conv(m, `${p}.${name}`, c, c, 1));
  norm(m, `${p}.norm`, c);
  proj('proj_in');
  const b = `${p}.transformer_blocks.0`;
  norm(m, `${b}.norm1`, c);
  for (const [attn, kvDim] of [['attn1', c], ['attn2', crossDim]] as const) {
    if (attn === 'attn2') norm(m, `${b}.norm2`, c);
    linear(m, `${b}.${attn}.to_q`, c, c, false);
    linear(m, `${b}.${attn}.to_k`, c, kvDim, false);
    linear(m, `${b}.${attn}.to_v`, c, kvDim, false);
    linear(m, `${b}.${attn}.to_out.0`, c, c);
  }
  norm(m, `${b}.norm3`, c);
  linear(m, `${b}.ff.net.0.proj`, 8 * c, c);
  linear(m, `${b}.ff.net.2`, c, 4 * c);
  proj('proj_out');
}

export function expectedUNetTensors(cfg: UNetConfig): ExpectedTensors {
  const m: ExpectedTensors = new Map();
  const ch = cfg.blockOutChannels;
  const last = ch.length - 1;
  const temb = ch[0] * 4;
  const xattn = (p: string, c: number) => transformer(m, p, c, cfg.crossAttentionDim, cfg.useLinearProjection);

  conv(m, 'conv_in', ch[0], convInChannels(cfg), 3);
  linear(m, 'time_embedding.linear_1', temb, ch[0]);
  linear(m, 'time_embedding.linear_2', temb, temb);

  let out = ch[0];
  cfg.downBlockTypes.forEach((type, i) => {
    const cin = out;
    out = ch[i];
    for (let j = 0; j < cfg.layersPerBlock; j++) {
      resnet(m, `down_blocks.${i}.resnets.${j}`, j === 0 ? cin : out, out, temb);
      if (type === 'CrossAttnDownBlock2D') xattn(`down_blocks.${i}.attentions.${j}`, out);
    }
    if (i !== last) conv(m, `down_blocks.${i}.downsamplers.0.conv`, out, out, 3);
  });

  const c = ch[last];
  resnet(m, 'mid_block.resnets.0', c, c, temb);
  xattn('mid_block.attentions.0', c);
  resnet(m, 'mid_block.resnets.1', c, c, temb);

  // Up block i: resnet j takes (prev if j = 0 else out) + skip, skip = (in if j is the last resnet else out).
  const rev = [...ch].reverse();
  out = rev[0];
  const layers = cfg.layersPerBlock + 1;
  cfg.upBlockTypes.forEach((type, i) => {
    const prev = out;
    out = rev[i];
    const cin = rev[Math.min(i + 1, last)];
    for (let j = 0; j < layers; j++) {
      const skip = j === layers - 1 ? cin : out;
      resnet(m, `up_blocks.${i}.resnets.${j}`, (j === 0 ? prev : out) + skip, out, temb);
      if (type === 'CrossAttnUpBlock2D') xattn(`up_blocks.${i}.attentions.${j}`, out);
    }
    if (i !== last) conv(m, `up_blocks.${i}.upsamplers.0.conv`, out, out, 3);
  });

  norm(m, 'conv_norm_out', ch[0]);
  conv(m, 'conv_out', cfg.outChannels, ch[0], 3);
  return m;
}

export function expectedClipTensors(cfg: ClipTextConfig): ExpectedTensors {
  const m: ExpectedTensors = new Map();
  const d = cfg.hiddenSize;
  add(m, 'text_model.embeddings.token_embedding.weight', [cfg.vocabSize, d]);
  add(m, 'text_model.embeddings.position_embedding.weight', [cfg.maxPositionEmbeddings, d]);
  for (let i = 0; i < cfg.numHiddenLayers; i++) {
    const p = `text_model.encoder.layers.${i}`;
    for (const proj of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) linear(m, `${p}.self_attn.${proj}`, d, d);
    norm(m, `${p}.layer_norm1`, d);
    linear(m, `${p}.mlp.fc1`, cfg.intermediateSize, d);
    linear(m, `${p}.mlp.fc2`, d, cfg.intermediateSize);
    norm(m, `${p}.layer_norm2`, d);
  }
  norm(m, 'text_model.final_layer_norm', d);
  return m;
}

/** post_quant_conv + decoder.* (current attention names). Encoder and quant_conv are not needed to decode. */
export function expectedVaeDecoderTensors(cfg: VaeConfig): ExpectedTensors {
  const m: ExpectedTensors = new Map();
  const ch = cfg.blockOutChannels;
  const last = ch.length - 1;
  const lat = cfg.latentChannels;
  if (cfg.usePostQuantConv) conv(m, 'post_quant_conv', lat, lat, 1);
  conv(m, 'decoder.conv_in', ch[last], lat, 3);

  const c = ch[last];
  resnet(m, 'decoder.mid_block.resnets.0', c, c, null);
  if (cfg.midBlockAddAttention) {
    const a = 'decoder.mid_block.attentions.0';
    norm(m, `${a}.group_norm`, c);
    for (const proj of ['to_q', 'to_k', 'to_v', 'to_out.0']) linear(m, `${a}.${proj}`, c, c);
  }
  resnet(m, 'decoder.mid_block.resnets.1', c, c, null);

  const rev = [...ch].reverse();
  let out = rev[0];
  for (let i = 0; i <= last; i++) {
    const prev = out;
    out = rev[i];
    for (let j = 0; j <= cfg.layersPerBlock; j++) resnet(m, `decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? prev : out, out, null);
    if (i !== last) conv(m, `decoder.up_blocks.${i}.upsamplers.0.conv`, out, out, 3);
  }

  norm(m, 'decoder.conv_norm_out', ch[0]);
  conv(m, 'decoder.conv_out', cfg.outChannels, ch[0], 3);
  return m;
}

/** Tensors a VAE file may hold that decoding does not use: the encoder half (img2img) and quant_conv. */
export function isVaeEncoderTensor(name: string): boolean {
  return name.startsWith('encoder.') || name.startsWith('quant_conv.');
}
