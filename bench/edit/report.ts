// bench/edit: the result types, the Amdahl bound, the printed table and the chart.
import sharp from 'sharp';

export interface Stat {
  median: number;
  min: number;
  n: number;
}

export function stat(xs: number[]): Stat {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0], n: s.length };
}

export interface AreaResult {
  /** Requested user-mask area (fraction of latent pixels). */
  target: number;
  /** The edit's coarse rule (EditRequest.coarseCover). */
  coarseCover: 'any' | 'half';
  /** Mean / max |edit − dense regeneration| in /255 inside the affected region (first rep). */
  insideVsDense?: { mean: number; max: number };
  /** The same against the 'any' edit of the same rep, for 'half' rows run beside one. */
  insideVsAny?: { mean: number; max: number } | null;
  /** The mask's actual area, and the dilated active fraction per UNet level. */
  maskFraction: number;
  levelFractions: number[];
  mode: string;
  denseMs: Stat;
  editMs: Stat;
  /** Dense regeneration / edit, median over reps (end to end, model loading excluded). */
  speedup: number;
  /** Per UNet step: dense step / sparse step (denoise phases divided by their step counts). */
  denseStepMs: Stat;
  sparseStepMs: Stat;
  stepSpeedup: number;
  /** Sparse step time / dense step time ÷ active fraction: 1 = perfect scaling with area. */
  stepCostPerArea: number;
  /** Decode: dense full decode vs the edit's region decode. */
  denseDecodeMs: Stat;
  editDecodeMs: Stat;
  /** Latent share of the decoded box (null for a sparse decode). */
  decodeBoxFraction: number | null;
  /** 'parent': box decoded with the parent's decoder context; 'own': full decode; 'none': box with its own statistics. */
  decodeContext: string | null;
  /** 'SPARSE' | 'BOX' | 'FULL' (absent in results written before the sparse decoder). */
  decodeMethod?: string | null;
  /** Share of the full decode's MACs a sparse decode ran. */
  decodeMacFraction?: number | null;
  editTimings: Record<string, number>;
  /** Wall time between the edit's step callbacks (first: from the call to the first step's end). */
  editStepMs?: number[];
  /** Amdahl bound for the k used (see amdahl()). */
  bound: number;
  /** Bytes the child node adds to the cache. */
  childCacheBytes: number;
  /** RGB pixels outside the affected region that differ from the parent's (must be 0). */
  outsideChangedPixels: number;
}

/**
 * FISEdit-reference §5: S(φ) = (E + N·d + V) / (E + k·d + (N−k)·d·φ + V), the speedup if a sparse step
 * cost exactly φ of a dense one (φ = level-0 active fraction after dilation) and everything else stayed
 * as in the dense run (E text encoding, d dense step, V decode + postprocess).
 */
