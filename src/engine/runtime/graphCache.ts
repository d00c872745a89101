// The on-disk cache of optimised ONNX graphs. Creating a session parses the graph, runs ORT's
// optimisers (constant folding of every weight transpose, fusions, the NCHWc layout) and prepacks the
// weights: one SD-1.5-width UNet session on 2 cores takes 9 s quiet and 30 s or more when the cores are
// shared, where loading ORT's own optimised model back takes ~2 s (the rest is the optimisation, which
// this cache skips; prepacking still runs).
// So the first session of a graph writes ORT's optimised model (SessionOptions.optimizedModelFilePath)
// into DIR/<key>/, and later sessions of the same graph load that file with optimisation disabled.
//
// The key hashes everything the optimised graph depends on: the serialised graph, every external weight
// byte, the onnxruntime version, the device, the CPU (the 'all' level's layout is CPU-specific), the
// optimisation level and the session config entries. A new graph or new weights are a new key: nothing
// stale can be hit. Each entry holds a meta.json with the key's facts and the sha256, size and stat
// stamp of each file; a file whose stamp changed (written, truncated, replaced, copied) is hashed again,
// and an entry whose meta or files do not match (a torn write, a flipped bit, another ORT) is logged with
// its reason, removed and rebuilt. Entries are written into a temporary folder and renamed into
// place, so concurrent processes never read half an entry. Least recently used entries are removed
// above the byte budget.
//
// This file does not import onnxruntime: ortSession.ts drives it (the one file that does).

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BuiltModel } from '../graph/graphBuilder';

export interface GraphCacheOptions {
  /** Folder of the cache entries (created when missing). */
  dir: string;
  /** Byte budget of all entries; least recently used ones are removed above it (default DEFAULT_GRAPH_CACHE_BYTES). */
  maxBytes?: number;
  /** Where hits, misses and refused entries are reported (one line each); default silent. */
  log?: (message: string) => void;
}

/** Two SD-1.5 edit sets (recording + sparse UNet, text encoder, four VAE decoders: ~8.5 GB each). */
export const DEFAULT_GRAPH_CACHE_BYTES = 24 * 2 ** 30;

/** Bumped when the entry layout or what the key covers changes. */
const FORMAT = 1;
const MODEL_FILE = 'model.onnx';
const DATA_FILE = 'model.onnx.data';
const META_FILE = 'meta.json';
/** Temporary folders older than this are a crashed writer's and are removed. */
const STALE_TMP_MS = 3600_000;

/** What the optimised graph depends on besides the graph and its weights. */
export interface GraphCacheFacts {
  ortVersion: string;
  device: string;
  optimizationLevel: string;
  sessionConfig: Record<string, string>;
}

interface EntryMeta {
  format: number;
  key: string;
  facts: GraphCacheFacts & { cpu: string };
  files: Record<string, { bytes: number; sha256: string; stat?: FileStamp }>;
  createdAt: string;
}

/** The CPU the 'all' level optimised for: model name and the instruction-set flags MLAS picks kernels by. */
function cpuSignature(): string {
  let flags = '';
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const m = /^flags\s*:\s*(.*)$/m.exec(info);
    if (m) flags = m[1].split(/\s+/).filter((f) => /^(avx|fma|f16c|amx|sse4|neon|asimd|sve)/.test(f)).sort().join(',');
  } catch {
    // Not Linux: the model name and arch must do.
  }
  return `${process.arch}|${os.cpus()[0]?.model ?? 'unknown'}|${flags}`;
}

// Weight buffers are hashed once per process: the recording and sparse UNet graphs reference the same
// 3.4 GB safetensors region (2 s of sha256 each at SD width).
const HASH_CHUNK = 2 ** 30;
const bufferDigests = new WeakMap<ArrayBufferLike, Map<string, string>>();

function digestBytes(data: Uint8Array): string {
  const byRange = bufferDigests.get(data.buffer) ?? new Map<string, string>();
  const range = `${data.byteOffset}:${data.byteLength}`;
  const hit = byRange.get(range);
  if (hit) return hit;
  const h = crypto.createHash('sha256');
  // update() refuses more than 2 GiB at once (the SD-width UNet's weights are 3.4 GB).
  for (let at = 0; at < data.byteLength; at += HASH_CHUNK) h.update(data.subarray(at, Math.min(data.byteLength, at + HASH_CHUNK)));
  const digest = h.digest('hex');
  // Only large buffers are remembered (model weights, never rewritten); small ones are cheap to rehash.
  if (data.byteLength >= 16 * 2 ** 20) {
    byRange.set(range, digest);
    bufferDigests.set(data.buffer, byRange);
  }
  return digest;
}

