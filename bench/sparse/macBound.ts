// The MAC ceiling of a sparse step (no timing, no weights): for the edit bench's disc masks, the active
// fraction per UNet level after the pyramid (mask/pyramid.ts, the edit's default dilation) and the ratio
// dense MACs / sparse MACs (sparse/unetMacs.ts). A sparse step cannot beat this ratio, so it says whether
// "a sparse step ≥ 0.7 / area of a dense step" is reachable at a given latent size before anything is run.
//
//   npx tsx bench/sparse/macBound.ts [unetConfig.json] [latentSides] [areas]
//   e.g. npx tsx bench/sparse/macBound.ts bench/.cache/sd15-sdvae/unet/config.json 32,64 0.02,0.05,0.1,0.25,0.5

import * as fs from 'fs';
import { buildMaskPyramid } from '../../src/engine/mask/pyramid';
import { parseUNetConfig } from '../../src/engine/model/configs';
import { defaultEditDilation } from '../../src/engine/pipeline/edit';
import { unetMacs } from '../../src/engine/sparse/unetMacs';
import { discMask } from '../edit/masks';

const [cfgArg, sidesArg, areasArg] = process.argv.slice(2);
const file = cfgArg ?? 'test/fixtures/models/sd-narrow/unet/config.json';
const cfg = parseUNetConfig(JSON.parse(fs.readFileSync(file, 'utf8')), file);
const sides = (sidesArg ?? '32,64').split(',').map(Number);
const areas = (areasArg ?? '0.02,0.05,0.1,0.25,0.5').split(',').map(Number);
const levels = cfg.blockOutChannels.length;
const dilation = process.env.DILATION ? process.env.DILATION.split(",").map(Number) : defaultEditDilation(levels);

console.log(`UNet [${cfg.blockOutChannels}] (${file}); dilation per level [${dilation}] (env DILATION=a,b,c,d; default the edit's)`);
console.log('latent | area   | active per level            | MAC share per level (dense) | MAC ratio | 0.7/area');
for (const side of sides) {
  const dense = unetMacs(cfg, side, side, { batch: 2 });
  const share = dense.perLevel.map((m) => `${((100 * m) / dense.total).toFixed(0)}%`).join('/');
  for (const f of areas) {
    const pyr = buildMaskPyramid(discMask(side, side, f), { levels, dilation });
    const counts = pyr.map((l) => l.active.length);
    const sparse = unetMacs(cfg, side, side, { batch: 2, activeCounts: counts });
    const fr = pyr.map((l) => `${((100 * l.active.length) / (l.width * l.height)).toFixed(0)}%`).join('/');
    const area = pyr[0].active.length / (side * side);
    console.log(`${String(side).padStart(4)}²  | ${(100 * area).toFixed(1).padStart(5)}% | ${fr.padEnd(27)} | ${share.padEnd(27)} | ${(dense.total / sparse.total).toFixed(2).padStart(8)}× | ${(0.7 / area).toFixed(1)}×`);
  }
}
