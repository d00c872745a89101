// SPARSE UNet step graph: UNet2DConditionModel (same layout and weights as arch/unet.ts) evaluated on
// the ACTIVE pixels of each resolution only, reading everything else from the parent's recorded step.
// Built and loaded once per model: every size that depends on the edit (active counts N_l, halo sizes,
// latent size) is a dynamic dimension, and the edit's tables are inputs (pyramidInputs.ts).
//
// Inputs:  sample_rows [B, N_0, Cin] float32  latents at the active latent pixels (pyramid order)
//          timestep [B] float32, encoder_hidden_states [B, L, Dctx] float32 (the NEW prompt)
//          pyramid tables "l<l>.<kind>" int32 (only those the graph uses)
//          cache entries "cache:<name>" [B, h_l·w_l, C] / [B, G] (cacheDType; manifest order)
// Outputs: noise_rows [B, N_0, Cout] float32, and "delta:<name>" [B, N_l, C] for every row entry.
//
// Per level the active set is the same for every layer, so skip connections concatenate rows of the
// same pixels; a stride-2 downsample maps level l−1 rows to level l rows through its table, and a nearest
// ×2 upsample is a Gather of the coarse rows (or, where a coarse parent is inactive, of the parent node's
// upsampled map: sparseLayers.ts sparseUpsample).

import { ArchContext, ArchError, inModule, WeightScope } from '../arch/archContext';
import { appendCoordRows } from '../arch/coordChannels';
import { timestepFeatures } from '../arch/unet';
import { attentionModule, feedForward } from '../arch/transformerBlock';
import { GraphBuilder } from '../graph/graphBuilder';
import { layerNorm, linear, silu } from '../graph/nn';
import { convInChannels, UNetConfig } from '../model/configs';
import { WeightMap } from '../model/tensor';
import { CacheEntrySpec } from './cacheManifest';
import { DeltaSpec, SparseBuild, SparseBuildOptions, sparseConv3x3, sparseGroupNorm, SparseGraphError, sparseSelfAttention, sparseUpsample } from './sparseLayers';

export interface SparseUNetGraph {
  g: GraphBuilder;
  /** The cache entries the graph reads (must be a subset of the recording manifest). */
  manifest: CacheEntrySpec[];
  deltas: DeltaSpec[];
  pyramidInputs: string[];
  unusedWeights: string[];
}

interface Blocks {
  s: SparseBuild;
  cfg: UNetConfig;
  embAct: string;
  text: string;
  tembCh: number;
}

/** ResnetBlock2D on rows x [B, N_l, Cin] → [B, N_l, Cout] (arch/resnetBlock.ts, row-wise). */
function sparseResnet(b: Blocks, ctx: ArchContext, x: string, cin: number, cout: number, level: number): string {
  const { g, w } = ctx;
  const { s, cfg } = b;
  let h = silu(g, sparseGroupNorm(s, ctx, x, 'norm1', cin, cfg.normNumGroups, cfg.normEps, level));
  h = sparseConv3x3(s, ctx, h, 'conv1', { shape: [cout, cin, 3, 3], table: 'same', level }); // [B,N,Cout]
  const t = g.scope('time_emb_proj', () => linear(g, b.embAct, w.get('time_emb_proj.weight', [cout, b.tembCh]), w.get('time_emb_proj.bias', [cout]))); // [B,Cout]
  h = g.op('Add', [h, g.op('Unsqueeze', [t, g.constI64([1], 'axes')])]); // + [B,1,Cout]
  h = silu(g, sparseGroupNorm(s, ctx, h, 'norm2', cout, cfg.normNumGroups, cfg.normEps, level));
  h = sparseConv3x3(s, ctx, h, 'conv2', { shape: [cout, cout, 3, 3], table: 'same', level });
  const shortcut = cin !== cout || w.has('conv_shortcut.weight') ? g.scope('conv_shortcut', () => linear(g, x, w.get('conv_shortcut.weight', [cout, cin, 1, 1]), w.get('conv_shortcut.bias', [cout]))) : x;
  return g.op('Add', [shortcut, h], {}, { hint: 'resnet_out' });
}

