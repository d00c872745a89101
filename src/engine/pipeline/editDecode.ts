// Step 8 of an edit: decode the affected region and composite it over the parent's image.
//
// With a RegionDecoder and a parent that stored its decoder context, the box is decoded with the
// parent's GroupNorm statistics and outside tokens (0.3/255 from the full decode on the bundled model,
// against 5/255 for a crop with its own statistics), so boxes up to CONTEXT_FULL_ABOVE of the latent
// are worth cropping. Without one, the old crop (its own statistics) up to half the latent. A full
// decode with a RegionDecoder records the child's own context; a box decode derives it from the parent's.

import type { BinaryMask } from '../mask/binaryMask';
import { DecoderContextError, type DecoderContext, type RegionDecoder } from './regionDecoder';
import { autoDecodeMode, boxImageToRgb, compositeRegion, decodeBox, planRegionDecode, scaledLatentBox, type LatentBox } from './regionDecode';
import type { DiffusionModels } from './models';
import type { NodeRecord } from '../state/nodeRecord';
import { StateDirError, type NodeStore } from '../state/nodeStore';

/** Box share of the latent above which a decode with the parent's context decodes everything instead. */
export const CONTEXT_FULL_ABOVE = 0.75;

/** How the edit's pixels were decoded: 'parent' (box with the parent's context), 'own' (full decode), 'none' (box with its own statistics). */
export type DecodeContextUse = 'parent' | 'own' | 'none';

export interface EditDecodeResult {
  rgb: Uint8Array;
  affected: BinaryMask;
  box: LatentBox;
  context: DecodeContextUse;
  /** The child's packed decoder context to store, or null. */
  childContext: Float32Array | null;
  /** Of the decode phase, the composite's ms. */
  compositeMs: number;
}

/** The parent's decoder context, or null with the reason (none stored, another size, unreadable). */
export function readParentContext(store: NodeStore, decoder: RegionDecoder, parent: NodeRecord): { context: DecoderContext | null; packed: Float32Array | null; note: string | null } {
  const [, h, w] = parent.latentShape;
  try {
    const packed = store.readDecoderContext(parent);
    if (!packed) return { context: null, packed: null, note: null };
    return { context: decoder.unpack(packed, h, w), packed, note: null };
  } catch (e) {
    if (e instanceof DecoderContextError || e instanceof StateDirError) {
      return { context: null, packed: null, note: `node ${parent.id}'s decoder context was not usable (${(e as Error).message}): decoded the box with its own statistics` };
    }
    throw e;
  }
}

export async function decodeEditRegion(
  models: DiffusionModels,
  decoder: RegionDecoder | null,
  parentContext: DecoderContext | null,
  parentRgb: Uint8Array,
  parent: NodeRecord,
  latents: Float32Array,
  mask: BinaryMask,
  request: { decode?: 'auto' | 'crop' | 'full' },
): Promise<EditDecodeResult> {
  const { info } = models;
  const [C, h, w] = parent.latentShape;
  const f = info.vaeScaleFactor;
  const mode = (request.decode ?? 'auto') === 'auto' ? autoDecodeMode(info.vaeDecoderWidth, parent.width, parent.height) : request.decode;
  const plan = planRegionDecode(mask, f, { mode, dilate: 1, fullAbove: parentContext ? CONTEXT_FULL_ABOVE : undefined });
  let compositeMs = 0;
  const composite = (boxRgb: Uint8Array) => {
    const t = performance.now();
    const rgb = compositeRegion(parentRgb, parent.width, parent.height, boxRgb, plan.box, f, plan.affected);
    compositeMs = performance.now() - t;
    return rgb;
  };
  if (decoder && plan.full) {
    const { image, context } = await decoder.decodeRecording(scaledLatentBox(info, latents, C, h, w, plan.box), h, w);
    return { rgb: composite(boxImageToRgb(image, plan.box, f)), affected: plan.affected, box: plan.box, context: 'own', childContext: decoder.pack(context), compositeMs };
  }
  if (decoder && parentContext) {
    const r = await decoder.decodeBox(scaledLatentBox(info, latents, C, h, w, plan.box), plan.box, parentContext, plan.changed);
    return { rgb: composite(boxImageToRgb(r.image, plan.box, f)), affected: plan.affected, box: plan.box, context: 'parent', childContext: decoder.pack(r.context), compositeMs };
  }
  const rgb = composite(await decodeBox(models, latents, C, h, w, plan.box));
  return { rgb, affected: plan.affected, box: plan.box, context: plan.full ? 'own' : 'none', childContext: null, compositeMs };
}
