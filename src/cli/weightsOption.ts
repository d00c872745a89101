// --weights fp32|int8|int4 for the commands that run the UNet: int8 and int4 store its large weight
// matrices block-quantised (engine/graph/quantizedWeights.ts), a quarter or an eighth of the bytes each
// sparse step streams.
import { WEIGHT_FORMATS, type WeightFormat } from '../engine/graph/graphBuilder';
import { usageError } from './exitCodes';

export const WEIGHTS_OPTION = { weights: { type: 'string' } } as const;

export const WEIGHTS_HELP = `      --weights W          UNet weights: fp32, int8 or int4 (block-quantised, MatMulNBits: fewer
                           bytes per step; int8 images differ slightly from fp32, int4 ones visibly,
                           see bench/README.md). Default fp32; an edit runs the weights its parent
                           was made with
`;

/** --weights, else `fallback`. */
export function parseWeights(v: string | boolean | undefined, command: string, fallback: WeightFormat = 'fp32'): WeightFormat {
  if (v === undefined) return fallback;
  if (typeof v !== 'string' || !(WEIGHT_FORMATS as readonly string[]).includes(v)) {
    throw usageError(`${command}: --weights must be one of ${WEIGHT_FORMATS.join(', ')} (got ${JSON.stringify(v)})`);
  }
  return v as WeightFormat;
}
