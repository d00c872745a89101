// The VAE decoder's whole-image context, and the two decoder graphs that produce and consume it.
//
// A region decode (an edit's affected box) cannot be exact: every GroupNorm averages over the whole
// image and the mid-block attention attends to every latent token. Decoding the box alone gives it its
// own statistics and only its own tokens, which shifts colours and contrast inside the box (10–12/255 on
// average on the bundled model). SIGE's answer is to cache what the whole image contributed; so:
//
// - RECORDING graph: the ordinary decoder (same image, bit for bit) plus outputs gn_mean / gn_var [S, G, 1] (the statistics of its
//   S GroupNorms, in build order) and, when the mid block has attention, mid_k / mid_v [1, h·w, C] (its
//   projected keys and values, one per latent token).
// - BOX graph: decodes a latent box normalising with given gn_mean / gn_var inputs and attending to the
//   box's own tokens plus outside_k / outside_v [1, M, C] (the cached tokens outside the box). It also
//   outputs the box's mid_k / mid_v, so a child's context is its parent's with the box's tokens replaced.
//
// With the box = the whole latent, M = 0 and the statistics of the same latents, the box graph computes
// the full decode (test/engine/pipeline/regionDecoder.test.ts).

import { GraphBuilder, type GraphBuilderOptions } from '../graph/graphBuilder';
import { OnnxDataType } from '../graph/onnxProto';
import { VaeConfig } from '../model/configs';
import { WeightMap } from '../model/tensor';
import { ArchError } from './archContext';
import { buildVaeDecoderGraph } from './vaeDecoder';

export interface VaeDecoderContextGraph {
  g: GraphBuilder;
  /** GroupNorm module paths in build order: row s of gn_mean / gn_var. */
  norms: string[];
  /** Module path of the mid-block attention, or null when the decoder has none. */
  attention: string | null;
  /** Conv-input outputs (recording graph with convInputs): entry name, decoder level (0 = image), Cin. */
  convInputs: { name: string; level: number; width: number }[];
}

export interface RecordingDecoderOptions {
  /**
   * Also output the input of every 3×3 conv as channels-last rows "<path>.input" [1, h_l·w_l, Cin] in
   * `cacheDType` (default float16): what the sparse decoder (sparse/sparseVaeDecoder.ts) reads its halos from.
   */
  convInputs?: boolean;
  cacheDType?: 'float16' | 'float32';
  /** Decoder level of a conv's module path (sparseVaeDecoder.decoderLevelOfPath); needed with convInputs. */
  levelOf?: (path: string) => number;
  /** Builder options when this function creates the builder (runtime/deviceGraphs.ts graphOptionsFor). */
  graph?: GraphBuilderOptions;
}

/** Decoder + its GroupNorm statistics and mid-attention keys/values as outputs. */
export function buildRecordingVaeDecoderGraph(cfg: VaeConfig, weights: WeightMap, opts: RecordingDecoderOptions = {}): VaeDecoderContextGraph {
  const g = new GraphBuilder('vae_decoder_recording', opts.graph);
  const norms: string[] = [];
  const convInputs: VaeDecoderContextGraph['convInputs'] = [];
  const dtype = opts.cacheDType ?? 'float16';
  if (opts.convInputs && !opts.levelOf) throw new ArchError('recording decoder: convInputs needs levelOf');
  const means: string[] = [];
  const variances: string[] = [];
  let attention: string | null = null;
  buildVaeDecoderGraph(cfg, weights, {
    builder: g,
    hooks: {
      // The image stays the plain decoder's, bit for bit: a recorded node's PNG is generate()'s.
      statsBesidePlainGroupNorm: true,
      ...(opts.convInputs
        ? {
            convInput(path: string, x: string) {
              const w = weights.get(`${path}.weight`);
              if (!w) throw new ArchError(`recording decoder: weight ${path}.weight is missing`);
              const level = opts.levelOf!(path);
              const rows = g.op('Transpose', [g.op('Reshape', [x, g.constI64([0, 0, -1])])], { perm: [0, 2, 1] }, { hint: 'rec_rows' }); // [1,HW,C]
              const out = dtype === 'float16' ? g.op('Cast', [rows], { to: OnnxDataType.FLOAT16 }, { hint: 'rec_f16' }) : rows;
              const name = `${path}.input`;
              g.output(name, out, dtype, [1, `hw${level}`, w.shape[1]]);
              convInputs.push({ name, level, width: w.shape[1] });
            },
          }
        : {}),
      groupNormStats(path, mean, variance) {
        norms.push(path);
        means.push(mean);
        variances.push(variance);
      },
      selfAttentionKV(path, k, v) {
        if (attention !== null) throw new ArchError(`the VAE decoder has a second self-attention at ${path}`);
        attention = path;
        g.output('mid_k', k, 'float32', [1, 'tokens', cfg.blockOutChannels[cfg.blockOutChannels.length - 1]]);
        g.output('mid_v', v, 'float32', [1, 'tokens', cfg.blockOutChannels[cfg.blockOutChannels.length - 1]]);
      },
    },
  });
  g.output('gn_mean', g.op('Concat', means, { axis: 0 }), 'float32', [norms.length, cfg.normNumGroups, 1]);
  g.output('gn_var', g.op('Concat', variances, { axis: 0 }), 'float32', [norms.length, cfg.normNumGroups, 1]);
  return { g, norms, attention, convInputs };
}

/** Decoder of a latent box that normalises with given statistics and attends to given outside tokens too. */
export function buildBoxVaeDecoderGraph(cfg: VaeConfig, weights: WeightMap, opts: { graph?: GraphBuilderOptions } = {}): VaeDecoderContextGraph {
  const g = new GraphBuilder('vae_decoder_box', opts.graph);
  const groups = cfg.normNumGroups;
  const cTop = cfg.blockOutChannels[cfg.blockOutChannels.length - 1];
  const norms: string[] = [];
  let attention: string | null = null;
  // Inputs are declared lazily (the norm count is known only after the build), so gn_* are declared here
  // with a symbolic first dimension and sliced per norm.
  const gnMean = g.input('gn_mean', 'float32', ['norms', groups, 1]);
  const gnVar = g.input('gn_var', 'float32', ['norms', groups, 1]);
  buildVaeDecoderGraph(cfg, weights, {
    builder: g,
    hooks: {
      givenGroupNormStats(path) {
        const s = norms.length;
        norms.push(path);
        const row = (t: string) => g.op('Gather', [t, g.constI64([s], `gn_row_${s}`)], { axis: 0 }); // [1,G,1]
        return { mean: row(gnMean), variance: row(gnVar) };
      },
      selfAttentionKV(path, k, v) {
        if (attention !== null) throw new ArchError(`the VAE decoder has a second self-attention at ${path}`);
        attention = path;
        g.output('mid_k', k, 'float32', [1, 'tokens', cTop]);
        g.output('mid_v', v, 'float32', [1, 'tokens', cTop]);
      },
      extraAttentionKV() {
        return { k: g.input('outside_k', 'float32', [1, 'outside', cTop]), v: g.input('outside_v', 'float32', [1, 'outside', cTop]) };
      },
    },
  });
  return { g, norms, attention, convInputs: [] };
}