/** Transformer2DModel on rows x [B, N_l, C] → [B, N_l, C] (arch/transformerBlock.ts, row-wise). */
function sparseTransformer(b: Blocks, ctx: ArchContext, x: string, c: number, heads: number, level: number): string {
  const { g, w } = ctx;
  const { s, cfg } = b;
  const h = sparseGroupNorm(s, ctx, x, 'norm', c, cfg.normNumGroups, 1e-6, level);
  const projShape = cfg.useLinearProjection ? [c, c] : [c, c, 1, 1];
  let t = g.scope('proj_in', () => linear(g, h, w.get('proj_in.weight', projShape), w.get('proj_in.bias', [c]))); // [B,N,C]
  t = inModule(ctx, 'transformer_blocks.0', (m) => {
    const ln = (name: string, v: string) => g.scope(name, () => layerNorm(g, v, m.w.get(`${name}.weight`, [c]), m.w.get(`${name}.bias`, [c]), 1e-5));
    let u = t;
    const a1 = inModule(m, 'attn1', (a) => sparseSelfAttention(s, a, ln('norm1', u), c, heads, level));
    u = g.op('Add', [a1, u]);
    const a2 = inModule(m, 'attn2', (a) => attentionModule(a, ln('norm2', u), b.text, c, cfg.crossAttentionDim, heads));
    u = g.op('Add', [a2, u]);
    const ff = inModule(m, 'ff', (f) => feedForward(f, ln('norm3', u), c));
    return g.op('Add', [ff, u]);
  });
  t = g.scope('proj_out', () => linear(g, t, w.get('proj_out.weight', projShape), w.get('proj_out.bias', [c])));
  return g.op('Add', [t, x], {}, { hint: 'transformer_out' });
}

