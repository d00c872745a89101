#!/usr/bin/env node
// Generates both Prisma clients (src/generated/sqlite, src/generated/postgres); run by `npm install` /
// `npm ci` (postinstall) so a clean clone type-checks and runs. `prisma generate` needs no database and no
// engine, but the Prisma 7 CLI insists that PRISMA_SCHEMA_ENGINE_BINARY, when it cannot download the
// schema engine (offline), points at an existing file; any file will do for `generate`. A real engine
// path given by the caller is kept.
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const env = { ...process.env };
if (!env.PRISMA_SCHEMA_ENGINE_BINARY || !fs.existsSync(env.PRISMA_SCHEMA_ENGINE_BINARY)) {
  env.PRISMA_SCHEMA_ENGINE_BINARY = process.execPath;
}
env.PRISMA_HIDE_UPDATE_MESSAGE = '1';
const cli = require.resolve('prisma/build/index.js', { paths: [root] });
for (const schema of ['prisma/schema.prisma', 'prisma/postgres/schema.prisma']) {
  execFileSync(process.execPath, [cli, 'generate', '--schema', schema], { cwd: root, env, stdio: ['ignore', 'ignore', 'inherit'] });
}
process.stdout.write('prisma/generate.js: generated src/generated/sqlite and src/generated/postgres\n');
