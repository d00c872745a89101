// AutoencoderKL decoder (diffusers autoencoder_kl.py / vae.py; shared/reference/sd-architecture.md §5).
//
// Input:  latents [B,Cl,h,w] float32, ALREADY scaled for decoding: z = latents / scaling_factor
//         (+ shift_factor when the config has one). The pipeline does this division, not the graph,
//         so the same graph serves any scaling factor.
// Output: image [B,3,h·2^(levels−1), w·2^(levels−1)] in ~[−1,1] (postprocess: (x/2+0.5) clamped).
//
// post_quant_conv (1×1) → conv_in → mid (resnet, attention, resnet) → up blocks (layers_per_block+1
// resnets, nearest×2 + conv except the last) → GroupNorm(eps 1e-6) → SiLU → conv_out.
// All GroupNorms use eps 1e-6; resnets have no time embedding.

import { GraphBuilder, type GraphBuilderOptions } from '../graph/graphBuilder';
import { attention, fromTokens, linear, silu, toTokens, upsampleNearest2x } from '../graph/nn';
import { VaeConfig } from '../model/configs';
import { WeightMap } from '../model/tensor';
import { ArchContext, ArchHooks, inModule, norm, spatialConv, WeightScope } from './archContext';
import { resnetBlock } from './resnetBlock';

const VAE_EPS = 1e-6;

export interface VaeDecoderGraphOptions {
  hooks?: ArchHooks;
  /** Build into this builder (e.g. one whose hooks add recording outputs); default a new one. */
  builder?: GraphBuilder;
  /** Builder options when this function creates the builder (runtime/deviceGraphs.ts graphOptionsFor). */
  graph?: GraphBuilderOptions;
}

export interface VaeDecoderGraph {
  g: GraphBuilder;
  /** Decoder weights not used (the encoder half and quant_conv are never used and not listed). */
  unusedWeights: string[];
}

/**
 * Mid-block attention: one head over all C channels, q/k/v/out Linears with bias, GroupNorm before,
 * residual after. x [B,C,H,W] → [B,C,H,W].
 */
function vaeAttention(ctx: ArchContext, x: string, c: number, groups: number): string {
  const { g, w } = ctx;
  const t = toTokens(g, norm(ctx, x, 'group_norm', c, groups, VAE_EPS), c); // [B,HW,C]
  const lin = (name: string, v: string) => g.scope(name, () => linear(g, v, w.get(`${name}.weight`, [c, c]), w.get(`${name}.bias`, [c])));
  const q = lin('to_q', t);
  const k = lin('to_k', t);
  const v = lin('to_v', t);
  if (ctx.hooks.selfAttentionKV) ctx.hooks.selfAttentionKV(w.prefix, k, v);
  const extra = ctx.hooks.extraAttentionKV?.(w.prefix) ?? null;
  const keys = extra ? g.op('Concat', [k, extra.k], { axis: 1 }) : k; // [B,HW+M,C]
  const values = extra ? g.op('Concat', [v, extra.v], { axis: 1 }) : v;
  const o = lin('to_out.0', attention(g, q, keys, values, c, 1)); // [B,HW,C]
  return g.op('Add', [fromTokens(g, o, x), x], {}, { hint: 'attn_out' });
}

export function buildVaeDecoderGraph(cfg: VaeConfig, weights: WeightMap, opts: VaeDecoderGraphOptions = {}): VaeDecoderGraph {
  const g = opts.builder ?? new GraphBuilder('vae_decoder', opts.graph);
  const root: ArchContext = { g, w: new WeightScope(weights), hooks: opts.hooks ?? {} };
  const ch = cfg.blockOutChannels;
  const levels = ch.length;
  const groups = cfg.normNumGroups;
  const lat = cfg.latentChannels;
  const up = 2 ** (levels - 1);
  const latents = g.input('latents', 'float32', ['batch', lat, 'height', 'width']);

  let h = latents;
  // 1. post_quant_conv (1×1): [B,Cl,h,w] → [B,Cl,h,w]
  if (cfg.usePostQuantConv) h = spatialConv(root, h, 'post_quant_conv', [lat, lat, 1, 1]);

  const image = inModule(root, 'decoder', (ctx) => {
    const cTop = ch[levels - 1];
    const resnet = (c: ArchContext, x: string, cin: number, cout: number) =>
      resnetBlock(c, x, undefined, { inChannels: cin, outChannels: cout, groups, eps: VAE_EPS });
    // 2. conv_in: [B,Cl,h,w] → [B,C_top,h,w]
    let x = spatialConv(ctx, h, 'conv_in', [cTop, lat, 3, 3], { pad: 1 });
    // 3. mid block at [B,C_top,h,w]
    x = inModule(ctx, 'mid_block', (m) => {
      let y = inModule(m, 'resnets.0', (r) => resnet(r, x, cTop, cTop));
      if (cfg.midBlockAddAttention) y = inModule(m, 'attentions.0', (a) => vaeAttention(a, y, cTop, groups));
      return inModule(m, 'resnets.1', (r) => resnet(r, y, cTop, cTop));
    });
    // 4. up blocks: block i outputs rev[i] channels at (h,w)·2^i, then ×2 (except the last)
    const rev = [...ch].reverse();
    let cur = cTop;
    for (let i = 0; i < levels; i++) {
      const out = rev[i];
      x = inModule(ctx, `up_blocks.${i}`, (b) => {
        let y = x;
        for (let j = 0; j <= cfg.layersPerBlock; j++) {
          const cin = j === 0 ? cur : out;
          y = inModule(b, `resnets.${j}`, (r) => resnet(r, y, cin, out)); // [B,out,·,·]
        }
        if (i < levels - 1) y = inModule(b, 'upsamplers.0', (u) => spatialConv(u, upsampleNearest2x(g, y), 'conv', [out, out, 3, 3], { pad: 1 }));
        return y;
      });
      cur = out;
    }
    // 5. output: [B,C0,H,W] → [B,3,H,W]
    x = silu(g, norm(ctx, x, 'conv_norm_out', ch[0], groups, VAE_EPS));
    return spatialConv(ctx, x, 'conv_out', [cfg.outChannels, ch[0], 3, 3], { pad: 1 });
  });
  g.output('image', image, 'float32', ['batch', cfg.outChannels, up === 1 ? 'height' : 'image_height', up === 1 ? 'width' : 'image_width']);
  const unusedWeights = root.w.unused().filter((n) => !n.startsWith('encoder.') && !n.startsWith('quant_conv.'));
  return { g, unusedWeights };
}
