// --weights fp32|int8 for the commands that run the UNet: int8 stores its large weight matrices as
// block-quantised int8 (engine/graph/quantizedWeights.ts), a quarter of the bytes each step streams.
import { WEIGHT_FORMATS, type WeightFormat } from '../engine/graph/graphBuilder';
import { usageError } from './exitCodes';

export const WEIGHTS_OPTION = { weights: { type: 'string' } } as const;

export const WEIGHTS_HELP = `      --weights W          UNet weights: fp32 or int8 (block-quantised, MatMulNBits: fewer bytes per
                           step; images differ slightly from fp32, see bench/README.md). Default fp32;
                           an edit runs the weights its parent was made with
`;

/** --weights, else `fallback`. */
export function parseWeights(v: string | boolean | undefined, command: string, fallback: WeightFormat = 'fp32'): WeightFormat {
  if (v === undefined) return fallback;
  if (typeof v !== 'string' || !(WEIGHT_FORMATS as readonly string[]).includes(v)) {
    throw usageError(`${command}: --weights must be one of ${WEIGHT_FORMATS.join(', ')} (got ${JSON.stringify(v)})`);
  }
  return v as WeightFormat;
}
