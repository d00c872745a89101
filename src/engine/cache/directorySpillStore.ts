// Spill pages to a directory: DIR/<node>/node.json ({"base": …}) and DIR/<node>/step-<n>.page.
// Writes go to a temporary name and are renamed into place, so a crash never leaves a half page under
// the real name (and pageCodec's checksum catches anything else). Files this store did not write are
// ignored by listNodes.

import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { checkNodeId, checkStep } from './cacheTypes';
import { CacheSpillStore, SpilledNode, SpillNodeMeta, SpillRead } from './spillStore';

const PAGE_FILE = /^step-(\d+)\.page$/;
let tmpCounter = 0;

export class DirectorySpillStore implements CacheSpillStore {
  readonly location: string;

  constructor(readonly dir: string) {
    this.location = `directory ${dir}`;
  }

  private nodeDir(where: string, node: string): string {
    checkNodeId(where, node);
    return path.join(this.dir, node);
  }

  private pageFile(where: string, node: string, step: number): string {
    checkStep(where, step);
    return path.join(this.nodeDir(where, node), `step-${step}.page`);
  }

  private async writeAtomic(file: string, bytes: Uint8Array): Promise<void> {
    await fsp.mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}-${tmpCounter++}`;
    try {
      await fsp.writeFile(tmp, bytes);
      await fsp.rename(tmp, file);
    } catch (e) {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      throw e;
    }
  }

  async writePage(node: string, step: number, bytes: Uint8Array): Promise<void> {
    await this.writeAtomic(this.pageFile('DirectorySpillStore.writePage', node, step), bytes);
  }

  async readPage(node: string, step: number): Promise<SpillRead> {
    const file = this.pageFile('DirectorySpillStore.readPage', node, step);
    try {
      const b = await fsp.readFile(file);
      return { ok: true, bytes: new Uint8Array(b.buffer, b.byteOffset, b.length) };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return { ok: false, reason: 'missing', detail: `${file} does not exist` };
      return { ok: false, reason: 'unreadable', detail: `${file}: ${(e as Error).message}` };
    }
  }

  async deletePage(node: string, step: number): Promise<void> {
    await fsp.rm(this.pageFile('DirectorySpillStore.deletePage', node, step), { force: true });
  }

  async writeNode(node: string, meta: SpillNodeMeta): Promise<void> {
    const file = path.join(this.nodeDir('DirectorySpillStore.writeNode', node), 'node.json');
    await this.writeAtomic(file, Buffer.from(JSON.stringify({ base: meta.base }) + '\n'));
  }

  async deleteNode(node: string): Promise<void> {
    await fsp.rm(this.nodeDir('DirectorySpillStore.deleteNode', node), { recursive: true, force: true });
  }

  async listNodes(): Promise<SpilledNode[]> {
    let names: string[];
    try {
      names = await fsp.readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: SpilledNode[] = [];
    for (const node of names.sort()) {
      const dir = path.join(this.dir, node);
      let files: string[];
      try {
        if (!(await fsp.stat(dir)).isDirectory()) continue;
        checkNodeId('DirectorySpillStore.listNodes', node);
        files = await fsp.readdir(dir);
      } catch {
        continue; // not a node directory
      }
      const pages: SpilledNode['pages'] = [];
      for (const f of files) {
        const m = PAGE_FILE.exec(f);
        if (m) pages.push({ step: Number(m[1]), bytes: (await fsp.stat(path.join(dir, f))).size });
      }
      pages.sort((a, b) => a.step - b.step);
      const meta = await readMeta(path.join(dir, 'node.json'));
      if (meta || pages.length > 0) out.push({ node, meta, pages });
    }
    return out;
  }
}

async function readMeta(file: string): Promise<SpillNodeMeta | null> {
  try {
    const j = JSON.parse(await fsp.readFile(file, 'utf8'));
    if (j && (j.base === null || typeof j.base === 'string')) return { base: j.base };
    return null;
  } catch {
    return null;
  }
}
