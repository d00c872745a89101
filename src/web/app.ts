// The signed-in editor: my trees, the open tree kept live by treeEvents (resumed with afterSeq after a
// dropped connection, so nothing is missed), the selected node's progress by nodeProgress, and the
// composer that generates a new tree or edits the selected node.
import { byId, h } from './dom';
import { GraphqlClient, GraphqlError } from './graphqlClient';
import { MaskPainter } from './maskPainter';
import { renderDetails, renderProgress, renderStage } from './nodePanel';
import * as ops from './operations';
import type { NodeProgressView, NodeView, TreeEventView, TreeRole, TreeSummary, TreeView } from './operations';
import { childrenOf, renderTree } from './treeView';
import { diffWords } from './wordDiff';

const LIVE = new Set(['QUEUED', 'RUNNING']);

export class EditorApp {
  private trees: TreeSummary[] = [];
  private tree: Pick<TreeView, 'id' | 'title' | 'myRole' | 'members'> | null = null;
  private nodes = new Map<string, NodeView>();
  private progress = new Map<string, NodeProgressView>();
  private selectedId: string | null = null;
  private treeSub: (() => void) | null = null;
  /** Sent again on every reconnect (graphqlClient.subscribe): afterSeq follows the last state event seen. */
  private treeVars: { treeId: string; afterSeq: number } | null = null;
  private progressSub: { nodeId: string; stop: () => void } | null = null;
  private readonly painter = new MaskPainter();
  private showMask = true;
  private pendingDelete: string | null = null;

  constructor(private readonly gql: GraphqlClient, readonly me: string) {}

  async start(): Promise<void> {
    byId('who').textContent = `Signed in as ${this.me}`;
    this.gql.onConnection((up) => (byId('connection').textContent = up ? 'Live' : 'Reconnecting…'));
    byId('refresh-trees').onclick = () => void this.loadTrees();
    byId('generate').onclick = () => void this.guard(() => this.generate());
    byId('edit').onclick = () => void this.guard(() => this.edit());
    byId('composer').onsubmit = (e) => e.preventDefault();
    byId('prompt').oninput = () => this.renderPromptChanges();
    byId<HTMLInputElement>('paint-mask').onchange = (e) => {
      this.painter.enabled = (e.target as HTMLInputElement).checked;
      this.renderNode();
    };
    byId('clear-mask').onclick = () => this.resetMask();
    await this.loadTrees();
    if (this.trees[0]) await this.openTree(this.trees[0].id);
    else this.render();
  }

  stop(): void {
    this.treeSub?.();
    this.progressSub?.stop();
    this.gql.close();
  }

  // ---- data ----

  private async loadTrees(): Promise<void> {
    const d = await this.gql.request<{ trees: { edges: { node: TreeSummary }[] } }>(ops.MY_TREES);
    this.trees = d.trees.edges.map((e) => e.node);
    this.renderTreeList();
  }

  private async openTree(id: string, selectId?: string): Promise<void> {
    this.treeSub?.();
    this.treeSub = null;
    const { tree } = await this.gql.request<{ tree: TreeView | null }>(ops.TREE, { id, first: ops.NODES_PAGE });
    if (!tree) {
      this.closeTree();
      await this.loadTrees();
      return;
    }
    // The rest of the nodes, a page at a time. Whatever changes meanwhile has seq > eventSeq and comes in
    // through the subscription below, applied on top.
    for (let page = tree.nodes; page.length === ops.NODES_PAGE; ) {
      const d = await this.gql.request<{ tree: { nodes: NodeView[] } | null }>(ops.TREE_NODES, { id, first: ops.NODES_PAGE, after: page[page.length - 1].id });
      page = d.tree?.nodes ?? [];
      tree.nodes.push(...page);
    }
    this.tree = tree;
    this.nodes = new Map(tree.nodes.map((n) => [n.id, n]));
    this.progress.clear();
    const keep = selectId ?? (this.selectedId && this.nodes.has(this.selectedId) ? this.selectedId : tree.nodes[0]?.id ?? null);
    this.select(keep, { fillPrompt: true });
    // Events committed after this read have seq > eventSeq: the subscription replays them, then goes live.
    this.treeVars = { treeId: tree.id, afterSeq: tree.eventSeq };
    this.treeSub = this.gql.subscribe<{ treeEvents: TreeEventView }>(ops.TREE_EVENTS, this.treeVars, {
      next: (d) => this.onTreeEvent(d.treeEvents),
      error: (e) => {
        // EVENTS_EXPIRED (CONFLICT): the log no longer reaches back to our seq; read the tree again.
        if (e.code === 'CONFLICT' && this.tree?.id === id) void this.openTree(id);
        else this.showError(e);
      },
    });
    this.renderTreeList();
  }

