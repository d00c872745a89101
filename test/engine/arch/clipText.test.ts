/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// CLIP text encoder graph against the PyTorch golden (text_embeds.npy = encoder([negative, prompt])).

import { buildClipTextGraph } from '../../../src/engine/arch/clipText';
import { MissingWeightError } from '../../../src/engine/arch/archContext';
import { createSession, int64Tensor, OrtModelSession } from '../../../src/engine/runtime/ortSession';
import { FIXTURE_MODELS, fixtureModel, goldenF32, goldenMeta, goldenTokenIds } from './goldens';
import { relErr } from '../graph/reference';

describe.each(FIXTURE_MODELS)('CLIP text encoder (%s)', (name) => {
  let session: OrtModelSession;
  const model = fixtureModel(name);
  const built = buildClipTextGraph(model.textEncoder.config, model.textEncoder.weights);

  beforeAll(async () => {
    session = await createSession(built.g.build(), { intraOpNumThreads: 1 });
  });
  afterAll(() => session.release());

  it('uses every weight in the file', () => {
    expect(built.unusedWeights).toEqual([]);
  });

  it('matches the golden last_hidden_state within 1e-4 relative', async () => {
    const meta = goldenMeta(name);
    const ids = [...goldenTokenIds(name, meta.negative), ...goldenTokenIds(name, meta.prompt)];
    const out = await session.run({ input_ids: int64Tensor(ids, [2, 77]) });
    const ref = goldenF32(name, 'text_embeds.npy');
    expect(out.last_hidden_state.dims).toEqual(ref.shape);
    const err = relErr(out.last_hidden_state.data as Float32Array, ref.data);
    console.log(`${name} text_embeds rel err ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-4);
  });

  it('is causal: changing token j leaves positions < j untouched and changes position j', async () => {
    const base = goldenTokenIds(name, goldenMeta(name).prompt);
    const changed = [...base];
    changed[5] = base[5] === 1 ? 2 : 1;
    const out = await session.run({ input_ids: int64Tensor([...base, ...changed], [2, 77]) });
    const d = out.last_hidden_state.data as Float32Array;
    const D = model.textEncoder.config.hiddenSize;
    const row = (b: number, t: number) => d.subarray((b * 77 + t) * D, (b * 77 + t + 1) * D);
    for (let t = 0; t < 5; t++) expect(Array.from(row(1, t))).toEqual(Array.from(row(0, t)));
    expect(relErr(row(1, 5), row(0, 5))).toBeGreaterThan(1e-3);
  });
});

describe('CLIP graph errors', () => {
  it('names a missing weight', () => {
    const m = fixtureModel('tiny-2level');
    const weights = new Map(m.textEncoder.weights);
    weights.delete('text_model.encoder.layers.1.mlp.fc2.weight');
    expect(() => buildClipTextGraph(m.textEncoder.config, weights)).toThrow(MissingWeightError);
    expect(() => buildClipTextGraph(m.textEncoder.config, weights)).toThrow(/text_model\.encoder\.layers\.1\.mlp\.fc2\.weight/);
  });
});
