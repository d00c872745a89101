// Scale-out workers (issue 17's bench/scale): real `fisedit serve --workers 0` and `fisedit worker`
// processes on PostgreSQL + Redis with the tiny model, side by side in one run:
//   1. throughput of a mixed generate/edit load with 1 and with 2 workers: R roots submitted at once,
//      and as each root succeeds E edits of it; jobs per second from the first submit to the last
//      success, and the 2-worker/1-worker ratio;
//   2. edit latency with cache affinity on (the default wait) and off (--affinity-wait-ms 0: every job
//      goes to the shared queue, whichever worker is free takes it), 2 workers kept busy by another user's
//      generations (two at a time, 3× the steps): edits submitted one at a time, each of the node the
//      previous edit made (its cache is on the worker that ran it); submit → SUCCEEDED, and the share that
//      ran on the worker holding the parent's cache (stats.cacheHit). Under load "on" waits for the holder,
//      "off" runs wherever a worker is free and rebuilds the parent there when that is not the holder.
// Each worker runs its engine on one thread; the machine's cores are shared with the API replica and
// this load generator, so the 2-worker ratio is bounded by the cores (2 here). Prints a table and writes
// bench/results/scale-workers.json.
//
//   npx tsx bench/scale/workers.ts [--roots 6] [--edits 3] [--steps 8] [--chain 10] [--rounds 2]
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';
import { openDatabase } from '../../src/db/client';
import { createToken } from '../../src/service/auth/tokens';
import { freshDatabase, FiseditProcess, gql, machineCpuMs, pct, treeCpuMs, REDIS_URL, ROOT, SERVE_READY, startFisedit, tempDir, TINY_MODEL } from './processes';

const { values: args } = parseArgs({ options: { roots: { type: 'string' }, edits: { type: 'string' }, steps: { type: 'string' }, chain: { type: 'string' }, rounds: { type: 'string' } } });
// Rounds alternate the settings (1, 2, 1, 2 workers; on, off, on, off), so a shift in the shared
// machine's load falls on both sides of a ratio.
const ROUNDS = Number(args.rounds ?? 2);
const ROOTS = Number(args.roots ?? 6);
const EDITS = Number(args.edits ?? 3);
const STEPS = Number(args.steps ?? 8);
const CHAIN = Number(args.chain ?? 10);
const WORKER_READY = /fisedit worker (\S+): ready/;
const COLOURS = ['green', 'blue', 'yellow', 'purple', 'orange', 'white', 'black', 'gray'];

interface Deployment {
  url: string;
  token: string;
  /** A second user's token (background load). */
  loadToken: string;
  procs: FiseditProcess[];
  stop(): Promise<void>;
}

