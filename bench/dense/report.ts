// Numbers → the printed table, bench/results/dense.json's per-config record, and the bar chart.

import sharp from 'sharp';
import { CreateTimings, VariantName } from './protocol';

export interface Spread {
  min: number;
  median: number;
  all: number[];
}

export interface VariantResult {
  stepMs: Spread;
  /** CPU time of the whole process per step (user + system, all ORT threads), ms. */
  cpuMs: Spread;
  create: CreateTimings;
  modelBytes: number;
  baselineRssMB: number;
  rssAfterCreateMB: number;
  peakRssMB: number;
}

export interface Agreement {
  maxAbsDiff: number;
  /** maxAbsDiff / max |torch output| (elementwise ratios blow up near zero). */
  maxRelDiff: number;
  outputMaxAbs: number;
  tolerance: number;
}

export interface ConfigResult {
  name: string;
  model: string;
  torchOnnx: string;
  batch: number;
  latent: [number, number];
  imageSize: number;
  warmup: number;
  rounds: number;
  agreement: Agreement;
  ours: VariantResult;
  torch: VariantResult;
  /** torch / ours: > 1 means ours is faster (or smaller). */
  ratio: { minStep: number; medianStep: number; medianCpu: number; peakRss: number; createTotal: number };
  loadavg: { before: number[]; after: number[] };
  /** When this config finished (ISO). */
  measuredAt: string;
  wallSeconds: number;
}

export function spread(xs: number[]): Spread {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { min: s[0], median, all: xs.map((x) => round(x, 2)) };
}

export function agreement(ours: Float32Array, torch: Float32Array, tolerance: number): Agreement {
  if (ours.length !== torch.length) throw new Error(`bench/dense: output lengths differ (ours ${ours.length}, torch ${torch.length})`);
  let maxAbsDiff = 0;
  let outputMaxAbs = 0;
  for (let i = 0; i < ours.length; i++) {
    const d = Math.abs(ours[i] - torch[i]);
    // NaN must fail the check, not slip past a ">" comparison.
    if (!(d <= maxAbsDiff)) maxAbsDiff = Number.isNaN(d) ? Infinity : d;
    outputMaxAbs = Math.max(outputMaxAbs, Math.abs(torch[i]));
  }
  return { maxAbsDiff, maxRelDiff: maxAbsDiff / outputMaxAbs, outputMaxAbs, tolerance };
}

export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function ms(x: number): string {
  return x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(1)} ms`;
}

export function formatTable(results: ConfigResult[]): string {
  const head = ['config', 'latent', 'ours min / med', 'torch min / med', 'ratio med (min)', 'cpu ratio', 'peak RSS ours / torch', 'create ours / torch', 'max rel diff'];
  const rows = results.map((r) => [
    r.name,
    `${r.batch}×4×${r.latent[0]}×${r.latent[1]}`,
    `${ms(r.ours.stepMs.min)} / ${ms(r.ours.stepMs.median)}`,
    `${ms(r.torch.stepMs.min)} / ${ms(r.torch.stepMs.median)}`,
    `${r.ratio.medianStep.toFixed(3)} (${r.ratio.minStep.toFixed(3)})`,
    r.ratio.medianCpu.toFixed(3),
    `${r.ours.peakRssMB.toFixed(0)} / ${r.torch.peakRssMB.toFixed(0)} MB`,
    `${ms(r.ours.create.totalMs)} / ${ms(r.torch.create.totalMs)}`,
    r.agreement.maxRelDiff.toExponential(1),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join(' │ ');
  return [line(head), widths.map((w) => '─'.repeat(w)).join('─┼─'), ...rows.map(line)].join('\n');
}

const COLORS: Record<VariantName, string> = { ours: '#2f6fb0', torch: '#c8742c' };

/** Per config: median step time of each variant relative to torch's (torch = 100 %), labelled in ms. */
export async function writeChart(results: ConfigResult[], file: string): Promise<void> {
  const rowH = 56;
  const left = 170;
  const barW = 420;
  const top = 40;
  const height = top + results.length * rowH + 40;
  const width = left + barW + 150;
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const parts: string[] = [
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="10" y="22" font-size="14" font-family="sans-serif" font-weight="bold">UNet step time, median, relative to torch.onnx.export (shorter is faster)</text>`,
  ];
  const scale = barW / Math.max(1.05, ...results.map((r) => r.ours.stepMs.median / r.torch.stepMs.median));
  // The 100 % line first, so bars and labels draw over it.
  parts.push(`<line x1="${left + scale}" y1="${top}" x2="${left + scale}" y2="${height - 30}" stroke="#999" stroke-dasharray="4 3"/>`);
  parts.push(`<text x="${left + scale}" y="${height - 14}" font-size="11" font-family="sans-serif" text-anchor="middle">torch = 100 %</text>`);
  results.forEach((r, i) => {
    const y = top + i * rowH;
    parts.push(`<text x="${left - 8}" y="${y + 27}" font-size="12" font-family="sans-serif" text-anchor="end">${esc(r.name)}</text>`);
    (['ours', 'torch'] as VariantName[]).forEach((v, j) => {
      const rel = r[v].stepMs.median / r.torch.stepMs.median;
      const by = y + 6 + j * 22;
      parts.push(`<rect x="${left}" y="${by}" width="${(rel * scale).toFixed(1)}" height="18" fill="${COLORS[v]}"/>`);
      parts.push(`<text x="${left + rel * scale + 6}" y="${by + 13}" font-size="11" font-family="sans-serif">${v} ${esc(ms(r[v].stepMs.median))}${v === 'ours' ? ` (torch/ours ${r.ratio.medianStep.toFixed(2)})` : ''}</text>`);
    });
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${parts.join('')}</svg>`;
  await sharp(Buffer.from(svg)).png().toFile(file);
}