  private closeTree(): void {
    this.treeSub?.();
    this.treeSub = null;
    this.tree = null;
    this.nodes.clear();
    this.select(null);
  }

  private onTreeEvent(ev: TreeEventView): void {
    if (!this.tree || ev.treeId !== this.tree.id || !this.treeVars) return;
    if (ev.type === 'PROGRESSED') {
      if (ev.progress) this.mergeProgress(ev.progress);
      if (this.nodes.has(ev.node.id)) this.nodes.set(ev.node.id, ev.node);
    } else {
      if (ev.seq <= this.treeVars.afterSeq) return; // already applied (a replay overlapping our read)
      this.treeVars.afterSeq = ev.seq;
      if (ev.type === 'DELETED') {
        for (const id of ev.deletedNodeIds) this.nodes.delete(id);
        if (ev.node.parent === null) {
          this.closeTree();
          void this.loadTrees();
          return;
        }
        if (this.selectedId && !this.nodes.has(this.selectedId)) this.select(ev.node.parent.id, { fillPrompt: true });
      } else {
        this.nodes.set(ev.node.id, ev.node);
        if (!LIVE.has(ev.node.status)) this.progress.delete(ev.node.id);
      }
    }
    if (ev.node.id === this.selectedId) this.watchProgress();
    this.render();
  }

  private mergeProgress(p: NodeProgressView): void {
    const had = this.progress.get(p.nodeId);
    if (had && had.seq >= p.seq) return; // an older event than the one shown
    // PROGRESSED tree events are throttled and mostly carry no preview: keep the last one we had.
    this.progress.set(p.nodeId, { ...p, preview: p.preview ?? had?.preview ?? null });
  }

  /** Streams the selected node's every step (with previews) while it is queued or running. */
  private watchProgress(): void {
    const node = this.selectedId ? this.nodes.get(this.selectedId) : undefined;
    const want = node && LIVE.has(node.status) ? node.id : null;
    if (this.progressSub?.nodeId === want) return;
    this.progressSub?.stop();
    this.progressSub = null;
    if (!want) return;
    const stop = this.gql.subscribe<{ nodeProgress: NodeProgressView }>(ops.NODE_PROGRESS, { id: want }, {
      next: (d) => {
        this.mergeProgress(d.nodeProgress);
        if (d.nodeProgress.phase === 'DONE') this.progressSub = this.progressSub?.nodeId === want ? null : this.progressSub;
        if (want === this.selectedId) this.renderNode();
        this.renderTreeOnly();
      },
      error: (e) => this.showError(e),
    });
    this.progressSub = { nodeId: want, stop };
  }

  // ---- actions ----

  private settings(): Record<string, unknown> {
    const num = (id: string) => {
      const v = byId<HTMLInputElement>(id).value.trim();
      return v === '' ? undefined : Number(v);
    };
    return { seed: num('seed'), steps: num('steps'), guidance: num('guidance'), scheduler: byId<HTMLSelectElement>('scheduler').value };
  }

  private prompt(): string {
    return byId<HTMLTextAreaElement>('prompt').value.trim();
  }

