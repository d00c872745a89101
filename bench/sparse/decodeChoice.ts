// Issue 20: an edit's decode, sparse or full, side by side in one process, as decodeEditRegion runs them
// (the choice between them is made from measured costs: pipeline/decodeCosts.ts). For each disc:
//   sparse  the sparse decoder (affected pixels only, halos from the parent's conv inputs) + the child's deltas
//   full    the recording decoder on the whole latent + the child's full decoder page (what an edit that does
//           not decode sparsely runs, so that its own children can)
//   plain   the plain decoder on the whole latent (a dense regeneration's decode: no page, no context)
// interleaved (the order rotates each round), median of `reps` after one warm-up round. The parent's page is
// recorded once; each decode writes into a fresh child node, deleted after it.
//
//   npx tsx bench/sparse/decodeChoice.ts [modelDir] [imageSide] [areas] [reps] [--graph-cache DIR] [--out FILE]
//   e.g. npx tsx bench/sparse/decodeChoice.ts bench/.cache/sd15-random-full 256 0.05,0.1,0.25,0.5 3 --graph-cache bench/.cache/graphs

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ActivationCache } from '../../src/engine/cache/activationCache';
import { imageTensorToRgb } from '../../src/engine/image/png';
import { loadModelFolder } from '../../src/engine/model/modelFolder';
import { decodeEditRegion, putDecoderEntries } from '../../src/engine/pipeline/editDecode';
import { DiffusionEngine } from '../../src/engine/pipeline/engine';
import { scaledLatentBox } from '../../src/engine/pipeline/regionDecode';
import { RegionDecoder } from '../../src/engine/pipeline/regionDecoder';
import { gaussianFloat32 } from '../../src/engine/random/gaussian';
import { GraphCache } from '../../src/engine/runtime/graphCache';
import type { NodeRecord } from '../../src/engine/state/nodeRecord';
import { discMask } from '../edit/masks';
import { median, parseBenchArgs } from './benchArgs';

const { flags, dir, side, areas, reps } = parseBenchArgs(process.argv.slice(2), ['--graph-cache', '--out'], { side: 256, areas: '0.1,0.25,0.5', reps: 3 });
const cacheDir = flags['--graph-cache'];
const outFile = flags['--out'];

async function main(): Promise<void> {
  const graphCache = cacheDir ? new GraphCache({ dir: path.resolve(cacheDir) }) : undefined;
  const folder = loadModelFolder(dir);
  const engine = await DiffusionEngine.load(dir, { folder, components: ['vae'], intraOpNumThreads: 2, sessionOptions: { graphCache } });
  const decoder = await RegionDecoder.create(folder.vae.config, folder.vae.weights, { intraOpNumThreads: 2, graphCache });
  const { info } = engine;
  const F = info.vaeScaleFactor;
  const [C, h, w] = [info.latentChannels, side / F, side / F];
  const parent = { id: 'parent', latentShape: [C, h, w], width: side, height: side } as unknown as NodeRecord;
  const cache = new ActivationCache({ budgetBytes: Infinity });
  const zParent = gaussianFloat32(7, C * h * w);
  await cache.createNode('parent', null);
  const rec = await decoder.decodeRecording(scaledLatentBox(info, zParent, C, h, w, { x: 0, y: 0, width: w, height: h }), h, w, { entries: true });
  await putDecoderEntries(cache, 'parent', rec.entries);
  const parentRgb = imageTensorToRgb(rec.image, 3, side, side);
  console.log(`${path.basename(dir)} ${side}²: an edit's decode, sparse / full (with the child's page) / plain; load ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}`);
  const rows: Record<string, unknown>[] = [];
  const kinds = ['sparse', 'full', 'plain'] as const;
  for (const area of areas) {
    const mask = discMask(w, h, area);
    const noise = gaussianFloat32(11, C * h * w);
    const z = Float32Array.from(zParent);
    for (let c = 0; c < C; c++) for (let p = 0; p < h * w; p++) if (mask.data[p]) z[c * h * w + p] = noise[c * h * w + p];
    const ms: Record<(typeof kinds)[number], number[]> = { sparse: [], full: [], plain: [] };
    let macFraction: number | null = null;
    let method = '';
    for (let r = 0; r <= reps; r++) {
      for (let j = 0; j < kinds.length; j++) {
        const kind = kinds[(j + r) % kinds.length];
        const t = performance.now();
        if (kind === 'plain') {
          await engine.decodeLatents(scaledLatentBox(info, z, C, h, w, { x: 0, y: 0, width: w, height: h }), h, w);
        } else {
          await cache.createNode('child', 'parent');
          const out = await decodeEditRegion(engine, decoder, rec.context, parentRgb, parent, z, mask, { decode: kind }, { cache, parentId: 'parent', childId: 'child' });
          await cache.deleteNode('child');
          if (kind === 'sparse') {
            macFraction = out.macFraction;
            method = out.method;
          }
        }
        if (r > 0) ms[kind].push(performance.now() - t);
      }
    }
    const row = { area, macFraction, sparseMethod: method, sparseMs: median(ms.sparse), fullMs: median(ms.full), plainMs: median(ms.plain), runs: ms };
    rows.push(row);
    console.log(
      `disc ${(100 * area).toFixed(0)} % (${method}, ${macFraction === null ? '-' : (100 * macFraction).toFixed(0)} % of the MACs): sparse ${row.sparseMs.toFixed(0)} ms, full ${row.fullMs.toFixed(0)} ms, plain ${row.plainMs.toFixed(0)} ms; sparse / full ${(row.sparseMs / row.fullMs).toFixed(2)}`,
    );
  }
  const result = { bench: 'sparse/decodeChoice', model: path.basename(dir), side, reps, threads: 2, date: new Date().toISOString(), loadavg: os.loadavg(), rows };
  if (outFile) fs.writeFileSync(outFile, JSON.stringify(result, null, 2) + '\n');
  await decoder.release();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
