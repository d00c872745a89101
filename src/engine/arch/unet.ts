// UNet2DConditionModel (SD 1.x/2.x layout; shared/reference/sd-architecture.md §2) as an ONNX graph.
//
// Inputs:  sample [B,Cin,h,w] float32 (B, h, w dynamic; h and w must be multiples of
//          unetLatentMultiple(cfg) = 2^(levels−1): upsampling is an exact ×2 and the pipeline
//          validates sizes), timestep [B] float32 (fractional allowed),
//          encoder_hidden_states [B,L,Dctx] float32 (L dynamic; 77 for CLIP).
// Output:  noise_pred [B,Cout,h,w].

import { GraphBuilder, type GraphBuilderOptions } from '../graph/graphBuilder';
import { linear, silu, upsampleNearest2x } from '../graph/nn';
import { convInChannels, UNetConfig } from '../model/configs';
import { WeightMap } from '../model/tensor';
import { ArchContext, ArchError, ArchHooks, inModule, norm, spatialConv, WeightScope } from './archContext';
import { resnetBlock } from './resnetBlock';
import { appendCoordPlanes } from './coordChannels';
import { transformer2d, TransformerSpec } from './transformerBlock';

export interface UNetGraphOptions {
  hooks?: ArchHooks;
  /** Build into this builder (e.g. one whose hooks add recording outputs); default a new one. */
  builder?: GraphBuilder;
  /** Builder options when this function creates the builder (runtime/deviceGraphs.ts graphOptionsFor). */
  graph?: GraphBuilderOptions;
}

export interface UNetGraph {
  g: GraphBuilder;
  /** Weights in the map that the graph did not use (should be empty for a diffusers UNet file). */
  unusedWeights: string[];
}

/** Latent height/width must be a multiple of this (each level halves, upsampling is an exact ×2). */
export function unetLatentMultiple(cfg: UNetConfig): number {
  return 2 ** (cfg.blockOutChannels.length - 1);
}

/**
 * Sinusoidal timestep features [B, C0], computed like diffusers' get_timestep_embedding in float32:
 * freq[k] = exp(−ln(10000)·k / (half − freq_shift)); flip_sin_to_cos puts cos first.
 */
export function timestepFeatures(g: GraphBuilder, timestep: string, dim: number, flipSinToCos: boolean, freqShift: number): string {
  if (dim % 2 !== 0) throw new ArchError(`unet: odd timestep embedding width ${dim}`);
  const half = dim / 2;
  const freqs = new Float32Array(half);
  const negLog = Math.fround(-Math.log(10000));
  for (let k = 0; k < half; k++) freqs[k] = Math.fround(Math.exp(Math.fround(Math.fround(negLog * k) / (half - freqShift))));
  const t = g.op('Unsqueeze', [timestep, g.constI64([1], 'axes')]); // [B,1]
  const arg = g.op('Mul', [t, g.constF32(freqs, [1, half], 'time_freqs')]); // [B,half]
  const sin = g.op('Sin', [arg]);
  const cos = g.op('Cos', [arg]);
  return g.op('Concat', flipSinToCos ? [cos, sin] : [sin, cos], { axis: 1 }, { hint: 'time_proj' }); // [B,dim]
}