export function buildSparseUNetGraph(cfg: UNetConfig, weights: WeightMap, opts: SparseBuildOptions = {}): SparseUNetGraph {
  if (cfg.downsamplePadding !== 1) {
    throw new SparseGraphError(`downsample_padding ${cfg.downsamplePadding} is not supported (the stride-2 tables of mask/pyramid.ts assume padding 1)`);
  }
  const g = new GraphBuilder('unet_sparse', opts.graph);
  const ctx: ArchContext = { g, w: new WeightScope(weights), hooks: {} };
  const ch = cfg.blockOutChannels;
  const levels = ch.length;
  const s = new SparseBuild(g, levels, opts);
  const tembCh = ch[0] * 4;

  const sample = g.input('sample_rows', 'float32', ['batch', 'n0', cfg.inChannels]);
  const timestep = g.input('timestep', 'float32', ['batch']);
  const text = g.input('encoder_hidden_states', 'float32', ['batch', 'sequence', cfg.crossAttentionDim]);

  // 1. time embedding, exactly as the dense graph: emb [B,4·C0], SiLU(emb) shared by every resnet.
  const tFeat = g.scope('time_proj', () => timestepFeatures(g, timestep, ch[0], cfg.flipSinToCos, cfg.freqShift));
  const emb = inModule(ctx, 'time_embedding', (m) => {
    const h = g.scope('linear_1', () => linear(g, tFeat, m.w.get('linear_1.weight', [tembCh, ch[0]]), m.w.get('linear_1.bias', [tembCh])));
    return g.scope('linear_2', () => linear(g, silu(g, h), m.w.get('linear_2.weight', [tembCh, tembCh]), m.w.get('linear_2.bias', [tembCh])));
  });
  const b: Blocks = { s, cfg, embAct: silu(g, emb), text, tembCh };

  // 2. conv_in at level 0: [B,N0,Cin(+2 coordinates)] → [B,N0,C0]
  const convIn = cfg.coordChannels ? appendCoordRows(g, sample, s.coords(0)) : sample;
  let h = sparseConv3x3(s, ctx, convIn, 'conv_in', { shape: [ch[0], convInChannels(cfg), 3, 3], table: 'same', level: 0 });
  const skips: { v: string; c: number }[] = [{ v: h, c: ch[0] }];

  // 3. down blocks: level i rows [B,N_i,ch[i]]; the downsampler maps level i rows to level i+1 rows.
  let cur = ch[0];
  for (let i = 0; i < levels; i++) {
    const out = ch[i];
    const crossAttn = cfg.downBlockTypes[i] === 'CrossAttnDownBlock2D';
    h = inModule(ctx, `down_blocks.${i}`, (blk) => {
      let x = h;
      for (let j = 0; j < cfg.layersPerBlock; j++) {
        x = inModule(blk, `resnets.${j}`, (r) => sparseResnet(b, r, x, j === 0 ? cur : out, out, i));
        if (crossAttn) x = inModule(blk, `attentions.${j}`, (a) => sparseTransformer(b, a, x, out, cfg.numAttentionHeads[i], i));
        skips.push({ v: x, c: out });
      }
      if (i < levels - 1) {
        x = inModule(blk, 'downsamplers.0', (d) => sparseConv3x3(s, d, x, 'conv', { shape: [out, out, 3, 3], table: 'down', level: i + 1 })); // [B,N_{i+1},out]
        skips.push({ v: x, c: out });
      }
      return x;
    });
    cur = out;
  }

  // 4. mid block at level L−1.
  const cLast = ch[levels - 1];
  h = inModule(ctx, 'mid_block', (m) => {
    let x = inModule(m, 'resnets.0', (r) => sparseResnet(b, r, h, cLast, cLast, levels - 1));
    x = inModule(m, 'attentions.0', (a) => sparseTransformer(b, a, x, cLast, cfg.numAttentionHeads[levels - 1], levels - 1));
    return inModule(m, 'resnets.1', (r) => sparseResnet(b, r, x, cLast, cLast, levels - 1));
  });

  // 5. up blocks: up_blocks.k at level L−1−k; concat [h, skip] on channels (same pixels per level);
  //    the upsampler gathers each fine active pixel's coarse parent row, then a 3×3 conv at the fine level.
  const revCh = [...ch].reverse();
  const revHeads = [...cfg.numAttentionHeads].reverse();
  for (let k = 0; k < levels; k++) {
    const out = revCh[k];
    const level = levels - 1 - k;
    const crossAttn = cfg.upBlockTypes[k] === 'CrossAttnUpBlock2D';
    h = inModule(ctx, `up_blocks.${k}`, (blk) => {
      let x = h;
      for (let j = 0; j <= cfg.layersPerBlock; j++) {
        const skip = skips.pop();
        if (!skip) throw new ArchError('sparse unet: skip stack exhausted (down/up block counts disagree)');
        const cin = cur + skip.c;
        const x0 = x;
        x = g.op('Concat', [x0, skip.v], { axis: 2 }, { hint: 'skip_concat' }); // [B,N,cur+skip]
        x = inModule(blk, `resnets.${j}`, (r) => sparseResnet(b, r, x, cin, out, level));
        if (crossAttn) x = inModule(blk, `attentions.${j}`, (a) => sparseTransformer(b, a, x, out, revHeads[k], level));
        cur = out;
      }
      if (k < levels - 1) {
        x = sparseUpsample(s, blk, x, out, level - 1); // [B,N_{l−1},out]
      }
      return x;
    });
  }
  if (skips.length !== 0) throw new ArchError(`sparse unet: ${skips.length} skip tensors left over`);

  // 6. output at level 0: GroupNorm → SiLU → conv_out. [B,N0,C0] → [B,N0,Cout]
  h = silu(g, sparseGroupNorm(s, ctx, h, 'conv_norm_out', ch[0], cfg.normNumGroups, cfg.normEps, 0));
  h = sparseConv3x3(s, ctx, h, 'conv_out', { shape: [cfg.outChannels, ch[0], 3, 3], table: 'same', level: 0 });
  g.output('noise_rows', h, 'float32', ['batch', 'n0', cfg.outChannels]);
  return { g, manifest: s.manifest, deltas: s.deltas, pyramidInputs: s.pyramidInputs, unusedWeights: ctx.w.unused() };
}
