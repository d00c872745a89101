// The prompt tree as an ARIA tree: one treeitem per node, named by its prompt, children in a group
// under their parent (so branches show as indented siblings). Arrow keys move the selection.
import { h } from './dom';
import type { NodeProgressView, NodeView } from './operations';

export interface TreeViewInput {
  nodes: Map<string, NodeView>;
  selectedId: string | null;
  progress: Map<string, NodeProgressView>;
  onSelect(id: string): void;
}

export function childrenOf(nodes: Map<string, NodeView>): Map<string | null, NodeView[]> {
  const kids = new Map<string | null, NodeView[]>();
  for (const n of nodes.values()) {
    const key = n.parent?.id ?? null;
    if (!kids.has(key)) kids.set(key, []);
    kids.get(key)!.push(n);
  }
  for (const list of kids.values()) list.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  return kids;
}

function statusText(n: NodeView, p: NodeProgressView | undefined): string {
  if (n.status === 'RUNNING' && p && p.totalSteps > 0) return `${Math.round((100 * p.step) / p.totalSteps)} %`;
  return n.status.toLowerCase();
}

export function renderTree(root: HTMLElement, input: TreeViewInput): void {
  const kids = childrenOf(input.nodes);
  const item = (n: NodeView, level: number): HTMLElement => {
    const children = kids.get(n.id) ?? [];
    const selected = n.id === input.selectedId;
    return h(
      'li',
      {
        role: 'treeitem',
        'aria-label': n.prompt,
        'aria-level': level,
        'aria-selected': String(selected),
        'aria-expanded': children.length > 0 ? 'true' : null,
        tabindex: selected ? 0 : -1,
        'data-node-id': n.id,
        onclick: (e: Event) => {
          e.stopPropagation();
          input.onSelect(n.id);
        },
      },
      h(
        'div',
        { class: `row status-${n.status.toLowerCase()}` },
        n.image ? h('img', { src: n.image.thumbnailUrl, alt: '', class: 'thumb' }) : h('span', { class: 'thumb empty' }),
        h('span', { class: 'prompt-text' }, n.prompt),
        h('span', { class: 'badge', 'aria-hidden': 'true' }, statusText(n, input.progress.get(n.id))),
      ),
      children.length > 0 ? h('ul', { role: 'group' }, children.map((c) => item(c, level + 1))) : null,
    );
  };
  root.replaceChildren(...(kids.get(null) ?? []).map((n) => item(n, 1)));
  if (!root.dataset.keys) {
    root.dataset.keys = 'on';
    root.addEventListener('keydown', (e) => {
      const items = [...root.querySelectorAll<HTMLElement>('[role=treeitem]')];
      const at = items.findIndex((el) => el.getAttribute('aria-selected') === 'true');
      const to = e.key === 'ArrowDown' ? at + 1 : e.key === 'ArrowUp' ? at - 1 : -2;
      if (to === -2 || to < 0 || to >= items.length) return;
      e.preventDefault();
      input.onSelect(items[to].dataset.nodeId!);
      root.querySelector<HTMLElement>('[aria-selected=true]')?.focus();
    });
  }
}
