// What travels to the GPU machine and how much room is left: the device tool sends the repository's
// tracked files, untracked files git does not ignore, and the carried paths, 64 MiB in all. Pure
// accounting, used by bundle.ts and its test; sizes in bytes.

export const TRAVEL_LIMIT_BYTES = 64 * 2 ** 20;

export interface TravelReport {
  trackedBytes: number;
  untrackedBytes: number;
  bundleBytes: number;
  totalBytes: number;
  limitBytes: number;
  /** limit − total; negative when it will not travel. */
  headroomBytes: number;
  fits: boolean;
}

export function travelReport(parts: { trackedBytes: number; untrackedBytes?: number; bundleFiles: readonly number[] }, limitBytes = TRAVEL_LIMIT_BYTES): TravelReport {
  const untrackedBytes = parts.untrackedBytes ?? 0;
  const bundleBytes = parts.bundleFiles.reduce((a, b) => a + b, 0);
  const totalBytes = parts.trackedBytes + untrackedBytes + bundleBytes;
  return { trackedBytes: parts.trackedBytes, untrackedBytes, bundleBytes, totalBytes, limitBytes, headroomBytes: limitBytes - totalBytes, fits: totalBytes <= limitBytes };
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(2)} MiB`;

export function formatTravelReport(r: TravelReport): string {
  return [
    `tracked files     ${mib(r.trackedBytes)}`,
    `untracked (travel) ${mib(r.untrackedBytes)}`,
    `bundle            ${mib(r.bundleBytes)}`,
    `total             ${mib(r.totalBytes)} of ${mib(r.limitBytes)} → ${r.fits ? `${mib(r.headroomBytes)} to spare` : `${mib(-r.headroomBytes)} OVER`}`,
  ].join('\n');
}

/**
 * ICU data items the bundled node drops (bundle.ts). Node embeds the full ICU data (33 MB of its 86 MB
 * stripped binary); the engine needs none of it beyond what V8 itself reads at start-up. Kept: root and
 * English locales, every non-locale item (time zones, plural rules, collation root, normalisation).
 * Dropped: other locales' resources, charset converters (*.cnv, for TextDecoder of legacy encodings),
 * transliteration, character names, and the break-iterator tree (Intl.Segmenter and its dictionaries).
 * A locale resource is a .res whose name is a locale id (xx, xxx, xx_YY, xx_Latn_YY, de_ …).
 */
export function icuItemsToDrop(items: readonly string[]): string[] {
  const keep = new Set(['root', 'en', 'en_US', 'en_001', 'en_150', 'en_GB', 'res_index']);
  return items.filter((item) => {
    const base = item.split('/').pop()!;
    if (/^brkitr\//.test(item) || /^translit\//.test(item) || /\.cnv$/.test(base) || base === 'unames.icu' || base === 'cnvalias.icu') return true;
    const m = /^(.*)\.res$/.exec(base);
    return !!m && /^[a-z]{2,3}(_[A-Za-z0-9]*)*$/.test(m[1]) && !keep.has(m[1]);
  });
}
