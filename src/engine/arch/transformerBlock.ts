// Transformer2DModel (continuous input) with one BasicTransformerBlock, as in SD 1.x/2.x UNets
// (diffusers transformer_2d.py, attention.py, attention_processor.py, activations.py):
//   residual = x; x = GroupNorm(x, eps 1e-6); proj_in; tokens [B,HW,C];
//   t = attn1(norm1(t)) + t;  t = attn2(norm2(t), text) + t;  t = ff(norm3(t)) + t   (LayerNorm eps 1e-5)
//   proj_out; back to NCHW; + residual
// proj_in/proj_out are 1×1 convs (use_linear_projection false, applied on NCHW) or Linears (true, on tokens).

import { attention, fromTokens, gelu, layerNorm, linear, toTokens } from '../graph/nn';
import { ArchContext, inModule, norm } from './archContext';

export interface TransformerSpec {
  channels: number;
  heads: number;
  groups: number;
  /** Width of the text states (cross_attention_dim). */
  contextDim: number;
  linearProjection: boolean;
}

/**
 * diffusers Attention: q from x, k/v from ctx (= x for self-attention), heads contiguous per channel
 * block, no q/k/v bias, to_out.0 with bias. x [B,N,C], context [B,M,Dc] → [B,N,C].
 */
export function attentionModule(actx: ArchContext, x: string, context: string | undefined, channels: number, contextDim: number, heads: number): string {
  const { g, w } = actx;
  const kvIn = context ?? x;
  const q = g.scope('to_q', () => linear(g, x, w.get('to_q.weight', [channels, channels]))); // [B,N,C]
  const k = g.scope('to_k', () => linear(g, kvIn, w.get('to_k.weight', [channels, contextDim]))); // [B,M,C]
  const v = g.scope('to_v', () => linear(g, kvIn, w.get('to_v.weight', [channels, contextDim]))); // [B,M,C]
  if (!context && actx.hooks.selfAttentionKV) actx.hooks.selfAttentionKV(w.prefix, k, v);
  if (context && actx.hooks.crossAttentionQK) actx.hooks.crossAttentionQK(w.prefix, q, k, heads);
  const o = attention(g, q, k, v, channels, heads); // [B,N,C]
  return g.scope('to_out.0', () => linear(g, o, w.get('to_out.0.weight', [channels, channels]), w.get('to_out.0.bias', [channels])));
}

/** GEGLU feed-forward: p = proj(x) [.., 8C]; value = p[..., :4C], gate = p[..., 4C:]; ff.net.2(value·GELU(gate)). */
export function feedForward(actx: ArchContext, x: string, channels: number): string {
  const { g, w } = actx;
  const inner = 4 * channels;
  const p = g.scope('net.0.proj', () => linear(g, x, w.get('net.0.proj.weight', [2 * inner, channels]), w.get('net.0.proj.bias', [2 * inner])));
  const [value, gate] = g.opN('Split', [p, g.constI64([inner, inner], 'split')], 2, { axis: -1 }, { hint: 'geglu_split' });
  const h = g.op('Mul', [value, gelu(g, gate)], {}, { hint: 'geglu' }); // [B,N,4C]
  return g.scope('net.2', () => linear(g, h, w.get('net.2.weight', [channels, inner]), w.get('net.2.bias', [channels])));
}

/** BasicTransformerBlock (pre-LN). t [B,N,C], text [B,M,Dc] → [B,N,C]. */
function basicTransformerBlock(actx: ArchContext, t: string, text: string, spec: TransformerSpec): string {
  const { g, w } = actx;
  const c = spec.channels;
  const ln = (name: string, x: string) => g.scope(name, () => layerNorm(g, x, w.get(`${name}.weight`, [c]), w.get(`${name}.bias`, [c]), 1e-5));
  // t: [B,N,C] throughout
  const a1 = inModule(actx, 'attn1', (m) => attentionModule(m, ln('norm1', t), undefined, c, c, spec.heads));
  t = g.op('Add', [a1, t]);
  const a2 = inModule(actx, 'attn2', (m) => attentionModule(m, ln('norm2', t), text, c, spec.contextDim, spec.heads));
  t = g.op('Add', [a2, t]);
  const ff = inModule(actx, 'ff', (m) => feedForward(m, ln('norm3', t), c));
  return g.op('Add', [ff, t]);
}

/** Transformer2DModel. x [B,C,H,W], text [B,M,Dc] → [B,C,H,W]. */
export function transformer2d(actx: ArchContext, x: string, text: string, spec: TransformerSpec): string {
  const { g, w } = actx;
  const c = spec.channels;
  const h = norm(actx, x, 'norm', c, spec.groups, 1e-6); // [B,C,H,W]
  let t: string; // [B,HW,C]
  if (spec.linearProjection) {
    t = g.scope('proj_in', () => linear(g, toTokens(g, h, c), w.get('proj_in.weight', [c, c]), w.get('proj_in.bias', [c])));
  } else {
    // A 1×1 conv on NCHW equals a Linear on tokens; doing it on tokens saves a layout round trip.
    t = g.scope('proj_in', () => linear(g, toTokens(g, h, c), w.get('proj_in.weight', [c, c, 1, 1]), w.get('proj_in.bias', [c])));
  }
  t = inModule(actx, 'transformer_blocks.0', (m) => basicTransformerBlock(m, t, text, spec));
  const projShape = spec.linearProjection ? [c, c] : [c, c, 1, 1];
  t = g.scope('proj_out', () => linear(g, t, w.get('proj_out.weight', projShape), w.get('proj_out.bias', [c])));
  return g.op('Add', [fromTokens(g, t, x), x], {}, { hint: 'transformer_out' });
}
