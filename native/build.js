#!/usr/bin/env node
// Builds native/build/Release/fisedit_native.node with node-gyp; run by `npm ci` / `npm install`
// (root package.json postinstall, after prisma generate). It NEVER fails the install: without a C++
// toolchain, Python or Node headers the engine runs its TypeScript paths (src/engine/native/index.ts
// returns null), so a failed build is one warning line and exit code 0.
//
// Offline: node-gyp is npm's own copy (npm sets npm_config_node_gyp for lifecycle scripts); headers come
// from npm's `nodedir` config or, when unset, from this Node's own prefix (include/node/node_api.h) so
// node-gyp never tries to download them. FISEDIT_SKIP_NATIVE=1 skips the build.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const here = __dirname;
const warn = (why) => {
  console.warn(`fisedit: native addon not built (${why}); the engine uses its TypeScript paths.`);
  process.exit(0);
};

function nodeGypScript() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  try {
    candidates.push(require.resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    /* not a local dependency */
  }
  return candidates.find((c) => c && fs.existsSync(c));
}

function main() {
  if (process.env.FISEDIT_SKIP_NATIVE === '1') warn('FISEDIT_SKIP_NATIVE=1');
  const gyp = nodeGypScript();
  if (!gyp) warn('node-gyp not found');
  const args = [gyp, 'rebuild', '--directory', here];
  if (!process.env.npm_config_nodedir) {
    const prefix = path.resolve(path.dirname(process.execPath), '..');
    if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
  }
  const t0 = Date.now();
  const r = spawnSync(process.execPath, args, { cwd: here, encoding: 'utf8', env: process.env });
  const out = path.join(here, 'build', 'Release', 'fisedit_native.node');
  if (r.status !== 0 || !fs.existsSync(out)) {
    const tail = `${r.stderr || ''}${r.error ? r.error.message : ''}`.trim().split('\n').filter((l) => /error/i.test(l)).slice(-1)[0];
    warn(`node-gyp exited ${r.status}${tail ? `: ${tail.slice(0, 200)}` : ''}`);
  }
  console.log(`fisedit: native addon built in ${((Date.now() - t0) / 1000).toFixed(1)} s (${path.relative(process.cwd(), out)})`);
}

main();
