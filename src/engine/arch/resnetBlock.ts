// ResnetBlock2D (diffusers resnet.py, time_embedding_norm "default", output_scale_factor 1):
//   h = conv1(SiLU(norm1(x))) [+ time_emb_proj(SiLU(temb))[:, :, None, None]]
//   h = conv2(SiLU(norm2(h)));  out = shortcut(x) + h
// shortcut = conv_shortcut (1×1) when Cin ≠ Cout, else identity. The VAE uses it without temb.

import { linear, silu } from '../graph/nn';
import { ArchContext, ArchError, norm, spatialConv } from './archContext';

export interface ResnetSpec {
  inChannels: number;
  outChannels: number;
  groups: number;
  eps: number;
  /** Width of the time embedding (UNet); undefined for the VAE (no time_emb_proj). */
  tembChannels?: number;
}

/**
 * x [B,Cin,H,W], temb [B,Ct] (SiLU NOT yet applied; pass the shared SiLU(temb) via `tembAct`) →
 * [B,Cout,H,W]. `tembAct` is SiLU(temb) computed once per graph and shared by every resnet.
 */
export function resnetBlock(ctx: ArchContext, x: string, tembAct: string | undefined, spec: ResnetSpec): string {
  const { g, w } = ctx;
  const { inChannels: cin, outChannels: cout, groups, eps } = spec;
  // h: [B,Cin,H,W] → [B,Cout,H,W]
  let h = silu(g, norm(ctx, x, 'norm1', cin, groups, eps));
  h = spatialConv(ctx, h, 'conv1', [cout, cin, 3, 3], { pad: 1 });
  if (spec.tembChannels !== undefined) {
    if (!tembAct) throw new ArchError(`${w.prefix}: a UNet resnet needs the time embedding`);
    // t: [B,Cout] → [B,Cout,1,1], broadcast over H,W
    const t = g.scope('time_emb_proj', () =>
      linear(g, tembAct, w.get('time_emb_proj.weight', [cout, spec.tembChannels!]), w.get('time_emb_proj.bias', [cout])),
    );
    h = g.op('Add', [h, g.op('Unsqueeze', [t, g.constI64([2, 3], 'axes')])]);
  }
  h = silu(g, norm(ctx, h, 'norm2', cout, groups, eps));
  h = spatialConv(ctx, h, 'conv2', [cout, cout, 3, 3], { pad: 1 });
  const shortcut = cin !== cout || w.has('conv_shortcut.weight') ? spatialConv(ctx, x, 'conv_shortcut', [cout, cin, 1, 1]) : x;
  return g.op('Add', [shortcut, h], {}, { hint: 'resnet_out' });
}
