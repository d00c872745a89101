// CLIPTextModel text tower (transformers modeling_clip.py; shared/reference/sd-architecture.md §3):
//   h = token_embedding[ids] + position_embedding[0..L−1]
//   per layer (pre-LN): h += out_proj(MHA(layer_norm1(h), causal)); h += fc2(act(fc1(layer_norm2(h))))
//   last_hidden_state = final_layer_norm(h)
// No padding mask: SD feeds all 77 positions (pads included) and only the causal mask applies.
//
// Input:  input_ids int64 [B, L] (L = seqLength, 77 for SD)
// Output: last_hidden_state float32 [B, L, D]

import { GraphBuilder, type GraphBuilderOptions } from '../graph/graphBuilder';
import { attention, gelu, layerNorm, linear, quickGelu } from '../graph/nn';
import { ClipTextConfig } from '../model/configs';
import { WeightMap } from '../model/tensor';
import { ArchContext, ArchError, inModule, WeightScope } from './archContext';

export interface ClipTextGraphOptions {
  /** Sequence length of input_ids (default 77, the CLIP tokenizer's model_max_length). */
  seqLength?: number;
  /** Build into this builder (e.g. one whose hooks add recording outputs); default a new one. */
  builder?: GraphBuilder;
  /** Builder options when this function creates the builder (runtime/deviceGraphs.ts graphOptionsFor). */
  graph?: GraphBuilderOptions;
}

export interface ClipTextGraph {
  g: GraphBuilder;
  unusedWeights: string[];
}

/** Additive causal mask [L,L]: 0 where key j ≤ query i, float32 min above the diagonal (as transformers). */
export function causalMask(g: GraphBuilder, L: number): string {
  const m = new Float32Array(L * L);
  const min = -3.4028234663852886e38;
  for (let i = 0; i < L; i++) for (let j = i + 1; j < L; j++) m[i * L + j] = min;
  return g.constF32(m, [L, L], 'causal_mask');
}

export function buildClipTextGraph(cfg: ClipTextConfig, weights: WeightMap, opts: ClipTextGraphOptions = {}): ClipTextGraph {
  const L = opts.seqLength ?? 77;
  const D = cfg.hiddenSize;
  if (L > cfg.maxPositionEmbeddings) throw new ArchError(`clip: sequence length ${L} exceeds max_position_embeddings ${cfg.maxPositionEmbeddings}`);
  const g = opts.builder ?? new GraphBuilder('clip_text', opts.graph);
  const root: ArchContext = { g, w: new WeightScope(weights), hooks: {} };
  const ids = g.input('input_ids', 'int64', ['batch', L]);

  const hidden = inModule(root, 'text_model', (ctx) => {
    // 1. embeddings: [B,L] → [B,L,D]
    let h = inModule(ctx, 'embeddings', (e) => {
      const tok = g.op('Gather', [g.weight(e.w.get('token_embedding.weight', [cfg.vocabSize, D])), ids], { axis: 0 }, { hint: 'token_embedding' });
      let pos = g.weight(e.w.get('position_embedding.weight', [cfg.maxPositionEmbeddings, D])); // [P,D]
      if (L !== cfg.maxPositionEmbeddings) pos = g.op('Slice', [pos, g.constI64([0]), g.constI64([L]), g.constI64([0])]); // [L,D]
      return g.op('Add', [tok, pos], {}, { hint: 'embeddings' });
    });

    const mask = causalMask(g, L);
    const ln = (c: ArchContext, name: string, x: string) =>
      g.scope(name, () => layerNorm(g, x, c.w.get(`${name}.weight`, [D]), c.w.get(`${name}.bias`, [D]), cfg.layerNormEps));
    const lin = (c: ArchContext, name: string, x: string, out: number, inp: number) =>
      g.scope(name, () => linear(g, x, c.w.get(`${name}.weight`, [out, inp]), c.w.get(`${name}.bias`, [out])));

    // 2. encoder layers: h [B,L,D] throughout
    for (let i = 0; i < cfg.numHiddenLayers; i++) {
      h = inModule(ctx, `encoder.layers.${i}`, (l) => {
        const x = ln(l, 'layer_norm1', h);
        const a = inModule(l, 'self_attn', (s) => {
          const q = lin(s, 'q_proj', x, D, D);
          const k = lin(s, 'k_proj', x, D, D);
          const v = lin(s, 'v_proj', x, D, D);
          return lin(s, 'out_proj', attention(g, q, k, v, D, cfg.numAttentionHeads, { bias: mask }), D, D);
        });
        const h1 = g.op('Add', [h, a]);
        const x2 = ln(l, 'layer_norm2', h1);
        const m = inModule(l, 'mlp', (p) => {
          const f1 = lin(p, 'fc1', x2, cfg.intermediateSize, D); // [B,L,I]
          const act = cfg.hiddenAct === 'quick_gelu' ? quickGelu(g, f1) : gelu(g, f1);
          return lin(p, 'fc2', act, D, cfg.intermediateSize);
        });
        return g.op('Add', [h1, m]);
      });
    }
    // 3. final LayerNorm
    return ln(ctx, 'final_layer_norm', h);
  });
  g.output('last_hidden_state', hidden, 'float32', ['batch', L, D]);
  return { g, unusedWeights: root.w.unused() };
}