  private async generate(): Promise<void> {
    const d = await this.gql.request<{ generate: NodeView & { tree: { id: string } } }>(ops.GENERATE, { input: { prompt: this.prompt(), ...this.settings() } });
    await this.loadTrees();
    await this.openTree(d.generate.tree.id, d.generate.id);
  }

  private async edit(): Promise<void> {
    if (!this.selectedId) throw new GraphqlError('select the node to edit in the tree first', 'BAD_USER_INPUT');
    const input = {
      parentId: this.selectedId,
      prompt: this.prompt(),
      strategy: byId<HTMLSelectElement>('strategy').value,
      mask: this.painter.toPng(),
    };
    const d = await this.gql.request<{ edit: NodeView }>(ops.EDIT, { input });
    // The CREATED event will bring it too; adding it now shows it at once (the event is then a no-op update).
    this.nodes.set(d.edit.id, d.edit);
    this.select(d.edit.id);
    this.render();
  }

  private async nodeAction(kind: 'cancel' | 'retry' | 'delete', id: string): Promise<void> {
    if (kind === 'delete') {
      if (this.pendingDelete !== id) {
        this.pendingDelete = id; // the first press asks; the second deletes
        this.renderActions();
        return;
      }
      this.pendingDelete = null;
      const node = this.nodes.get(id);
      await this.gql.request(ops.DELETE, { id });
      if (node?.parent === null) {
        this.closeTree();
        await this.loadTrees();
        return;
      }
      const gone = new Set<string>();
      const kids = childrenOf(this.nodes);
      const walk = (n: string) => (gone.add(n), (kids.get(n) ?? []).forEach((c) => walk(c.id)));
      walk(id);
      for (const n of gone) this.nodes.delete(n);
      this.select(node?.parent?.id ?? null, { fillPrompt: true });
    } else {
      const d = await this.gql.request<Record<string, NodeView>>(kind === 'cancel' ? ops.CANCEL : ops.RETRY, { id });
      const n = Object.values(d)[0];
      this.nodes.set(n.id, n);
      this.watchProgress();
    }
    this.render();
  }

  private async share(user: string, role: TreeRole): Promise<void> {
    if (!this.tree) return;
    const d = await this.gql.request<{ shareTree: Pick<TreeView, 'id' | 'members'> }>(ops.SHARE, { treeId: this.tree.id, user, role });
    this.tree.members = d.shareTree.members;
    this.renderMembers();
  }

  /** Runs an action, showing its error (with the server's code) instead of losing it. */
  private async guard(action: () => Promise<void>): Promise<void> {
    byId('composer-error').textContent = '';
    try {
      await action();
    } catch (e) {
      this.showError(e);
    }
  }

  private showError(e: unknown): void {
    const msg = e instanceof GraphqlError ? `${e.code}: ${e.message}` : (e as Error).message;
    byId('composer-error').textContent = msg;
  }

  // ---- selection and rendering ----

  private readonly onSelect = (id: string) => this.select(id, { fillPrompt: true });

  private select(id: string | null, opts: { fillPrompt?: boolean } = {}): void {
    const changed = id !== this.selectedId;
    this.selectedId = id;
    const node = id ? this.nodes.get(id) : undefined;
    if (changed) {
      this.pendingDelete = null;
      if (node) this.painter.reset(node.width, node.height);
      if (opts.fillPrompt) byId<HTMLTextAreaElement>('prompt').value = node?.prompt ?? '';
    }
    this.watchProgress();
    this.render();
  }

  private resetMask(): void {
    const node = this.selectedId ? this.nodes.get(this.selectedId) : undefined;
    if (node) this.painter.reset(node.width, node.height);
    this.renderNode();
  }

  private render(): void {
    byId('tree-title').textContent = this.tree ? this.tree.title : 'No tree open';
    byId('my-role').textContent = this.tree ? `Your role: ${this.tree.myRole}${this.tree.myRole === 'VIEWER' ? ' (you can watch, not edit)' : ''}` : '';
    this.renderTreeOnly();
    this.renderNode();
    this.renderMembers();
  }

