// The selected node: its image (named by its prompt) with the mask layers, the progress bar and preview
// while its job runs, its prompt with the words its edit changed, settings, status, mode, mask and stats.
import { h, type Child } from './dom';
import type { MaskPainter } from './maskPainter';
import type { NodeProgressView, NodeView, PromptDiffView } from './operations';

export function renderStage(stage: HTMLElement, node: NodeView | null, progress: NodeProgressView | undefined, painter: MaskPainter, showMask: boolean): void {
  if (!node) {
    stage.replaceChildren(h('p', { class: 'hint' }, 'Write a prompt and press Generate, or open a tree.'));
    return;
  }
  // Re-rendered on every progress event: keep the image element when its source is the same (no flicker).
  const img = (src: string, alt: string, cls: string) =>
    [...stage.querySelectorAll('img')].find((el) => el.getAttribute('src') === src && el.alt === alt) ?? h('img', { src, alt, class: cls });
  const layers: Child[] = [];
  if (node.image) layers.push(img(node.image.url, node.prompt, 'main-image'));
  else if (progress?.preview) layers.push(img(progress.preview, `Preview of ${node.prompt}`, 'main-image preview'));
  else layers.push(h('div', { class: 'main-image placeholder' }, node.status === 'QUEUED' ? 'Queued' : node.status.toLowerCase()));
  if (showMask && node.mask) layers.push(img(node.mask.url, 'Area the edit recomputed', 'mask-overlay'));
  if (node.image) layers.push(painter.canvas);
  painter.canvas.classList.toggle('painting', painter.enabled);
  stage.replaceChildren(h('div', { class: 'layers' }, layers));
}

export function renderProgress(box: HTMLElement, node: NodeView | null, p: NodeProgressView | undefined): void {
  if (!node || (node.status !== 'RUNNING' && node.status !== 'QUEUED')) {
    box.replaceChildren();
    return;
  }
  const total = p?.totalSteps || node.steps;
  const step = p?.step ?? 0;
  const phase = p?.phase ?? node.status;
  const eta = p?.etaMs != null ? `, about ${Math.max(1, Math.round(p.etaMs / 1000))} s left` : '';
  const text = node.status === 'QUEUED' ? `Queued${node.queuePosition ? ` (${node.queuePosition} ahead)` : ''}` : `${phase.toLowerCase()}: step ${step} of ${total}${eta}`;
  box.replaceChildren(
    h('div', { role: 'progressbar', 'aria-label': 'Job progress', 'aria-valuemin': 0, 'aria-valuemax': total, 'aria-valuenow': step, 'aria-valuetext': text, class: 'bar' },
      h('div', { class: 'fill', style: `width: ${total ? (100 * step) / total : 0}%` })),
    h('p', { class: 'hint' }, text),
  );
}

/** The prompt with the words this edit changed marked (inserted/replaced) or struck (deleted). */
export function promptWithChanges(prompt: string, diff: PromptDiffView[] | null): Child[] {
  if (!diff || diff.length === 0) return [prompt];
  const out: Child[] = [];
  for (const seg of diff) {
    if (out.length > 0) out.push(' ');
    if (seg.kind === 'EQUAL') out.push(seg.after);
    else if (seg.kind === 'DELETE') out.push(h('del', { title: 'removed' }, seg.before));
    else out.push(h('mark', { title: seg.kind === 'REPLACE' ? `was: ${seg.before}` : 'added' }, seg.after));
  }
  return out;
}

const pct = (f: number | null | undefined) => (f == null ? '–' : `${(100 * f).toFixed(1)} %`);
const ms = (v: number | null | undefined) => (v == null ? '–' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`);

export function renderDetails(box: HTMLElement, node: NodeView | null): void {
  if (!node) {
    box.replaceChildren();
    return;
  }
  const row = (name: string, ...value: Child[]) => [h('dt', {}, name), h('dd', {}, ...value)];
  const s = node.stats;
  box.replaceChildren(
    h('p', { class: 'node-prompt', 'aria-label': 'Prompt of the selected node' }, ...promptWithChanges(node.prompt, node.promptDiff)),
    h('dl', { class: 'facts' },
      row('Status', node.status, node.error ? h('span', { class: 'error' }, ` — ${node.error}`) : null),
      row('Mode', s?.mode ?? '–', s?.fallbackReason ? h('span', { class: 'hint' }, ` (${s.fallbackReason})`) : null),
      row('Settings', `seed ${node.seed}, ${node.steps} steps, guidance ${node.guidance}, ${node.scheduler}, ${node.width}×${node.height}${node.depth > 0 ? `, strategy ${node.strategy}` : ''}`),
      row('Mask', node.mask ? `${pct(node.mask.fraction)} recomputed` : node.depth === 0 ? 'none (root)' : 'none (whole image)'),
      row('Stats', s ? `${ms(s.wallMs)}; dense ${ms(s.denseEstimateMs)}; ${s.speedup == null ? '–' : `${s.speedup.toFixed(2)}× faster`}; ${pct(s.maskedFraction)} of latents` : '–'),
      ...(s?.worker ? row('Worker', s.worker, s.cacheHit === null ? '' : s.cacheHit ? ' (held the parent’s cache)' : ' (rebuilt the parent)') : []),
      row('By', node.createdBy.name),
    ),
  );
}
