// Map the names and shapes found in a file onto the names the graph builders use, and check them
// against what an architecture expects (expectedTensors.ts).

import { ExpectedTensors } from './expectedTensors';

export interface NamedShape {
  name: string;
  shape: number[];
}

/** Returns the canonical name and shape. Never changes the bytes. */
export type WeightRenamer = (name: string, shape: number[]) => NamedShape;

const OLD_VAE_ATTN = /^((?:encoder|decoder)\.mid_block\.attentions\.\d+)\.(query|key|value|proj_attn)\.(weight|bias)$/;
const VAE_ATTN_WEIGHT = /^(?:encoder|decoder)\.mid_block\.attentions\.\d+\.(?:to_q|to_k|to_v|to_out\.0)\.weight$/;
const NEW_NAME: Record<string, string> = { query: 'to_q', key: 'to_k', value: 'to_v', proj_attn: 'to_out.0' };

/**
 * VAE: 0.6.0-era exports name the mid-block attention query/key/value/proj_attn (diffusers renames them at
 * load time, _convert_deprecated_attention_blocks); LDM-converted ones store them as 1×1 convs
 * [C, C, 1, 1]. Both become Linear-shaped to_q/to_k/to_v/to_out.0 [C, C] — same bytes, row-major.
 */
export const renameVaeWeight: WeightRenamer = (name, shape) => {
  const old = OLD_VAE_ATTN.exec(name);
  const canonical = old ? `${old[1]}.${NEW_NAME[old[2]]}.${old[3]}` : name;
  if (VAE_ATTN_WEIGHT.test(canonical) && shape.length === 4 && shape[2] === 1 && shape[3] === 1) {
    return { name: canonical, shape: [shape[0], shape[1]] };
  }
  return { name: canonical, shape };
};

export const keepWeightName: WeightRenamer = (name, shape) => ({ name, shape });

export interface WeightCheck {
  missing: string[];
  unexpected: string[];
  /** "name: expected [..], found [..]" */
  shapeMismatches: string[];
}

/** Compare what a file holds (after renaming) with what the architecture needs. */
export function checkWeights(expected: ExpectedTensors, found: NamedShape[], isAllowedExtra: (name: string) => boolean = () => false): WeightCheck {
  const foundNames = new Set(found.map((f) => f.name));
  const missing = [...expected.keys()].filter((n) => !foundNames.has(n));
  const unexpected: string[] = [];
  const shapeMismatches: string[] = [];
  for (const f of found) {
    const want = expected.get(f.name);
    if (!want) {
      if (!isAllowedExtra(f.name)) unexpected.push(f.name);
    } else if (want.length !== f.shape.length || want.some((d, i) => d !== f.shape[i])) {
      shapeMismatches.push(`${f.name}: expected [${want.join(', ')}], found [${f.shape.join(', ')}]`);
    }
  }
  return { missing, unexpected, shapeMismatches };
}

export function weightCheckOk(c: WeightCheck): boolean {
  return c.missing.length === 0 && c.unexpected.length === 0 && c.shapeMismatches.length === 0;
}

/** Human-readable lines, every problem listed (a caller may truncate for display). */
export function weightCheckLines(c: WeightCheck): string[] {
  return [
    ...c.missing.map((n) => `missing tensor ${n}`),
    ...c.unexpected.map((n) => `unexpected tensor ${n}`),
    ...c.shapeMismatches.map((s) => `wrong shape ${s}`),
  ];
}