export function amdahl(p: { E: number; d: number; V: number; N: number; k: number; phi: number }): number {
  return (p.E + p.N * p.d + p.V) / (p.E + p.k * p.d + (p.N - p.k) * p.d * p.phi + p.V);
}

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
const ms = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(0)} ms`);

export function formatTable(rows: AreaResult[], k: number): string {
  const head = ['mask', 'levels active', 'mode', 'dense regen', 'edit', 'speedup', `bound k=${k}`, 'dense step', 'sparse step', 'step ×', 'decode d/e', 'decoded', 'child cache'];
  const body = rows.map((r) => [
    pct(r.maskFraction),
    `${r.levelFractions.map((f) => (100 * f).toFixed(0)).join('/')} %${r.coarseCover === 'half' ? ' (half)' : ''}`,
    r.mode,
    ms(r.denseMs.median),
    ms(r.editMs.median),
    `${r.speedup.toFixed(2)}×`,
    `${r.bound.toFixed(2)}×`,
    ms(r.denseStepMs.median),
    ms(r.sparseStepMs.median),
    `${r.stepSpeedup.toFixed(2)}×`,
    `${ms(r.denseDecodeMs.median)}/${ms(r.editDecodeMs.median)}`,
    r.decodeMethod === 'SPARSE' ? `sparse ${pct(r.decodeMacFraction ?? 0)}` : r.decodeContext === 'own' ? 'full' : `${pct(r.decodeBoxFraction ?? 1)}${r.decodeContext === 'parent' ? ' ctx' : ''}`,
    `${(r.childCacheBytes / 2 ** 20).toFixed(2)} MiB`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

/** Speedup against mask area: measured end to end, per UNet step, and the Amdahl bound. */
export async function writeChart(rows: AreaResult[], title: string, file: string): Promise<void> {
  const W = 640;
  const H = 400;
  const left = 60;
  const right = 210;
  const top = 40;
  const bottom = 50;
  const pw = W - left - right;
  const ph = H - top - bottom;
  const xmax = Math.max(0.55, ...rows.map((r) => r.maskFraction));
  const ymax = Math.max(2, ...rows.flatMap((r) => [r.speedup, r.stepSpeedup, r.bound])) * 1.1;
  const X = (v: number) => left + (v / xmax) * pw;
  const Y = (v: number) => top + ph - (v / ymax) * ph;
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const parts: string[] = [`<rect width="${W}" height="${H}" fill="white"/>`, `<text x="10" y="22" font-size="14" font-family="sans-serif" font-weight="bold">${esc(title)}</text>`];
  for (let y = 0; y <= ymax; y += ymax > 12 ? 2 : 1) {
    parts.push(`<line x1="${left}" y1="${Y(y)}" x2="${left + pw}" y2="${Y(y)}" stroke="#ddd"/>`);
    parts.push(`<text x="${left - 6}" y="${Y(y) + 4}" font-size="11" font-family="sans-serif" text-anchor="end">${y}×</text>`);
  }
  for (const x of [0, 0.1, 0.2, 0.3, 0.4, 0.5]) parts.push(`<text x="${X(x)}" y="${top + ph + 18}" font-size="11" font-family="sans-serif" text-anchor="middle">${x * 100}%</text>`);
  parts.push(`<text x="${left + pw / 2}" y="${H - 12}" font-size="12" font-family="sans-serif" text-anchor="middle">mask area (latent pixels)</text>`);
  parts.push(`<line x1="${left}" y1="${Y(1)}" x2="${left + pw}" y2="${Y(1)}" stroke="#555" stroke-dasharray="4 3"/>`);
  const series: Array<[string, string, (r: AreaResult) => number]> = [
    ['Amdahl bound (full decode)', '#999', (r) => r.bound],
    ['UNet step', '#1f77b4', (r) => r.stepSpeedup],
    ['edit vs dense regen', '#d62728', (r) => r.speedup],
  ];
  // One line per coarse cover (bench --coarse-cover any,half): 'half' dotted, its bound not repeated.
  const covers = [...new Set(rows.map((r) => r.coarseCover ?? 'any'))];
  let legend = 0;
  covers.forEach((cover, c) => {
    const group = rows.filter((r) => (r.coarseCover ?? 'any') === cover);
    series.forEach(([name, color, f], i) => {
      if (c > 0 && i === 0) return;
      const pts = group.map((r) => `${X(r.maskFraction).toFixed(1)},${Y(f(r)).toFixed(1)}`).join(' ');
      const dash = i === 0 ? ' stroke-dasharray="6 4"' : c > 0 ? ' stroke-dasharray="2 3"' : '';
      parts.push(`<polyline points="${pts}" fill="none" stroke="${color}" stroke-width="2"${dash}/>`);
      for (const r of group) parts.push(`<circle cx="${X(r.maskFraction).toFixed(1)}" cy="${Y(f(r)).toFixed(1)}" r="3" fill="${color}"/>`);
      const ly = top + 10 + legend * 20;
      parts.push(`<line x1="${left + pw + 14}" y1="${ly}" x2="${left + pw + 34}" y2="${ly}" stroke="${color}" stroke-width="2"${dash}/>`);
      parts.push(`<text x="${left + pw + 40}" y="${ly + 4}" font-size="11" font-family="sans-serif">${esc(covers.length > 1 && i > 0 ? `${name}, ${cover}` : name)}</text>`);
      legend++;
    });
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${parts.join('')}</svg>`;
  await sharp(Buffer.from(svg)).png().toFile(file);
}
