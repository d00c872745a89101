// SPARSE VAE decoder (SIGE's sparse decoder, on the same primitives as the sparse UNet step): decodes an
// edit's affected region pixel by pixel, at every decoder resolution, and reads everything else from the
// PARENT's recorded decode.
//
// Why: a box decode (regionDecoder.ts) must decode a whole rectangle around the edit plus 6 latent px
// of context, because its border sees zero padding; at 256 px a 10 % disc's box is 64 % of the latent
// and the decode a fifth of the edit. Here the halo of every 3×3 conv comes from the parent's recorded
// input of that conv, so the work follows the mask's own shape with a thin ring, and the decoder's fine
// levels (70 % of its MACs at SD width) run on the affected pixels alone.
//
// LEVELS as mask/pyramid.ts, at IMAGE resolution: level 0 is the image (conv_out), level L−1 the latent
// (conv_in, the mid block). Up block i runs at level L−1−i; its upsampler's conv at level L−2−i, after a
// nearest ×2 that is a Gather of the coarse rows (each fine active pixel's parent is active).
//
// Inputs:  latent_rows [1, N_{L−1}, Cl]  scaled latents z at the active latent pixels (pyramid order)
//          gn_mean, gn_var [S, G, 1]     the parent's whole-image GroupNorm statistics (its decoder context)
//          mid_k, mid_v [1, h·w, C]      the parent's mid-attention keys/values per latent token
//          "cache:decoder.….input" [1, h_l·w_l, Cin]  the parent's recorded conv inputs (fp16)
//          pyramid tables "l<l>.<kind>" int32
// Outputs: image_rows [1, N_0, 3] (the decoder's output at the active image pixels, before postprocessing),
//          mid_k_rows / mid_v_rows [1, N_{L−1}, C] (the child's context update), "delta:<name>" [1, N_l, Cin].

import { ArchContext, inModule, WeightScope } from '../arch/archContext';
import { GraphBuilder, type GraphBuilderOptions } from '../graph/graphBuilder';
import { attention, linear, silu } from '../graph/nn';
import { VaeConfig } from '../model/configs';
import { WeightMap } from '../model/tensor';
import { CacheEntrySpec } from './cacheManifest';
import { DeltaSpec, SparseBuild, sparseConv3x3, SparseGraphError, sparseUpsample } from './sparseLayers';

const VAE_EPS = 1e-6;

export interface SparseVaeDecoderGraph {
  g: GraphBuilder;
  manifest: CacheEntrySpec[];
  deltas: DeltaSpec[];
  pyramidInputs: string[];
  /** GroupNorm module paths in build order: row s of gn_mean / gn_var (must match the recording graph's). */
  norms: string[];
  unusedWeights: string[];
}

/** Decoder level (0 = image, L−1 = latent) of a decoder conv's module path. */
export function decoderLevelOfPath(path: string, levels: number): number {
  if (/^decoder\.(conv_in|mid_block)(\.|$)/.test(path)) return levels - 1;
  if (/^decoder\.conv_(out|norm_out)(\.|$)/.test(path)) return 0;
  const up = /^decoder\.up_blocks\.(\d+)\.(upsamplers\.)?/.exec(path);
  if (up) {
    const l = levels - 1 - Number(up[1]) - (up[2] ? 1 : 0);
    if (l >= 0 && l < levels) return l;
  }
  throw new SparseGraphError(`no decoder level for module path "${path}"`);
}

