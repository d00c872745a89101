// Multiply-accumulate count of one UNet evaluation, dense or sparse, for edit reports ("MACs dense vs
// sparse") and to tell kernel overhead from work in benchmarks. Counts matmul-like work only (convs,
// linears, attention scores and weighted sums); norms, activations and data movement are not MACs.
//
// A sparse step computes every row-wise layer on N_l rows at level l, every 3×3 conv on N_l output
// pixels, and self-attention for N_l queries against all h_l·w_l keys (new ∪ cached K/V).

import { convInChannels, UNetConfig } from '../model/configs';

export interface UNetMacs {
  /** Total MACs for the batch. */
  total: number;
  /** Per resolution level. */
  perLevel: number[];
}

/**
 * MACs of one UNet evaluation at latent height × width for `batch` images. `activeCounts[l]` (N_l)
 * makes it a sparse step; omitted = dense (N_l = h_l·w_l). textLength L of the cross-attention context.
 */
export function unetMacs(cfg: UNetConfig, height: number, width: number, opts: { batch?: number; activeCounts?: readonly number[]; textLength?: number } = {}): UNetMacs {
  const ch = cfg.blockOutChannels;
  const levels = ch.length;
  const B = opts.batch ?? 1;
  const L = opts.textLength ?? 77;
  const D = cfg.crossAttentionDim;
  const pixels = (l: number) => (height >> l) * (width >> l);
  const rows = (l: number) => opts.activeCounts?.[l] ?? pixels(l);
  const perLevel = new Array<number>(levels).fill(0);
  const add = (l: number, macs: number) => (perLevel[l] += B * macs);

  const conv3 = (l: number, cin: number, cout: number) => add(l, rows(l) * 9 * cin * cout);
  const resnet = (l: number, cin: number, cout: number) => {
    conv3(l, cin, cout);
    conv3(l, cout, cout);
    if (cin !== cout) add(l, rows(l) * cin * cout);
  };
  const transformer = (l: number, c: number) => {
    const n = rows(l);
    add(l, 2 * n * c * c); // proj_in, proj_out
    add(l, 4 * n * c * c + 2 * n * pixels(l) * c); // attn1: q, k, v, out on rows; scores and weighted sum against all keys
    add(l, 2 * n * c * c + 2 * L * D * c + 2 * n * L * c); // attn2: q, out; k, v of the text; scores and sum
    add(l, n * c * 8 * c + n * 4 * c * c); // GEGLU feed-forward
  };

  conv3(0, convInChannels(cfg), ch[0]);
  let cur = ch[0];
  const skips: number[] = [ch[0]];
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j < cfg.layersPerBlock; j++) {
      resnet(i, j === 0 ? cur : ch[i], ch[i]);
      if (cfg.downBlockTypes[i] === 'CrossAttnDownBlock2D') transformer(i, ch[i]);
      skips.push(ch[i]);
    }
    if (i < levels - 1) {
      add(i + 1, rows(i + 1) * 9 * ch[i] * ch[i]); // stride-2 conv: outputs at level i+1
      skips.push(ch[i]);
    }
    cur = ch[i];
  }
  resnet(levels - 1, cur, cur);
  transformer(levels - 1, cur);
  resnet(levels - 1, cur, cur);
  const rev = [...ch].reverse();
  for (let k = 0; k < levels; k++) {
    const l = levels - 1 - k;
    for (let j = 0; j <= cfg.layersPerBlock; j++) {
      resnet(l, cur + skips.pop()!, rev[k]);
      if (cfg.upBlockTypes[k] === 'CrossAttnUpBlock2D') transformer(l, rev[k]);
      cur = rev[k];
    }
    if (k < levels - 1) conv3(l - 1, cur, cur);
  }
  conv3(0, ch[0], cfg.outChannels);
  return { total: perLevel.reduce((a, b) => a + b, 0), perLevel };
}