async function deploy(workers: number, affinityWaitMs?: number): Promise<Deployment> {
  const db = await freshDatabase();
  const common = ['--model', TINY_MODEL, '--threads', '1', '--database-url', db.url, '--redis-url', REDIS_URL, '--image-store', 'database', ...(affinityWaitMs === undefined ? [] : ['--affinity-wait-ms', String(affinityWaitMs)])];
  // Every deployment gets its own Redis key prefix, so queues of an earlier one never mix in.
  const env = { FISEDIT_REDIS_PREFIX: `fisedit-bench-${path.basename(db.url)}` };
  const procs: FiseditProcess[] = [];
  const stop = async () => {
    for (const p of procs.reverse()) await p.stop();
    await db.drop();
  };
  try {
    procs.push(await startFisedit(['serve', '--workers', '0', '--port', '0', '--data', tempDir('fisedit-bench-api-'), ...common], SERVE_READY, env));
    for (let w = 0; w < workers; w++) procs.push(await startFisedit(['worker', '--worker-id', `w${w + 1}`, '--data', tempDir('fisedit-bench-worker-'), ...common], WORKER_READY, env));
    const d = await openDatabase({ url: db.url });
    const { token } = await createToken(d.db, 'bench');
    const { token: loadToken } = await createToken(d.db, 'load');
    await d.close();
    return { url: procs[0].url, token, loadToken, procs, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

const NODE = 'query($id: ID!) { node(id: $id) { id status error parent { id } stats { mode wallMs worker cacheHit fallbackReason } } }';

async function done(dep: Deployment, id: string, token = dep.token): Promise<any> {
  for (;;) {
    const { node } = await gql(dep.url, token, NODE, { id });
    if (node.status === 'SUCCEEDED') return node;
    if (node.status === 'FAILED' || node.status === 'CANCELLED') throw new Error(`node ${id} ${node.status}: ${node.error}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function generate(dep: Deployment, i: number, steps = STEPS, token = dep.token): Promise<string> {
  const { generate } = await gql(dep.url, token, 'mutation($input: GenerateInput!) { generate(input: $input) { id } }', { input: { prompt: `a red circle on the left number ${i}`, seed: i + 1, steps } });
  return generate.id;
}

/** Another user's generations, two at a time, until stop() resolves: keeps both workers busy. */
function backgroundLoad(dep: Deployment): { stop(): Promise<number> } {
  let running = true;
  let n = 0;
  const loops = [0, 1].map(async (k) => {
    while (running) {
      await done(dep, await generate(dep, 1000 + k * 1000 + n++, STEPS * 3, dep.loadToken), dep.loadToken);
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return n;
    },
  };
}

async function edit(dep: Deployment, parentId: string, prompt: string): Promise<string> {
  const { edit } = await gql(dep.url, dep.token, 'mutation($input: EditInput!) { edit(input: $input) { id } }', { input: { parentId, prompt } });
  return edit.id;
}

async function mixedLoad(workers: number): Promise<Record<string, unknown>> {
  const dep = await deploy(workers);
  try {
    await done(dep, await generate(dep, 999)); // warm: every worker's first job pays session warm-up
    const workerPids = dep.procs.slice(1).map((p) => p.proc.pid!);
    const cpu0 = workerPids.map(treeCpuMs);
    const m0 = machineCpuMs();
    const t0 = performance.now();
    const nodes: any[] = [];
    await Promise.all(
      Array.from({ length: ROOTS }, async (_, r) => {
        const root = await done(dep, await generate(dep, r));
        nodes.push(root);
        const ids = await Promise.all(Array.from({ length: EDITS }, (_, e) => edit(dep, root.id, `a ${COLOURS[e % COLOURS.length]} circle on the left number ${r}`)));
        for (const id of ids) nodes.push(await done(dep, id));
      }),
    );
    const wallS = (performance.now() - t0) / 1000;
    const m1 = machineCpuMs();
    // CPU the workers (with their engine processes) used, in cores, and how busy the whole machine was:
    // a machine near 100 % busy gives a second worker no core to run on.
    const workerCores = workerPids.map((p, k) => (treeCpuMs(p) - cpu0[k]) / 1000 / wallS);
    const machineBusy = (m1.busy - m0.busy) / (m1.total - m0.total);
    const byWorker: Record<string, number> = {};
    for (const n of nodes) byWorker[n.stats.worker ?? '?'] = (byWorker[n.stats.worker ?? '?'] ?? 0) + 1;
    const edits = nodes.filter((n) => n.parent);
    return { workers, workerCores, machineBusy, jobs: nodes.length, roots: ROOTS, edits: edits.length, wallS, jobsPerS: nodes.length / wallS, byWorker, editCacheHits: edits.filter((n) => n.stats.cacheHit === true).length };
  } finally {
    await dep.stop();
  }
}

async function editLatency(affinity: boolean): Promise<Record<string, unknown>> {
  const dep = await deploy(2, affinity ? undefined : 0);
  try {
    await done(dep, await generate(dep, 999));
    // Two roots, so each worker has recorded something; then a chain of edits, one at a time: each
    // edits the node the previous edit made (held by the worker that ran it).
    const lat: number[] = [];
    const hits: boolean[] = [];
    const fallbacks: string[] = [];
    let parent = (await done(dep, await generate(dep, 0))).id;
    await done(dep, await generate(dep, 1));
    const load = backgroundLoad(dep);
    for (let i = 0; i < CHAIN; i++) {
      const t0 = performance.now();
      const n = await done(dep, await edit(dep, parent, `a ${COLOURS[i % COLOURS.length]} ${i % 2 ? 'square' : 'circle'} on the left number 0`));
      lat.push(performance.now() - t0);
      hits.push(n.stats.cacheHit === true);
      if (n.stats.fallbackReason) fallbacks.push(n.stats.fallbackReason);
      parent = n.id;
    }
    const loadJobs = await load.stop();
    return { affinity, loadJobs, edits: CHAIN, p50Ms: pct(lat, 50), p90Ms: pct(lat, 90), meanMs: lat.reduce((a, b) => a + b, 0) / lat.length, cacheHitShare: hits.filter(Boolean).length / hits.length, latenciesMs: lat, fallbackReasons: [...new Set(fallbacks)] };
  } finally {
    await dep.stop();
  }
}

async function main(): Promise<void> {
  const throughput: Record<string, any>[] = [];
  const latency: Record<string, any>[] = [];
  for (let r = 0; r < ROUNDS; r++) for (const w of [1, 2]) throughput.push({ round: r + 1, ...(await mixedLoad(w)) });
  for (let r = 0; r < ROUNDS; r++) for (const on of [true, false]) latency.push({ round: r + 1, ...(await editLatency(on)) });
  const f = (x: unknown, d = 2) => (typeof x === 'number' ? x.toFixed(d) : String(x));
  const ratios = Array.from({ length: ROUNDS }, (_, r) => throughput[2 * r + 1].jobsPerS / throughput[2 * r].jobsPerS);
  console.log(`\nMixed load: ${ROUNDS} rounds of ${ROOTS} roots + ${EDITS} edits each, ${STEPS} steps, tiny model, one engine thread per worker, ${os.cpus().length} cores (load average ${os.loadavg()[0].toFixed(1)})\n`);
  console.log('| round | workers | jobs | wall s | jobs/s | 2 workers / 1 | jobs per worker | edits on the cache holder | cores the workers used | machine busy |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const t of throughput) console.log(`| ${t.round} | ${t.workers} | ${t.jobs} | ${f(t.wallS, 1)} | ${f(t.jobsPerS)} | ${t.workers === 2 ? f(ratios[t.round - 1]) + '×' : ''} | ${JSON.stringify(t.byWorker)} | ${t.editCacheHits} / ${t.edits} | ${t.workerCores.map((c: number) => f(c)).join(' + ')} | ${f(t.machineBusy * 100, 0)} % |`);
  console.log(`\nEdit latency, 2 workers busy with another user's generations (${STEPS * 3} steps, two at a time), ${CHAIN} chained edits one at a time (submit → SUCCEEDED)\n`);
  console.log('| round | affinity | p50 ms | p90 ms | mean ms | on the cache holder |');
  console.log('|---|---|---|---|---|---|');
  for (const l of latency) console.log(`| ${l.round} | ${l.affinity ? 'on (default wait)' : 'off (--affinity-wait-ms 0)'} | ${f(l.p50Ms, 0)} | ${f(l.p90Ms, 0)} | ${f(l.meanMs, 0)} | ${f(l.cacheHitShare * 100, 0)} % |`);
  const out = path.join(ROOT, 'bench/results/scale-workers.json');
  fs.writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), machine: { cores: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, loadAverage: os.loadavg() }, roots: ROOTS, editsPerRoot: EDITS, steps: STEPS, rounds: ROUNDS, throughput, throughputRatios: ratios, latency }, null, 2) + '\n');
  console.log(`\nwrote ${path.relative(ROOT, out)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