export function buildSparseVaeDecoderGraph(cfg: VaeConfig, weights: WeightMap, opts: { cacheDType?: 'float16' | 'float32'; graph?: GraphBuilderOptions } = {}): SparseVaeDecoderGraph {
  const g = new GraphBuilder('vae_decoder_sparse', opts.graph);
  const ch = cfg.blockOutChannels;
  const L = ch.length;
  const groups = cfg.normNumGroups;
  const lat = cfg.latentChannels;
  const cTop = ch[L - 1];
  const s = new SparseBuild(g, L, { cacheDType: opts.cacheDType ?? 'float16' });
  const root: ArchContext = { g, w: new WeightScope(weights), hooks: {} };
  const norms: string[] = [];
  const gnMean = g.input('gn_mean', 'float32', ['norms', groups, 1]);
  const gnVar = g.input('gn_var', 'float32', ['norms', groups, 1]);

  // GroupNorm of rows x [1, N, C] with the parent's statistics of norm number s (build order):
  // y = x·scale + shift, scale = γ/√(var + eps), shift = β − mean·scale, per channel.
  const norm = (ctx: ArchContext, x: string, name: string, c: number): string => {
    const gamma = g.weight(ctx.w.get(`${name}.weight`, [c]));
    const beta = g.weight(ctx.w.get(`${name}.bias`, [c]));
    const row = norms.length;
    norms.push(ctx.w.path(name));
    return g.scope(name, () => {
      const pick = (t: string) => g.op('Reshape', [g.op('Gather', [t, g.constI64([row], `gn_row_${row}`)], { axis: 0 }), g.constI64([1, groups, 1])]); // [1,G,1]
      const toChannels = (v: string) => g.op('Reshape', [g.op('Expand', [v, g.constI64([1, groups, c / groups])]), g.constI64([1, 1, c])]); // [1,1,C]
      const rstd = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [pick(gnVar), g.constF32([VAE_EPS], [], 'eps')])])]);
      const scale = g.op('Mul', [toChannels(rstd), gamma], {}, { hint: 'gn_scale' });
      const shift = g.op('Sub', [beta, g.op('Mul', [toChannels(pick(gnMean)), scale])], {}, { hint: 'gn_shift' });
      return g.op('Add', [g.op('Mul', [x, scale]), shift], {}, { hint: 'gn_parent' });
    });
  };
  const resnet = (ctx: ArchContext, x: string, cin: number, cout: number, level: number): string => {
    let h = silu(g, norm(ctx, x, 'norm1', cin));
    h = sparseConv3x3(s, ctx, h, 'conv1', { shape: [cout, cin, 3, 3], table: 'same', level });
    h = silu(g, norm(ctx, h, 'norm2', cout));
    h = sparseConv3x3(s, ctx, h, 'conv2', { shape: [cout, cout, 3, 3], table: 'same', level });
    const shortcut = cin !== cout || ctx.w.has('conv_shortcut.weight') ? g.scope('conv_shortcut', () => linear(g, x, ctx.w.get('conv_shortcut.weight', [cout, cin, 1, 1]), ctx.w.get('conv_shortcut.bias', [cout]))) : x;
    return g.op('Add', [shortcut, h], {}, { hint: 'resnet_out' });
  };
  // Mid-block attention (one head, q/k/v/out with bias): queries from the active tokens, keys/values the
  // new active rows ∪ the parent's tokens at the inactive latent pixels.
  const midAttention = (ctx: ArchContext, x: string): string => {
    const t = norm(ctx, x, 'group_norm', cTop);
    const lin = (name: string, v: string) => g.scope(name, () => linear(g, v, ctx.w.get(`${name}.weight`, [cTop, cTop]), ctx.w.get(`${name}.bias`, [cTop])));
    const q = lin('to_q', t);
    const k = lin('to_k', t);
    const v = lin('to_v', t);
    g.output('mid_k_rows', k, 'float32', [1, `n${L - 1}`, cTop]);
    g.output('mid_v_rows', v, 'float32', [1, `n${L - 1}`, cTop]);
    const inactive = s.table('inactive', L - 1);
    const merged = (fresh: string, full: string) => g.op('Concat', [fresh, g.op('Gather', [full, inactive], { axis: 1 })], { axis: 1 }, { hint: 'merged_kv' });
    const keys = merged(k, g.input('mid_k', 'float32', [1, `hw${L - 1}`, cTop]));
    const values = merged(v, g.input('mid_v', 'float32', [1, `hw${L - 1}`, cTop]));
    const o = lin('to_out.0', attention(g, q, keys, values, cTop, 1));
    return g.op('Add', [o, x], {}, { hint: 'attn_out' });
  };

  let h = g.input('latent_rows', 'float32', [1, `n${L - 1}`, lat]);
  if (cfg.usePostQuantConv) h = g.scope('post_quant_conv', () => linear(g, h, root.w.get('post_quant_conv.weight', [lat, lat, 1, 1]), root.w.get('post_quant_conv.bias', [lat])));
  const out = inModule(root, 'decoder', (ctx) => {
    let x = sparseConv3x3(s, ctx, h, 'conv_in', { shape: [cTop, lat, 3, 3], table: 'same', level: L - 1 });
    x = inModule(ctx, 'mid_block', (m) => {
      let y = inModule(m, 'resnets.0', (r) => resnet(r, x, cTop, cTop, L - 1));
      if (cfg.midBlockAddAttention) y = inModule(m, 'attentions.0', (a) => midAttention(a, y));
      return inModule(m, 'resnets.1', (r) => resnet(r, y, cTop, cTop, L - 1));
    });
    const rev = [...ch].reverse();
    let cur = cTop;
    for (let i = 0; i < L; i++) {
      const o = rev[i];
      const level = L - 1 - i;
      x = inModule(ctx, `up_blocks.${i}`, (b) => {
        let y = x;
        for (let j = 0; j <= cfg.layersPerBlock; j++) {
          const cin = j === 0 ? cur : o;
          y = inModule(b, `resnets.${j}`, (r) => resnet(r, y, cin, o, level));
        }
        if (i < L - 1) {
          y = sparseUpsample(s, b, y, o, level - 1); // [1,N_{l−1},o]
        }
        return y;
      });
      cur = o;
    }
    x = silu(g, norm(ctx, x, 'conv_norm_out', ch[0]));
    return sparseConv3x3(s, ctx, x, 'conv_out', { shape: [cfg.outChannels, ch[0], 3, 3], table: 'same', level: 0 });
  });
  g.output('image_rows', out, 'float32', [1, 'n0', cfg.outChannels]);
  const unusedWeights = root.w.unused().filter((n) => !n.startsWith('encoder.') && !n.startsWith('quant_conv.'));
  return { g, manifest: s.manifest, deltas: s.deltas, pyramidInputs: s.pyramidInputs, norms, unusedWeights };
}

/** MACs of the decoder's 3×3 convs per level (level 0 = image) for an image of `imagePixels` pixels. */
export function decoderLevelMacs(cfg: VaeConfig, imagePixels: number): number[] {
  const ch = cfg.blockOutChannels;
  const L = ch.length;
  const perPixel = new Array<number>(L).fill(0);
  const cTop = ch[L - 1];
  perPixel[L - 1] += 9 * cfg.latentChannels * cTop + 4 * 9 * cTop * cTop; // conv_in, mid resnets
  const rev = [...ch].reverse();
  let cur = cTop;
  for (let i = 0; i < L; i++) {
    const o = rev[i];
    for (let j = 0; j <= cfg.layersPerBlock; j++) perPixel[L - 1 - i] += 9 * (j === 0 ? cur : o) * o + 9 * o * o;
    if (i < L - 1) perPixel[L - 2 - i] += 9 * o * o;
    cur = o;
  }
  perPixel[0] += 9 * ch[0] * cfg.outChannels;
  return perPixel.map((m, l) => (m * imagePixels) / 4 ** l);
}
