// The --state directory: a prompt tree on disk, one folder per node, shared by `fisedit generate
// --state DIR` and `fisedit edit --state DIR` across processes.
//
//   DIR/store.json                {"format": "fisedit-state", "version": 1}: marks the folder as ours
//   DIR/nodes/<id>/node.json      NodeRecord (nodeRecord.ts)
//   DIR/nodes/<id>/image.png      the node's image (PNG text metadata: prompt, seed, node, parent, …)
//   DIR/nodes/<id>/latents.npy    float32 [T+1, C, h, w]: entry i is the input of denoising step i,
//                                 entry T the final latents. An edit copies its parent's inactive pixels
//                                 from here, so they stay bit-identical.
//   DIR/nodes/<id>/noise.npy      float32 [1, C, h, w] unit noise, only when the node has no seed
//   DIR/nodes/<id>/mask.png       an edit's latent mask, scaled to the image (white = recomputed)
//   DIR/nodes/<id>/decoder.npy    float32 [2, L]: the VAE decoder's whole-image context of the image
//                                 (regionDecoder.ts packs it), when a region decoder was loaded
//   DIR/cache/                    the activation cache (DirectorySpillStore: DIR/cache/<id>/step-N.page)
//
// A node exists once its folder is renamed into DIR/nodes/<id>: commit() writes everything into a
// dot-named temporary folder first, so a crash or a failed edit never leaves a half node, and nothing a
// reader sees is ever rewritten. Readers refuse a folder that is not a state directory, or a record they
// cannot parse, with a StateDirError naming the file; nothing is ever deleted on the way.

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { ActivationCache } from '../cache/activationCache';
import { DirectorySpillStore } from '../cache/directorySpillStore';
import { encodePng } from '../image/png';
import { encodeNpy, parseNpy } from '../io/npy';
import { BinaryMask, upsampleNearest } from '../mask/binaryMask';
import { NODE_RECORD_FORMAT, NodeRecord, NodeRecordError, parseNodeRecord } from './nodeRecord';

const MARKER = { format: 'fisedit-state', version: 1 };
const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export type StateDirProblem = 'missing' | 'not-a-directory' | 'not-a-state-dir' | 'unreadable' | 'corrupt' | 'unwritable';

/** The state directory (or a file in it) cannot be used; nothing was changed. */
export class StateDirError extends Error {
  constructor(readonly dir: string, readonly problem: StateDirProblem, readonly reason: string) {
    super(`state directory ${dir}: ${reason}`);
    this.name = 'StateDirError';
  }
}

/** A node cannot be deleted while a node built on it stays. Nothing was deleted. */
export class NodeInUseError extends Error {
  constructor(readonly dir: string, readonly nodeId: string, readonly childId: string) {
    super(`state directory ${dir}: node ${nodeId} has child ${childId}, which is not being deleted; delete the subtree`);
    this.name = 'NodeInUseError';
  }
}

export class UnknownNodeError extends Error {
  constructor(readonly dir: string, readonly nodeId: string, readonly known: string[]) {
    const list = known.length === 0 ? 'it holds no nodes' : `it holds ${known.length} node(s): ${known.slice(-8).join(', ')}${known.length > 8 ? ', …' : ''}`;
    super(`state directory ${dir}: no node ${JSON.stringify(nodeId)} (${list})`);
    this.name = 'UnknownNodeError';
  }
}

/** What commit() stores; the store adds id-independent bookkeeping (seq, createdAt, files). */
export interface NewNode {
  id: string;
  record: Omit<NodeRecord, 'format' | 'id' | 'seq' | 'createdAt' | 'files'>;
  /** Interleaved RGB, height × width × 3. */
  rgb: Uint8Array;
  /** PNG text metadata (node and parent ids are added). */
  pngText: Record<string, string>;
  /** float32 [T+1, C, h, w]. */
  latents: Float32Array;
  /** Unit noise [1, C, h, w] when the node has no seed. */
  noise?: Float32Array | null;
  /** Latent-resolution mask and the image pixels per latent pixel. */
  mask?: { mask: BinaryMask; factor: number } | null;
  /** The decoder context, packed [2, L] (RegionDecoder.pack). */
  decoderContext?: Float32Array | null;
}

export interface StoredImage {
  rgb: Uint8Array;
  width: number;
  height: number;
}

function errnoText(e: unknown): string {
  return (e as Error).message;
}

export class NodeStore {
  readonly nodesDir: string;
  readonly cacheDir: string;

