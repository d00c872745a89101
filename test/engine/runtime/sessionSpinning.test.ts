/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// Every session of the engine but the text encoder spins during its runs and stops when a run returns, so
// that its threads do not take the cores from the session that runs next (SessionOptions.spinning,
// DEFAULT_SPINNING; bench/edit/sessionSwitch.ts); the text encoder never spins
// (TEXT_ENCODER_SPINNING). Seen where it is decided: the session config entries each session is created
// with by onnxruntime.
import * as ort from 'onnxruntime-node';
import { loadModelFolder } from '../../../src/engine/model/modelFolder';
import { DiffusionEngine } from '../../../src/engine/pipeline/engine';
import { RegionDecoder } from '../../../src/engine/pipeline/regionDecoder';
import { SparseUNetRunner } from '../../../src/engine/sparse/sparseUNetRunner';
import { TINY } from '../pipeline/editFixtures';

/** The spin mode a session's config entries ask onnxruntime for. */
function spinMode(extra: Record<string, unknown> | undefined): string {
  if (extra?.['session.intra_op.allow_spinning'] === '0') return 'never';
  if (extra?.['session.force_spinning_stop'] === '1') return 'in-run';
  return 'always';
}

/** Each session created while `body` runs: its input names and its spin mode. */
async function created(body: () => Promise<void>): Promise<Array<{ inputs: readonly string[]; spinning: unknown }>> {
  const spy = jest.spyOn(ort.InferenceSession, 'create');
  try {
    await body();
    const out: Array<{ inputs: readonly string[]; spinning: unknown }> = [];
    for (const [i, call] of spy.mock.calls.entries()) {
      const session = await spy.mock.results[i].value;
      const options = call[call.length - 1] as ort.InferenceSession.SessionOptions;
      out.push({ inputs: session.inputNames, spinning: spinMode(options.extra as Record<string, unknown> | undefined) });
    }
    return out;
  } finally {
    spy.mockRestore();
  }
}

test('the engine: UNet and VAE decoder spin during their runs only, the text encoder never', async () => {
  let engine: DiffusionEngine | null = null;
  const sessions = await created(async () => {
    engine = await DiffusionEngine.load(TINY, { intraOpNumThreads: 1 });
  });
  await engine!.dispose();
  const byInput = (name: string) => sessions.filter((s) => s.inputs.includes(name));
  expect(sessions.length).toBe(3);
  expect(byInput('input_ids').map((s) => s.spinning)).toEqual(['never']);
  expect(byInput('latents').map((s) => s.spinning)).toEqual(['in-run']);
  expect(byInput('sample').map((s) => s.spinning)).toEqual(['in-run']);
});

test("the edit's region decoder sessions and its recording and sparse UNets spin during their runs only", async () => {
  const folder = loadModelFolder(TINY);
  const sessions = await created(async () => {
    const decoder = await RegionDecoder.create(folder.vae.config, folder.vae.weights, { intraOpNumThreads: 1, contextDecoderMaxBytes: 0 });
    await decoder.release();
    const unet = await SparseUNetRunner.create(folder.unet.config, folder.unet.weights, { intraOpNumThreads: 1, sessions: { dense: false } });
    await unet.release();
  });
  const decoders = sessions.filter((s) => s.inputs.includes('gn_mean') || s.inputs.includes('latents'));
  const unets = sessions.filter((s) => s.inputs.includes('sample') || s.inputs.includes('sample_rows'));
  expect(decoders.length + unets.length).toBe(sessions.length);
  expect(decoders.length).toBeGreaterThanOrEqual(3); // recording, box, sparse
  expect(unets.length).toBe(2); // recording, sparse
  for (const s of decoders) expect(s.spinning).toBe('in-run');
  for (const s of unets) expect(s.spinning).toBe('in-run');
});