/** The entry name of a graph: sha256 over the facts, the CPU, the serialised graph and its external data. */
export function graphCacheKey(built: BuiltModel, facts: GraphCacheFacts): string {
  const h = crypto.createHash('sha256');
  h.update(JSON.stringify({ format: FORMAT, ...facts, sessionConfig: sortedEntries(facts.sessionConfig), cpu: cpuSignature() }));
  h.update(digestBytes(built.model));
  for (const e of built.externalData ?? []) h.update(`|${e.path}|${e.data.byteLength}|${digestBytes(e.data)}`);
  return h.digest('hex').slice(0, 40);
}

function sortedEntries(r: Record<string, string>): [string, string][] {
  return Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * What the filesystem says about a file: any write, truncation, replacement or copy changes one of these
 * (ctime cannot be set by a user), so an entry whose files still carry the stamps recorded when their
 * sha256 was taken is not re-hashed on every load (3.4 GB per SD-width UNet entry, read twice otherwise).
 */
interface FileStamp {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
}

function stampOf(file: string): FileStamp {
  const st = fs.statSync(file);
  return { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino };
}

const sameStamp = (a: FileStamp | undefined, b: FileStamp) => !!a && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino;

/** sha256 of a file, read in 16 MiB chunks (the SD-width data file is 3.4 GB). */
function fileDigest(file: string): string {
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(16 * 2 ** 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(n === buf.length ? buf : buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

export type GraphCacheLookup = { hit: true; modelPath: string } | { hit: false; reason: string };

/** An entry being written: ORT writes the optimised model into tmpDir; commit() or discard() ends it. */
export interface PendingEntry {
  modelPath: string;
  /** ORT session config entries that make it write the initializers into DATA_FILE beside modelPath. */
  sessionConfig: Record<string, string>;
  commit(): void;
  discard(): void;
}

export class GraphCache {
  readonly dir: string;
  readonly maxBytes: number;
  private readonly log: (message: string) => void;

  constructor(opts: GraphCacheOptions) {
    this.dir = path.resolve(opts.dir);
    this.maxBytes = opts.maxBytes ?? DEFAULT_GRAPH_CACHE_BYTES;
    this.log = opts.log ?? (() => undefined);
  }

  report(message: string): void {
    this.log(`graph cache: ${message}`);
  }

  /**
   * The entry of `key` when it is whole: meta.json parses, names this key and these facts, and every file
   * has its recorded size and sha256. Otherwise the entry is removed and the reason returned.
   */
  lookup(key: string, facts: GraphCacheFacts): GraphCacheLookup {
    const entry = path.join(this.dir, key);
    if (!fs.existsSync(entry)) return { hit: false, reason: 'no entry' };
    const refuse = (reason: string): GraphCacheLookup => {
      this.report(`refused entry ${key}: ${reason}; rebuilding it`);
      fs.rmSync(entry, { recursive: true, force: true });
      return { hit: false, reason };
    };
    let meta: EntryMeta;
    try {
      meta = JSON.parse(fs.readFileSync(path.join(entry, META_FILE), 'utf8')) as EntryMeta;
    } catch (e) {
      return refuse(`meta.json unreadable (${(e as Error).message})`);
    }
    if (meta.format !== FORMAT || meta.key !== key) return refuse(`meta.json is for format ${meta.format} key ${meta.key}`);
    const want = { ...facts, sessionConfig: sortedEntries(facts.sessionConfig), cpu: cpuSignature() };
    const have = { ...meta.facts, sessionConfig: sortedEntries(meta.facts?.sessionConfig ?? {}) };
    if (JSON.stringify(have) !== JSON.stringify(want)) return refuse(`stale: written for ${JSON.stringify(have)}, this run is ${JSON.stringify(want)}`);
    let restamped = false;
    for (const [name, f] of Object.entries(meta.files ?? {})) {
      const file = path.join(entry, name);
      let stamp: FileStamp;
      try {
        stamp = stampOf(file);
      } catch {
        return refuse(`${name} is missing`);
      }
      if (stamp.size !== f.bytes) return refuse(`${name} has ${stamp.size} bytes, ${f.bytes} were written`);
      // Untouched since its sha256 was taken: no need to read it all again. Touched (or copied here): hash it.
      if (sameStamp(f.stat, stamp)) continue;
      if (fileDigest(file) !== f.sha256) return refuse(`${name} does not match its sha256 (corrupt)`);
      f.stat = stamp;
      restamped = true;
    }
    if (!meta.files?.[MODEL_FILE]) return refuse(`meta.json lists no ${MODEL_FILE}`);
    // Recently used entries outlive the others when the budget prunes.
    if (restamped) fs.writeFileSync(path.join(entry, META_FILE), JSON.stringify(meta, null, 1));
    const now = new Date();
    fs.utimesSync(path.join(entry, META_FILE), now, now);
    return { hit: true, modelPath: path.join(entry, MODEL_FILE) };
  }

  /** A temporary folder for ORT to write the optimised model of `key` into. */
  begin(key: string, facts: GraphCacheFacts): PendingEntry {
    fs.mkdirSync(this.dir, { recursive: true });
    const tmp = fs.mkdtempSync(path.join(this.dir, `.tmp-${key.slice(0, 8)}-`));
    const discard = () => fs.rmSync(tmp, { recursive: true, force: true });
    const commit = () => {
      const files: EntryMeta['files'] = {};
      for (const name of fs.readdirSync(tmp)) {
        const file = path.join(tmp, name);
        const sha256 = fileDigest(file);
        files[name] = { bytes: fs.statSync(file).size, sha256, stat: stampOf(file) };
      }
      if (!files[MODEL_FILE]) throw new Error(`onnxruntime wrote no ${MODEL_FILE}`);
      const meta: EntryMeta = { format: FORMAT, key, facts: { ...facts, cpu: cpuSignature() }, files, createdAt: new Date().toISOString() };
      fs.writeFileSync(path.join(tmp, META_FILE), JSON.stringify(meta, null, 1));
      const entry = path.join(this.dir, key);
      try {
        fs.renameSync(tmp, entry);
      } catch (e) {
        // Another process committed the same key first: its entry is as good as ours.
        discard();
        if (!fs.existsSync(entry)) throw e;
      }
      this.prune(key);
    };
    return {
      modelPath: path.join(tmp, MODEL_FILE),
      sessionConfig: {
        'session.optimized_model_external_initializers_file_name': DATA_FILE,
        // Inline only small constants: protobuf caps a model at 2 GiB.
        'session.optimized_model_external_initializers_min_size_in_bytes': '1024',
      },
      commit,
      discard,
    };
  }

  /** Remove least recently used entries until the cache fits its budget (never `keep`), and dead temporary folders. */
  prune(keep?: string): void {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return;
    }
    const entries: { name: string; bytes: number; used: number }[] = [];
    for (const name of names) {
      const p = path.join(this.dir, name);
      try {
        if (name.startsWith('.tmp-')) {
          if (Date.now() - fs.statSync(p).mtimeMs > STALE_TMP_MS) fs.rmSync(p, { recursive: true, force: true });
          continue;
        }
        let bytes = 0;
        for (const f of fs.readdirSync(p)) bytes += fs.statSync(path.join(p, f)).size;
        const metaFile = path.join(p, META_FILE);
        entries.push({ name, bytes, used: fs.existsSync(metaFile) ? fs.statSync(metaFile).mtimeMs : 0 });
      } catch {
        // Removed by another process meanwhile.
      }
    }
    let total = entries.reduce((s, e) => s + e.bytes, 0);
    for (const e of entries.sort((a, b) => a.used - b.used)) {
      if (total <= this.maxBytes) break;
      if (e.name === keep) continue;
      fs.rmSync(path.join(this.dir, e.name), { recursive: true, force: true });
      total -= e.bytes;
      this.report(`removed entry ${e.name} (${(e.bytes / 2 ** 20).toFixed(0)} MiB, least recently used) to stay under ${(this.maxBytes / 2 ** 30).toFixed(1)} GiB`);
    }
  }
}