  private renderTreeOnly(): void {
    renderTree(byId('tree'), { nodes: this.nodes, selectedId: this.selectedId, progress: this.progress, onSelect: this.onSelect });
  }

  private renderNode(): void {
    const node = this.selectedId ? this.nodes.get(this.selectedId) ?? null : null;
    const p = node ? this.progress.get(node.id) : undefined;
    renderStage(byId('stage'), node, p, this.painter, this.showMask);
    renderProgress(byId('progress'), node, p);
    renderDetails(byId('node-details'), node);
    this.renderActions();
    this.renderPromptChanges();
    byId<HTMLButtonElement>('edit').disabled = !node;
  }

  private renderActions(): void {
    const node = this.selectedId ? this.nodes.get(this.selectedId) : undefined;
    const box = byId('node-actions');
    if (!node) return box.replaceChildren();
    const act = (kind: 'cancel' | 'retry' | 'delete') => () => void this.guard(() => this.nodeAction(kind, node.id));
    box.replaceChildren(
      h('button', { type: 'button', onclick: act('cancel'), disabled: !LIVE.has(node.status) }, 'Cancel'),
      h('button', { type: 'button', onclick: act('retry'), disabled: node.status !== 'FAILED' && node.status !== 'CANCELLED' }, 'Retry'),
      h('button', { type: 'button', onclick: act('delete'), class: 'danger' }, this.pendingDelete === node.id ? 'Confirm delete' : 'Delete branch'),
      node.mask ? h('label', { class: 'inline' }, h('input', { type: 'checkbox', checked: this.showMask, onchange: (e: Event) => ((this.showMask = (e.target as HTMLInputElement).checked), this.renderNode()) }), ' Show recomputed area') : '',
    );
  }

  private renderPromptChanges(): void {
    const node = this.selectedId ? this.nodes.get(this.selectedId) : undefined;
    const box = byId('prompt-changes');
    const typed = this.prompt();
    if (!node || !typed || typed === node.prompt) return box.replaceChildren();
    box.replaceChildren(
      'Edit changes: ',
      ...diffWords(node.prompt, typed).flatMap((c) => [c.kind === 'same' ? c.text : h(c.kind === 'added' ? 'ins' : 'del', {}, c.text), ' ']),
    );
  }

  private renderTreeList(): void {
    byId('tree-list').replaceChildren(
      ...this.trees.map((t) =>
        h('li', {}, h('button', { type: 'button', class: 'tree-link', 'aria-current': t.id === this.tree?.id ? 'true' : null, onclick: () => void this.guard(() => this.openTree(t.id)) }, t.title, h('span', { class: 'hint' }, ` ${t.myRole.toLowerCase()}`))),
      ),
    );
  }

  private renderMembers(): void {
    const box = byId('members');
    if (!this.tree) return box.replaceChildren();
    const owner = this.tree.myRole === 'OWNER';
    const form = owner
      ? h('form', { class: 'share', onsubmit: (e: Event) => {
            e.preventDefault();
            const f = e.target as HTMLFormElement;
            const user = (f.elements.namedItem('share-user') as HTMLInputElement).value.trim();
            const role = (f.elements.namedItem('share-role') as HTMLSelectElement).value as TreeRole;
            void this.guard(() => this.share(user, role));
          } },
          h('label', {}, 'User name ', h('input', { name: 'share-user', required: true, autocomplete: 'off' })),
          h('label', {}, 'Role ', h('select', { name: 'share-role' }, h('option', {}, 'VIEWER'), h('option', {}, 'EDITOR'), h('option', {}, 'OWNER'))),
          h('button', { type: 'submit' }, 'Share'))
      : null;
    box.replaceChildren(
      h('h3', {}, 'Members'),
      h('ul', { class: 'members' }, this.tree.members.map((m) => h('li', {}, `${m.user.name} — ${m.role.toLowerCase()}`))),
      form ?? '',
    );
  }
}
