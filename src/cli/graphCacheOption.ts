// --graph-cache DIR|off (env FISEDIT_GRAPH_CACHE) for the commands that load the model: where optimised
// graphs are kept between runs (engine/runtime/graphCache.ts). Default: STATE/graph-cache for a command
// with --state, else none. At SD-1.5 width a second `fisedit edit` then loads its sessions in 22 s instead
// of 40 s on 2 quiet cores, 62 s instead of 184 s on shared ones (bench/startup/run.ts).
import * as path from 'node:path';
import { GraphCache } from '../engine/runtime/graphCache';
import { usageError } from './exitCodes';

export const GRAPH_CACHE_OPTION = { 'graph-cache': { type: 'string' } } as const;

export const GRAPH_CACHE_HELP = `      --graph-cache DIR    keep the optimised onnxruntime graphs in DIR and load them from there on
                           later runs (SD 1.5: ~2 s per UNet session instead of 9-30 s); off = never.
                           Default: STATE/graph-cache with --state, else off; env FISEDIT_GRAPH_CACHE
`;

/** Counts of one command's sessions, for --json. */
export interface GraphCacheUse {
  dir: string;
  hits: number;
  writes: number;
  refused: number;
}

/**
 * The cache for --graph-cache, else FISEDIT_GRAPH_CACHE, else STATE/graph-cache; null for 'off' or when
 * none applies. Refused entries and removals are reported on stderr (each with its reason).
 */
export function graphCacheFor(
  flag: string | boolean | undefined,
  stateDir: string | undefined,
  stderr: { write(s: string): unknown },
  command: string,
  env: NodeJS.ProcessEnv = process.env,
): { cache: GraphCache; use: GraphCacheUse } | null {
  const raw = typeof flag === 'string' ? flag : env.FISEDIT_GRAPH_CACHE;
  if (raw !== undefined && raw.trim() === '') throw usageError(`${command}: ${typeof flag === 'string' ? '--graph-cache' : 'FISEDIT_GRAPH_CACHE'} must be a folder or off`);
  const dir = raw === undefined ? (stateDir === undefined ? null : path.join(stateDir, 'graph-cache')) : raw.trim() === 'off' ? null : raw.trim();
  if (dir === null) return null;
  const use: GraphCacheUse = { dir: path.resolve(dir), hits: 0, writes: 0, refused: 0 };
  const cache = new GraphCache({
    dir,
    log: (m) => {
      if (/: hit /.test(m)) use.hits++;
      else if (/: wrote /.test(m)) use.writes++;
      else {
        if (/refused|did not load/.test(m)) use.refused++;
        stderr.write(`${command}: ${m}\n`);
      }
    },
  });
  return { cache, use };
}
