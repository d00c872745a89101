// The attention strategy's mask: where the changed words look during the first k steps.
// The child's maps come from the capture steps (dense, new prompt, recorded); the parent's maps for its
// removed words come from its activation cache at the same steps. Per resolution and side the maps are
// summed over the layers and the k steps (one layer's map is noisy: taking the max over layers instead made
// 60 % masks on the bundled model), then mask/attentionMask.ts combines the sources (max after min–max:
// the union of where the old and the new words live) and thresholds.

import type { BinaryMask } from '../mask/binaryMask';
import { buildAttentionMask, type AttentionSource } from '../mask/attentionMask';
import { attentionSource } from '../sparse/attentionMaps';
import type { CacheEntrySpec } from '../sparse/cacheManifest';
import type { RecordedCacheEntry } from '../sparse/sparseUNetRunner';

/** Default k / T for the attention strategy: maps settle within the first steps, where the layout forms. */
export const ATTENTION_CAPTURE_FRACTION = 0.1;

export class AttentionMapAccumulator {
  private readonly specs: CacheEntrySpec[];
  private readonly child = new Map<string, AttentionSource>();
  private readonly parent = new Map<string, AttentionSource>();
  /** Steps whose parent maps were not in the cache. */
  parentMissing = 0;

  /**
   * @param childChanged / parentChanged token positions in the 77-long sequences (BOS = 0) of the words
   *   the edit added or replaced (child) and removed or replaced (parent).
   */
  constructor(
    manifest: readonly CacheEntrySpec[],
    private readonly latentHeight: number,
    private readonly latentWidth: number,
    private readonly childChanged: readonly number[],
    private readonly parentChanged: readonly number[],
  ) {
    this.specs = manifest.filter((s) => s.kind === 'crossAttnProbs');
  }

  /** True when the UNet records attention maps at all. */
  get available(): boolean {
    return this.specs.length > 0;
  }

  addChildStep(entries: Map<string, RecordedCacheEntry>): void {
    for (const spec of this.specs) {
      const e = entries.get(spec.name);
      if (e) this.add(this.child, spec, e, this.childChanged);
    }
  }

  /** `read` gives the parent's full entry for a name, or null when its cache lacks it. */
  async addParentStep(read: (name: string) => Promise<RecordedCacheEntry | null>): Promise<void> {
    if (this.parentChanged.length === 0) return;
    let missing = false;
    for (const spec of this.specs) {
      const e = await read(spec.name);
      if (e) this.add(this.parent, spec, e, this.parentChanged);
      else missing = true;
    }
    if (missing) this.parentMissing++;
  }

  private add(into: Map<string, AttentionSource>, spec: CacheEntrySpec, e: RecordedCacheEntry, changed: readonly number[]): void {
    const L = e.shape[2];
    const src = attentionSource(spec, e, this.latentHeight, this.latentWidth, changed.filter((t) => t < L));
    const key = `level ${spec.level}`;
    const acc = into.get(key);
    if (!acc) into.set(key, src);
    else for (let i = 0; i < acc.probs.length; i++) acc.probs[i] += src.probs[i];
  }

  sources(): AttentionSource[] {
    return [...this.child.values(), ...this.parent.values()];
  }

  /** The mask at latent resolution; empty when no changed word has a map. */
  mask(): { mask: BinaryMask; threshold: number } {
    const s = this.sources();
    if (s.length === 0) return { mask: { width: this.latentWidth, height: this.latentHeight, data: new Uint8Array(this.latentWidth * this.latentHeight) }, threshold: 255 };
    return buildAttentionMask(s, { outWidth: this.latentWidth, outHeight: this.latentHeight });
  }
}
