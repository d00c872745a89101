#!/usr/bin/env node
// Runs the TypeScript CLI through tsx so `npm ci` needs no build step.
require('tsx/cjs');
require('../src/cli/main.ts');