/** Build the dense UNet step graph. */
export function buildUNetGraph(cfg: UNetConfig, weights: WeightMap, opts: UNetGraphOptions = {}): UNetGraph {
  const g = opts.builder ?? new GraphBuilder('unet', opts.graph);
  const ctx: ArchContext = { g, w: new WeightScope(weights), hooks: opts.hooks ?? {} };
  const w = ctx.w;
  const ch = cfg.blockOutChannels;
  const levels = ch.length;
  const groups = cfg.normNumGroups;
  const eps = cfg.normEps;
  const tembCh = ch[0] * 4;

  const sample = g.input('sample', 'float32', ['batch', cfg.inChannels, 'height', 'width']);
  const timestep = g.input('timestep', 'float32', ['batch']);
  const text = g.input('encoder_hidden_states', 'float32', ['batch', 'sequence', cfg.crossAttentionDim]);

  // 1. time embedding: emb [B,4·C0]; every resnet uses SiLU(emb), computed once here.
  const tFeat = g.scope('time_proj', () => timestepFeatures(g, timestep, ch[0], cfg.flipSinToCos, cfg.freqShift)); // [B,C0]
  const emb = inModule(ctx, 'time_embedding', (m) => {
    const h = g.scope('linear_1', () => linear(g, tFeat, m.w.get('linear_1.weight', [tembCh, ch[0]]), m.w.get('linear_1.bias', [tembCh])));
    return g.scope('linear_2', () => linear(g, silu(g, h), m.w.get('linear_2.weight', [tembCh, tembCh]), m.w.get('linear_2.bias', [tembCh])));
  }); // [B,4·C0]
  const embAct = silu(g, emb);

  const resnet = (c: ArchContext, x: string, cin: number, cout: number) =>
    resnetBlock(c, x, embAct, { inChannels: cin, outChannels: cout, groups, eps, tembChannels: tembCh });
  const transformer = (c: ArchContext, x: string, channels: number, heads: number) => {
    const spec: TransformerSpec = { channels, heads, groups, contextDim: cfg.crossAttentionDim, linearProjection: cfg.useLinearProjection };
    return transformer2d(c, x, text, spec);
  };

  // 2. conv_in: [B,Cin(+2 coordinate planes),h,w] → [B,C0,h,w]
  const convIn = cfg.coordChannels ? appendCoordPlanes(g, sample) : sample;
  let h = spatialConv(ctx, convIn, 'conv_in', [ch[0], convInChannels(cfg), 3, 3], { pad: 1 });
  const skips: { v: string; c: number }[] = [{ v: h, c: ch[0] }];

  // 3. down blocks: level i runs at (h,w)/2^i with ch[i] channels; pushes one skip per resnet and one
  //    after the downsampler (all but the last level).
  let cur = ch[0];
  for (let i = 0; i < levels; i++) {
    const out = ch[i];
    const crossAttn = cfg.downBlockTypes[i] === 'CrossAttnDownBlock2D';
    h = inModule(ctx, `down_blocks.${i}`, (b) => {
      let x = h;
      for (let j = 0; j < cfg.layersPerBlock; j++) {
        x = inModule(b, `resnets.${j}`, (r) => resnet(r, x, j === 0 ? cur : out, out)); // [B,out,·,·]
        if (crossAttn) x = inModule(b, `attentions.${j}`, (a) => transformer(a, x, out, cfg.numAttentionHeads[i]));
        skips.push({ v: x, c: out });
      }
      if (i < levels - 1) {
        // Downsample2D: k3 s2 p1, or with downsample_padding 0 an asymmetric (0,1,0,1) pad then p0.
        const pad: [number, number, number, number] = cfg.downsamplePadding === 0 ? [0, 0, 1, 1] : [1, 1, 1, 1];
        x = inModule(b, 'downsamplers.0', (d) => spatialConv(d, x, 'conv', [out, out, 3, 3], { stride: 2, pad })); // [B,out,·/2,·/2]
        skips.push({ v: x, c: out });
      }
      return x;
    });
    cur = out;
  }

  // 4. mid block at the coarsest level: resnet → transformer → resnet, [B,C_last,·,·]
  const cLast = ch[levels - 1];
  h = inModule(ctx, 'mid_block', (m) => {
    let x = inModule(m, 'resnets.0', (r) => resnet(r, h, cLast, cLast));
    x = inModule(m, 'attentions.0', (a) => transformer(a, x, cLast, cfg.numAttentionHeads[levels - 1]));
    return inModule(m, 'resnets.1', (r) => resnet(r, x, cLast, cLast));
  });

  // 5. up blocks: reversed channels; each resnet pops the LAST skip and concatenates [h, skip].
  const revCh = [...ch].reverse();
  const revHeads = [...cfg.numAttentionHeads].reverse();
  for (let i = 0; i < levels; i++) {
    const out = revCh[i];
    const crossAttn = cfg.upBlockTypes[i] === 'CrossAttnUpBlock2D';
    h = inModule(ctx, `up_blocks.${i}`, (b) => {
      let x = h;
      for (let j = 0; j <= cfg.layersPerBlock; j++) {
        const skip = skips.pop();
        if (!skip) throw new ArchError('unet: skip stack exhausted (down/up block counts disagree)');
        const x0 = x;
        const cin = cur + skip.c;
        x = b.g.op('Concat', [x0, skip.v], { axis: 1 }, { hint: 'skip_concat' }); // [B,cur+skip,·,·]
        x = inModule(b, `resnets.${j}`, (r) => resnet(r, x, cin, out));
        if (crossAttn) x = inModule(b, `attentions.${j}`, (a) => transformer(a, x, out, revHeads[i]));
        cur = out;
      }
      if (i < levels - 1) {
        // Upsample2D: nearest ×2 then k3 s1 p1 conv. [B,out,·,·] → [B,out,2·,2·]
        x = inModule(b, 'upsamplers.0', (u) => spatialConv(u, upsampleNearest2x(g, x), 'conv', [out, out, 3, 3], { pad: 1 }));
      }
      return x;
    });
  }
  if (skips.length !== 0) throw new ArchError(`unet: ${skips.length} skip tensors left over`);

  // 6. output: GroupNorm(eps norm_eps) → SiLU → conv_out. [B,C0,h,w] → [B,Cout,h,w]
  h = silu(g, norm(ctx, h, 'conv_norm_out', ch[0], groups, eps));
  h = spatialConv(ctx, h, 'conv_out', [cfg.outChannels, ch[0], 3, 3], { pad: 1 });
  g.output('noise_pred', h, 'float32', ['batch', cfg.outChannels, 'height', 'width']);
  return { g, unusedWeights: w.unused() };
}
