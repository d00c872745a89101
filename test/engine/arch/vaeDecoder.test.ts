/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// VAE decoder graph against the PyTorch golden (image.npy = decoder(vae_latents / scaling_factor)).

import { buildVaeDecoderGraph } from '../../../src/engine/arch/vaeDecoder';
import { createSession, float32Tensor } from '../../../src/engine/runtime/ortSession';
import { FIXTURE_MODELS, fixtureModel, goldenF32 } from './goldens';
import { relErr } from '../graph/reference';

/** diffusers postprocess: (x/2 + 0.5) clamped to [0,1]. */
const toUnit = (v: number) => Math.min(1, Math.max(0, v / 2 + 0.5));

describe.each(FIXTURE_MODELS)('VAE decoder (%s)', (name) => {
  const model = fixtureModel(name);
  const cfg = model.vae.config;

  it('decodes latents/scaling_factor to the golden image within 2/255 after postprocess', async () => {
    const built = buildVaeDecoderGraph(cfg, model.vae.weights);
    expect(built.unusedWeights).toEqual([]);
    const latents = goldenF32(name, 'vae_latents.npy');
    const ref = goldenF32(name, 'image.npy');
    const s = await createSession(built.g.build(), { intraOpNumThreads: 1 });
    const z = Float32Array.from(latents.data, (v) => v / cfg.scalingFactor); // the pipeline's job, not the graph's
    const out = await s.run({ latents: float32Tensor(z, latents.shape) });
    await s.release();
    const img = out.image.data as Float32Array;
    expect(out.image.dims).toEqual(ref.shape);
    let maxPix = 0;
    for (let i = 0; i < img.length; i++) maxPix = Math.max(maxPix, Math.abs(toUnit(img[i]) - toUnit(ref.data[i])));
    console.log(`${name} image max |Δ| ${(maxPix * 255).toExponential(2)}/255, rel err ${relErr(img, ref.data).toExponential(2)}`);
    expect(maxPix).toBeLessThanOrEqual(2 / 255);
    expect(relErr(img, ref.data)).toBeLessThan(1e-4);
  });
});
