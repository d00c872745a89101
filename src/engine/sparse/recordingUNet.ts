// RECORDING UNet step graph: the dense UNet (arch/unet.ts, same block code) plus one extra output per
// cache entry (cacheManifest.ts), converted inside the graph to what the sparse step graph consumes:
// channels-last rows [B, h·w, C] (Reshape + Transpose) cast to float16, and GroupNorm statistics [B, G].
// The cache therefore holds ORT's fp16 output bytes as they are, and feeds them back unchanged.
//
// Inputs/outputs as buildUNetGraph (sample [B,Cin,h,w], timestep [B], encoder_hidden_states [B,L,D] →
// noise_pred [B,Cout,h,w]) plus one output per manifest entry, named by entry name.
// GroupNorms use the ReduceMean formulation (nn.groupNormStats): same numbers as the dense graph.

import { ArchHooks } from '../arch/archContext';
import { buildUNetGraph } from '../arch/unet';
import { GraphBuilder, type GraphBuilderOptions } from '../graph/graphBuilder';
import { OnnxDataType } from '../graph/onnxProto';
import { UNetConfig } from '../model/configs';
import { WeightMap } from '../model/tensor';
import { CacheDType, CacheEntryKind, CacheEntrySpec, CacheManifestError, entryName, isSparseInput, levelOfPath } from './cacheManifest';

export interface RecordingGraphOptions {
  /** Element type of the cache outputs (default float16; float32 only for exactness tests). */
  cacheDType?: CacheDType;
  /**
   * Levels whose cross-attention probability maps are recorded (default: the two coarsest, e.g. 16² and
   * 8² for SD at 512 px, where maps are small and still localise words); [] for none.
   */
  attentionMapLevels?: readonly number[];
  /** Text length L the manifest states for attention maps (default 77). */
  textLength?: number;
  /**
   * Also output every entry the sparse step reads a second time as "device:<entry name>" (an Identity):
   * a session keeps those in device memory for later sparse steps, while the plain outputs come to the
   * host for the on-disk cache (onnxruntime-node cannot read a device output back).
   */
  deviceCopies?: boolean;
  /** Builder options when this function creates the builder (runtime/deviceGraphs.ts graphOptionsFor). */
  graph?: GraphBuilderOptions;
}

export const DEVICE_COPY_PREFIX = 'device:';

export interface RecordingUNetGraph {
  g: GraphBuilder;
  /** Every cache output in the order the UNet produces them. */
  manifest: CacheEntrySpec[];
  unusedWeights: string[];
}

export function buildRecordingUNetGraph(cfg: UNetConfig, weights: WeightMap, opts: RecordingGraphOptions = {}): RecordingUNetGraph {
  const g = new GraphBuilder('unet_recording', opts.graph);
  const levels = cfg.blockOutChannels.length;
  const dtype = opts.cacheDType ?? 'float16';
  const manifest: CacheEntrySpec[] = [];
  const width = (path: string, weight: string, axis: number): number => {
    const w = weights.get(`${path}.${weight}`);
    if (!w) throw new CacheManifestError(`recording: weight ${path}.${weight} is missing`);
    return w.shape[axis];
  };
  const emit = (path: string, kind: CacheEntryKind, value: string, entryWidth: number): void => {
    const spec: CacheEntrySpec = { name: entryName(path, kind), kind, level: levelOfPath(path, levels), width: entryWidth };
    const out = dtype === 'float16' ? g.op('Cast', [value], { to: OnnxDataType.FLOAT16 }, { hint: 'rec_f16' }) : value;
    const last = kind === 'crossAttnProbs' ? 'sequence' : entryWidth;
    const dims = kind.startsWith('groupNorm') ? ['batch', entryWidth] : ['batch', `hw${spec.level}`, last];
    g.output(spec.name, out, dtype, dims);
    if (opts.deviceCopies && isSparseInput(kind)) g.output(DEVICE_COPY_PREFIX + spec.name, out, dtype, dims); // output() adds the Identity
    manifest.push(spec);
  };
  const rows = (x: string): string => {
    const flat = g.op('Reshape', [x, g.constI64([0, 0, -1])]); // [B,C,HW]
    return g.op('Transpose', [flat], { perm: [0, 2, 1] }, { hint: 'rec_rows' }); // [B,HW,C]
  };
  const groups = (v: string): string => g.op('Reshape', [v, g.constI64([0, -1])]); // [B,G,1] → [B,G]
  const mapLevels = new Set(opts.attentionMapLevels ?? [levels - 2, levels - 1].filter((l) => l >= 0));

  const hooks: ArchHooks = {
    convInput: (path, x) => emit(path, 'convInput', rows(x), width(path, 'weight', 1)),
    selfAttentionKV: (path, k, v) => {
      const c = width(path, 'to_k.weight', 0);
      emit(path, 'selfAttnK', k, c);
      emit(path, 'selfAttnV', v, c);
    },
    crossAttentionQK: (path, q, k, heads) => {
      if (!mapLevels.has(levelOfPath(path, levels))) return;
      emit(path, 'crossAttnProbs', headAveragedProbs(g, q, k, width(path, 'to_q.weight', 0), heads), opts.textLength ?? 77);
    },
    groupNormStats: (path, mean, variance) => {
      emit(path, 'groupNormMean', groups(mean), cfg.normNumGroups);
      emit(path, 'groupNormStd', groups(g.op('Sqrt', [variance])), cfg.normNumGroups);
    },
  };
  const built = buildUNetGraph(cfg, weights, { hooks, builder: g });
  return { g, manifest, unusedWeights: built.unusedWeights };
}

/** softmax(q·kᵀ/√d) averaged over heads: q [B,N,C], k [B,M,C] → [B,N,M]. */
function headAveragedProbs(g: GraphBuilder, q: string, k: string, channels: number, heads: number): string {
  const d = channels / heads;
  const split = g.constI64([0, 0, heads, d]);
  const qh = g.op('Transpose', [g.op('Reshape', [g.op('Mul', [q, g.constF32([d ** -0.5], [], 'attn_scale')]), split])], { perm: [0, 2, 1, 3] }); // [B,h,N,d]
  const kh = g.op('Transpose', [g.op('Reshape', [k, split])], { perm: [0, 2, 3, 1] }); // [B,h,d,M]
  const p = g.op('Softmax', [g.op('MatMul', [qh, kh])], { axis: -1 }, { hint: 'xattn_probs' }); // [B,h,N,M]
  return g.op('ReduceMean', [p], { axes: [1], keepdims: 0 }, { hint: 'xattn_map' }); // [B,N,M]
}