  private constructor(readonly dir: string) {
    this.nodesDir = path.join(dir, 'nodes');
    this.cacheDir = path.join(dir, 'cache');
  }

  /**
   * Open DIR. With create, a missing or empty folder becomes a new state directory; a non-empty
   * folder without store.json is refused either way (it is somebody else's).
   */
  static async open(dirArg: string, opts: { create?: boolean } = {}): Promise<NodeStore> {
    const dir = path.resolve(dirArg);
    let st: fs.Stats | null = null;
    try {
      st = fs.statSync(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new StateDirError(dir, 'unreadable', `cannot stat: ${errnoText(e)}`);
    }
    if (st && !st.isDirectory()) throw new StateDirError(dir, 'not-a-directory', 'is not a directory');
    const markerFile = path.join(dir, 'store.json');
    if (!st || (opts.create && readdirOrThrow(dir).length === 0)) {
      if (!opts.create) throw new StateDirError(dir, 'missing', 'does not exist (create it with fisedit generate --state DIR)');
      try {
        fs.mkdirSync(path.join(dir, 'nodes'), { recursive: true });
        writeFileAtomic(markerFile, `${JSON.stringify(MARKER)}\n`);
      } catch (e) {
        throw new StateDirError(dir, 'unwritable', `cannot create: ${errnoText(e)}`);
      }
      return new NodeStore(dir);
    }
    let text: string;
    try {
      text = fs.readFileSync(markerFile, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new StateDirError(dir, 'not-a-state-dir', 'is not a fisedit state directory (no store.json); refusing to use it');
      throw new StateDirError(dir, 'unreadable', `cannot read store.json: ${errnoText(e)}`);
    }
    let marker: unknown;
    try {
      marker = JSON.parse(text);
    } catch {
      marker = null;
    }
    const m = marker as { format?: unknown; version?: unknown } | null;
    if (!m || m.format !== MARKER.format) throw new StateDirError(dir, 'corrupt', `store.json is not a fisedit state marker (${JSON.stringify(text.slice(0, 60))})`);
    if (m.version !== MARKER.version) throw new StateDirError(dir, 'corrupt', `store.json has version ${JSON.stringify(m.version)}; this fisedit reads version ${MARKER.version}`);
    return new NodeStore(dir);
  }

  /** A fresh random id (10 hex digits) not used in this store. */
  newId(): string {
    for (;;) {
      const id = randomBytes(5).toString('hex');
      if (!fs.existsSync(path.join(this.nodesDir, id))) return id;
    }
  }

  nodeDir(id: string): string {
    return path.join(this.nodesDir, id);
  }

  /** Ids of committed nodes (folders holding node.json), unordered. */
  ids(): string[] {
    let names: string[];
    try {
      names = fs.existsSync(this.nodesDir) ? fs.readdirSync(this.nodesDir) : [];
    } catch (e) {
      throw new StateDirError(this.dir, 'unreadable', `cannot list nodes/: ${errnoText(e)}`);
    }
    return names.filter((n) => NODE_ID.test(n) && fs.existsSync(path.join(this.nodesDir, n, 'node.json')));
  }

  has(id: string): boolean {
    return NODE_ID.test(id) && fs.existsSync(path.join(this.nodesDir, id, 'node.json'));
  }

  /** The node's record; UnknownNodeError when absent, StateDirError when unreadable or damaged. */
  get(id: string): NodeRecord {
    if (!this.has(id)) throw new UnknownNodeError(this.dir, id, this.sortedIds());
    const file = path.join(this.nodesDir, id, 'node.json');
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new StateDirError(this.dir, 'unreadable', `cannot read ${file}: ${errnoText(e)}`);
    }
    let rec: NodeRecord;
    try {
      rec = parseNodeRecord(text, file);
    } catch (e) {
      if (e instanceof NodeRecordError) throw new StateDirError(this.dir, 'corrupt', e.message);
      throw e;
    }
    if (rec.id !== id) throw new StateDirError(this.dir, 'corrupt', `${file} records id ${rec.id}, but lives in folder ${id}`);
    return rec;
  }

  /** Every record, oldest first (by seq). Throws on the first damaged one. */
  list(): NodeRecord[] {
    // Two processes committing at once can draw the same seq: creation time, then id, break the tie.
    return this.ids().map((id) => this.get(id)).sort((a, b) => a.seq - b.seq || a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  /** The most recently created node, or null in an empty store. */
  latest(): NodeRecord | null {
    const all = this.list();
    return all.length ? all[all.length - 1] : null;
  }

  private sortedIds(): string[] {
    const recs: Array<{ id: string; seq: number }> = [];
    for (const id of this.ids()) {
      try {
        recs.push({ id, seq: this.get(id).seq });
      } catch {
        recs.push({ id, seq: Number.MAX_SAFE_INTEGER });
      }
    }
    return recs.sort((a, b) => a.seq - b.seq).map((r) => r.id);
  }

  async readImage(rec: NodeRecord): Promise<StoredImage> {
    const file = path.join(this.nodeDir(rec.id), rec.files.image);
    let raw: { data: Buffer; info: sharp.OutputInfo };
    try {
      raw = await sharp(fs.readFileSync(file)).raw().toBuffer({ resolveWithObject: true });
    } catch (e) {
      throw new StateDirError(this.dir, 'corrupt', `cannot read the image of node ${rec.id} (${file}): ${errnoText(e)}`);
    }
    const { width, height, channels } = raw.info;
    if (width !== rec.width || height !== rec.height || channels !== 3) {
      throw new StateDirError(this.dir, 'corrupt', `${file} is ${width}×${height}×${channels}, node.json says ${rec.width}×${rec.height}×3`);
    }
    return { rgb: new Uint8Array(raw.data.buffer, raw.data.byteOffset, raw.data.length), width, height };
  }

  /** float32 [T+1, C, h, w], checked against the record. */
  readLatents(rec: NodeRecord): Float32Array {
    const [C, h, w] = rec.latentShape;
    return this.readF32(rec, rec.files.latents, [rec.steps + 1, C, h, w]);
  }

  /** Unit noise [1, C, h, w] of a node without a seed; null when it has one. */
  readNoise(rec: NodeRecord): Float32Array | null {
    if (rec.files.noise === null) return null;
    return this.readF32(rec, rec.files.noise, [1, ...rec.latentShape]);
  }

  /** The packed decoder context [2, L] of the node's image, or null when none was stored. */
  readDecoderContext(rec: NodeRecord): Float32Array | null {
    if (rec.files.decoder === null) return null;
    const file = path.join(this.nodeDir(rec.id), rec.files.decoder);
    let arr;
    try {
      arr = parseNpy(fs.readFileSync(file), file);
    } catch (e) {
      throw new StateDirError(this.dir, 'corrupt', `cannot read ${file}: ${errnoText(e)}`);
    }
    if (arr.dtype !== 'float32' || arr.shape.length !== 2 || arr.shape[0] !== 2) {
      throw new StateDirError(this.dir, 'corrupt', `${file} is ${arr.dtype} [${arr.shape.join(', ')}], expected float32 [2, L]`);
    }
    return arr.data as Float32Array;
  }

  private readF32(rec: NodeRecord, name: string, shape: number[]): Float32Array {
    const file = path.join(this.nodeDir(rec.id), name);
    let arr;
    try {
      arr = parseNpy(fs.readFileSync(file), file);
    } catch (e) {
      throw new StateDirError(this.dir, 'corrupt', `cannot read ${file}: ${errnoText(e)}`);
    }
    if (arr.dtype !== 'float32' || arr.shape.length !== shape.length || arr.shape.some((d, i) => d !== shape[i])) {
      throw new StateDirError(this.dir, 'corrupt', `${file} is ${arr.dtype} [${arr.shape.join(', ')}], expected float32 [${shape.join(', ')}]`);
    }
    return arr.data as Float32Array;
  }

  /** Write a node atomically (temporary folder, then one rename). Returns the stored record. */
  async commit(n: NewNode): Promise<NodeRecord> {
    if (!NODE_ID.test(n.id)) throw new StateDirError(this.dir, 'corrupt', `node id ${JSON.stringify(n.id)} must match ${NODE_ID}`);
    const final = this.nodeDir(n.id);
    if (fs.existsSync(final)) throw new StateDirError(this.dir, 'corrupt', `node ${n.id} exists already`);
    const { record } = n;
    const [C, h, w] = record.latentShape;
    if (n.latents.length !== (record.steps + 1) * C * h * w) {
      throw new RangeError(`NodeStore.commit: latents hold ${n.latents.length} values, expected [${record.steps + 1}, ${C}, ${h}, ${w}]`);
    }
    if (n.decoderContext && n.decoderContext.length % 2) throw new RangeError(`NodeStore.commit: the decoder context holds ${n.decoderContext.length} values, not [2, L]`);
    let seq = 1;
    for (const id of this.ids()) {
      try {
        seq = Math.max(seq, this.get(id).seq + 1);
      } catch {
        // a damaged record does not block new nodes; it is reported when read
      }
    }
    const full: NodeRecord = {
      format: NODE_RECORD_FORMAT,
      id: n.id,
      seq,
      createdAt: new Date().toISOString(),
      ...record,
      files: { image: 'image.png', latents: 'latents.npy', noise: n.noise ? 'noise.npy' : null, mask: n.mask ? 'mask.png' : null, decoder: n.decoderContext ? 'decoder.npy' : null },
    };
    parseNodeRecord(JSON.stringify(full), `${final}/node.json`); // never write what we could not read back
    const tmp = path.join(this.nodesDir, `.tmp-${n.id}-${process.pid}`);
    try {
      fs.mkdirSync(tmp, { recursive: true });
      const png = await encodePng(n.rgb, record.width, record.height, { ...n.pngText, node: n.id, parent: record.parentId ?? '' });
      fs.writeFileSync(path.join(tmp, 'image.png'), png);
      fs.writeFileSync(path.join(tmp, 'latents.npy'), encodeNpy({ dtype: 'float32', shape: [record.steps + 1, C, h, w], data: n.latents }));
      if (n.noise) fs.writeFileSync(path.join(tmp, 'noise.npy'), encodeNpy({ dtype: 'float32', shape: [1, C, h, w], data: n.noise }));
      if (n.decoderContext) {
        fs.writeFileSync(path.join(tmp, 'decoder.npy'), encodeNpy({ dtype: 'float32', shape: [2, n.decoderContext.length / 2], data: n.decoderContext }));
      }
      if (n.mask) {
        const big = upsampleNearest(n.mask.mask, n.mask.factor);
        const grey = await sharp(Buffer.from(big.data.map((v) => v * 255)), { raw: { width: big.width, height: big.height, channels: 1 } }).png().toBuffer();
        fs.writeFileSync(path.join(tmp, 'mask.png'), grey);
      }
      fs.writeFileSync(path.join(tmp, 'node.json'), `${JSON.stringify(full, null, 1)}\n`);
      fs.renameSync(tmp, final);
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw new StateDirError(this.dir, 'unwritable', `cannot write node ${n.id}: ${errnoText(e)}`);
    }
    return full;
  }

  /**
   * Deletes the given nodes' folders (unknown ids are skipped) and returns the ids deleted. Refuses, with
   * nothing deleted, when a node that stays is the child of one that goes: edits of it read its parent's
   * latents and its activations are deltas over the parent's. Each folder is first renamed out of the
   * node namespace, so a reader never sees half a node.
   */
  delete(ids: readonly string[]): string[] {
    const doomed = new Set(ids.filter((id) => this.has(id)));
    if (doomed.size === 0) return [];
    for (const id of this.ids()) {
      if (doomed.has(id)) continue;
      let parentId: string | null;
      try {
        parentId = this.get(id).parentId;
      } catch {
        continue; // a damaged record cannot be edited anyway
      }
      if (parentId !== null && doomed.has(parentId)) {
        throw new NodeInUseError(this.dir, parentId, id);
      }
    }
    const deleted: string[] = [];
    for (const id of doomed) {
      const gone = path.join(this.nodesDir, `.deleted-${id}-${process.pid}`);
      try {
        fs.renameSync(this.nodeDir(id), gone);
      } catch (e) {
        throw new StateDirError(this.dir, 'unwritable', `cannot delete node ${id}: ${errnoText(e)}`);
      }
      deleted.push(id);
      fs.rmSync(gone, { recursive: true, force: true });
    }
    return deleted;
  }

  /**
   * The activation cache kept in DIR/cache (nothing is created until something is written).
   * budgetBytes bounds what stays in memory; the rest lives in the directory.
   */
  async openCache(budgetBytes: number): Promise<ActivationCache> {
    try {
      return await ActivationCache.open({ budgetBytes, spill: new DirectorySpillStore(this.cacheDir) });
    } catch (e) {
      throw new StateDirError(this.dir, 'unreadable', `cannot open the activation cache in ${this.cacheDir}: ${errnoText(e)}`);
    }
  }
}

function readdirOrThrow(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (e) {
    throw new StateDirError(dir, 'unreadable', `cannot list: ${errnoText(e)}`);
  }
}

function writeFileAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}
