// MAC counts: the dense count of a small config by hand, sparse = dense when every pixel is active, and
// the ordering a sparse step must show.

import { UNetConfig } from '../../../src/engine/model/configs';
import { unetMacs } from '../../../src/engine/sparse/unetMacs';
import { fixtureModel } from '../arch/goldens';

describe('unetMacs', () => {
  it('counts a one-level UNet by hand', () => {
    // One level, C = 8, one resnet per block, one cross-attention transformer, latent 4×4 (16 px), Cin = Cout = 4, D = 6, L = 5.
    const cfg = {
      ...fixtureModel('tiny-2level').unet.config,
      inChannels: 4,
      outChannels: 4,
      blockOutChannels: [8],
      downBlockTypes: ['CrossAttnDownBlock2D'],
      upBlockTypes: ['CrossAttnUpBlock2D'],
      layersPerBlock: 1,
      crossAttentionDim: 6,
    } as UNetConfig;
    const P = 16;
    const C = 8;
    const conv = (cin: number, cout: number) => P * 9 * cin * cout;
    const resnet = (cin: number, cout: number) => conv(cin, cout) + conv(cout, cout) + (cin !== cout ? P * cin * cout : 0);
    const transformer = 2 * P * C * C + (4 * P * C * C + 2 * P * P * C) + (2 * P * C * C + 2 * 5 * 6 * C + 2 * P * 5 * C) + 12 * P * C * C;
    // conv_in; down: resnet + attn; mid: resnet, attn, resnet; up: 2 × (resnet on concat 16 → 8 + attn); conv_out
    const want = conv(4, C) + resnet(C, C) + transformer + 2 * resnet(C, C) + transformer + 2 * (resnet(2 * C, C) + transformer) + conv(C, 4);
    expect(unetMacs(cfg, 4, 4, { textLength: 5 }).total).toBe(want);
    expect(unetMacs(cfg, 4, 4, { textLength: 5, batch: 2 }).total).toBe(2 * want);
  });

  it('a sparse step with every pixel active costs a dense step; fewer active pixels cost less', () => {
    const cfg = fixtureModel('sd-narrow').unet.config;
    const dense = unetMacs(cfg, 32, 32);
    expect(unetMacs(cfg, 32, 32, { activeCounts: [1024, 256, 64, 16] })).toEqual(dense);
    const sparse = unetMacs(cfg, 32, 32, { activeCounts: [102, 40, 16, 16] });
    expect(sparse.total).toBeLessThan(dense.total / 3);
    expect(sparse.perLevel[3]).toBe(dense.perLevel[3]);
    expect(sparse.perLevel[0]).toBeLessThan(dense.perLevel[0] / 5);
  });
});
