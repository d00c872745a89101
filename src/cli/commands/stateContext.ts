// --state DIR for the CLI: open the node store (exit 4 when the folder is unusable) and, once the model
// is loaded, the recording/sparse UNet, the region decoder and the activation cache that live beside it.
import { loadEditComponents, releaseEditComponents } from '../../engine/pipeline/editUNet';
import type { StateContext } from '../../engine/pipeline/editTypes';
import type { DiffusionEngine } from '../../engine/pipeline/engine';
import type { WeightFormat } from '../../engine/graph/graphBuilder';
import type { GraphCache } from '../../engine/runtime/graphCache';
import type { ModelFolder } from '../../engine/model/modelFolder';
import { NodeStore, StateDirError } from '../../engine/state/nodeStore';
import { CliError, EXIT } from '../exitCodes';

/** Resident bytes of the activation cache; everything else stays in DIR/cache on disk. */
export const CACHE_BUDGET_BYTES = 1024 * 2 ** 20;

export async function openStateStore(dir: string, command: string, create: boolean): Promise<NodeStore> {
  try {
    return await NodeStore.open(dir, { create });
  } catch (e) {
    if (e instanceof StateDirError) throw new CliError(EXIT.io, `${command}: ${e.message}`);
    throw e;
  }
}

/**
 * The engine plus what recording and sparse edits need. `sparse: false` loads the recording session
 * only (generate). Any failure to build the UNet graphs is a model error.
 */
export async function loadStateContext(engine: DiffusionEngine, store: NodeStore, opts: { threads?: number; sparse: boolean; graphCache?: GraphCache; weights?: WeightFormat; folder?: ModelFolder }): Promise<StateContext> {
  let parts;
  try {
    parts = await loadEditComponents(engine.info.dir, { variant: engine.info.variant ?? undefined, intraOpNumThreads: opts.threads, device: engine.device, sessions: { recording: true, sparse: opts.sparse }, graphCache: opts.graphCache, weights: opts.weights, folder: opts.folder });
  } catch (e) {
    throw new CliError(EXIT.model, `cannot build the recording/sparse UNet or the region decoder of ${engine.info.dir}: ${(e as Error).message}`);
  }
  const { unet, decoder } = parts;
  let cache;
  try {
    cache = await store.openCache(CACHE_BUDGET_BYTES);
  } catch (e) {
    await releaseEditComponents(parts);
    if (e instanceof StateDirError) throw new CliError(EXIT.io, e.message);
    throw e;
  }
  // The recording graph runs the engine's dense steps too: one UNet copy in memory, not two.
  if (unet.denseSession) await engine.adoptUNet(unet.denseSession);
  return { models: engine, store, cache, unet, decoder };
}
