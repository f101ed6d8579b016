#!/usr/bin/env node
// This file implements ort_bench.js: the ONNX Runtime side of quantkit's
// speed benchmark (bench/run.sh).  It times InferenceSession.run on one batch
// the way `quantkit bench` times exec_run, and prints the same JSON line, so
// the two can be compared number for number.
//
//   node tools/ort_bench.js MODEL.onnx --data X.npy --batch N [--threads T]
//                           [--iters K] [--warmup W] [--opt LEVEL]
//
// The batch is the first N samples of X.npy (bound to the model's first
// input; N may not exceed the samples in the file).  The session uses the
// CPU provider, intraOpNumThreads = T (default 1), interOpNumThreads = 1,
// sequential execution and graphOptimizationLevel LEVEL (default 'all', what
// users deploy with).  W warm-up runs (default 2, like quantkit bench), then
// K timed runs (default 20); the median is reported:
//
//   {"images_per_s":..., "median_s":..., "batch":N, "threads":T, "iters":K,
//    "max_rss_kb":..., "base_rss_kb":...}
//
// max_rss_kb is the process's peak resident set (process.resourceUsage()),
// which includes node itself; base_rss_kb is the peak before ONNX Runtime was
// loaded (node's own share), so max_rss_kb - base_rss_kb approximates ORT's.
// Exit status: 0 ok, 1 failure (one line on stderr), 2 usage error.
'use strict';

const path = require('path');

const baseRss = process.resourceUsage().maxRSS;
const { readNpy, NpyError } = require('./npy.js');

const USAGE = 'usage: node ort_bench.js MODEL.onnx --data X.npy --batch N [--threads T] ' +
  '[--iters K] [--warmup W] [--opt disabled|basic|extended|all]';
const LEVELS = ['disabled', 'basic', 'extended', 'all'];

function usage(msg) {
  process.stderr.write(`ort_bench.js: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { threads: 1, iters: 20, warmup: 2, opt: 'all', batch: 0, data: null, model: null };
  const posInt = (a, v, min) => {
    if (v === undefined || !/^\d+$/.test(v) || Number(v) < min) usage(`${a} needs an integer >= ${min}`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--data') { if (argv[i + 1] === undefined) usage('--data needs a file'); o.data = argv[++i]; }
    else if (a === '--batch') o.batch = posInt(a, argv[++i], 1);
    else if (a === '--threads') o.threads = posInt(a, argv[++i], 1);
    else if (a === '--iters') o.iters = posInt(a, argv[++i], 1);
    else if (a === '--warmup') o.warmup = posInt(a, argv[++i], 0);
    else if (a === '--opt') {
      o.opt = argv[++i];
      if (!LEVELS.includes(o.opt)) usage(`--opt must be one of ${LEVELS.join(', ')}`);
    } else if (a === '-h' || a === '--help') { process.stdout.write(USAGE + '\n'); process.exit(0); }
    else if (a.startsWith('--')) usage(`unknown option ${a}`);
    else if (o.model === null) o.model = a;
    else usage(`unexpected argument ${a}`);
  }
  if (!o.model || !o.data || !o.batch) usage('MODEL.onnx, --data and --batch are required');
  return o;
}

function loadOrt() {
  try {
    return require('onnxruntime-node');
  } catch (e) {
    throw new Error(`cannot load onnxruntime-node (${e.code || e.message}); install it with ` +
      `'cd ${path.dirname(__filename)} && npm install --ignore-scripts'`);
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const x = readNpy(o.data);
  if (x.type !== 'float32') throw new Error(`${o.data}: expected float32 data, got ${x.type}`);
  const samples = x.dims.length ? x.dims[0] : 1;
  if (samples < o.batch)
    throw new Error(`--batch ${o.batch}: ${o.data} holds only ${samples} samples`);
  const per = samples ? x.data.length / samples : 0;
  const dims = [o.batch, ...x.dims.slice(1)];
  const data = x.data.slice(0, per * o.batch);

  const ort = loadOrt();
  const so = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: o.opt,
    intraOpNumThreads: o.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
  };
  let session;
  try {
    session = await ort.InferenceSession.create(o.model, so);
  } catch (e) {
    throw new Error(`${o.model}: ONNX Runtime cannot load the model: ${e.message}`);
  }
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, dims) };
  const times = [];
  for (let k = -o.warmup; k < o.iters; k++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    const t1 = process.hrtime.bigint();
    if (k >= 0) times.push(Number(t1 - t0) * 1e-9);
  }
  times.sort((a, b) => a - b);
  const n = times.length;
  const median = n % 2 ? times[(n - 1) / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
  const rss = process.resourceUsage().maxRSS;
  process.stdout.write(JSON.stringify({
    images_per_s: Number((o.batch / median).toFixed(3)), median_s: Number(median.toFixed(6)),
    batch: o.batch, threads: o.threads, iters: o.iters, max_rss_kb: rss, base_rss_kb: baseRss,
  }) + '\n');
  if (session.release) await session.release();
}

main().catch((e) => {
  const msg = e instanceof NpyError ? e.message : String(e.message || e).split('\n')[0];
  process.stderr.write(`ort_bench.js: ${msg}\n`);
  process.exit(1);
});
