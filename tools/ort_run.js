#!/usr/bin/env node
// This file implements ort_run.js: runs an ONNX model under ONNX Runtime
// (npm onnxruntime-node, CPU) on a .npy input and writes the first output as
// .npy.  It is quantkit's reference executor in tests and benchmarks.
//
//   node tools/ort_run.js MODEL.onnx INPUT.npy OUT.npy [--opt disabled|basic|extended|all]
//                         [--threads N]
//
// INPUT.npy is bound to the model's first input (converted to the input's
// element type when the model declares a different numeric one, e.g. a
// float64 file for a float32 input).  --opt sets graphOptimizationLevel
// (default: all, ORT's default); use 'disabled' to see a QDQ model's exact
// semantics, since ORT otherwise fuses Q/DQ into integer kernels.
// --threads sets intraOpNumThreads (default: ORT's choice).
// Exit status: 0 ok, 1 failure (one line on stderr), 2 usage error.
'use strict';

const path = require('path');
const { readNpy, writeNpy, NpyError } = require('./npy.js');

const USAGE = 'usage: node ort_run.js MODEL.onnx INPUT.npy OUT.npy ' +
  '[--opt disabled|basic|extended|all] [--threads N]';
const LEVELS = ['disabled', 'basic', 'extended', 'all'];

function usage(msg) {
  process.stderr.write(`ort_run.js: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const pos = [];
  const opts = { opt: 'all', threads: 0 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--opt') {
      opts.opt = value();
      if (!LEVELS.includes(opts.opt)) usage(`--opt must be one of ${LEVELS.join(', ')}`);
    } else if (a === '--threads') {
      const v = value();
      if (!/^\d+$/.test(v) || Number(v) < 1) usage('--threads needs a positive integer');
      opts.threads = Number(v);
    } else if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE + '\n');
      process.exit(0);
    } else if (a.startsWith('--')) {
      usage(`unknown option ${a}`);
    } else {
      pos.push(a);
    }
  }
  if (pos.length !== 3) usage('expected MODEL.onnx INPUT.npy OUT.npy');
  [opts.model, opts.input, opts.output] = pos;
  return opts;
}

function loadOrt() {
  try {
    return require('onnxruntime-node');
  } catch (e) {
    // Not found next to this script: say how to install it.
    throw new Error(`cannot load onnxruntime-node (${e.code || e.message}); install it with ` +
      `'cd ${path.dirname(__filename)} && npm install --ignore-scripts'`);
  }
}

const ARRAYS = {
  float32: Float32Array, float64: Float64Array, int8: Int8Array, uint8: Uint8Array,
  int16: Int16Array, uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array,
  int64: BigInt64Array, uint64: BigUint64Array, bool: Uint8Array,
};

// Converts the array to the model's declared input type (numeric only).
function convert(t, want, file) {
  if (!want || want === t.type) return t;
  const Ctor = ARRAYS[want];
  if (!Ctor) throw new Error(`${file}: the model input wants ${want}, which ort_run.js cannot make`);
  const big = want === 'int64' || want === 'uint64';
  const out = new Ctor(t.data.length);
  for (let i = 0; i < t.data.length; i++) {
    const v = t.data[i];
    if (big) out[i] = typeof v === 'bigint' ? v : BigInt(Math.trunc(Number(v)));
    else if (want === 'bool') out[i] = v ? 1 : 0;
    else out[i] = Number(v);
  }
  return { type: want, dims: t.dims, data: out };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const ort = loadOrt();
  const so = { graphOptimizationLevel: opts.opt, executionProviders: ['cpu'] };
  if (opts.threads) {
    so.intraOpNumThreads = opts.threads;
    so.interOpNumThreads = 1;
  }
  let session;
  try {
    session = await ort.InferenceSession.create(opts.model, so);
  } catch (e) {
    throw new Error(`${opts.model}: ONNX Runtime cannot load the model: ${e.message}`);
  }
  const inName = session.inputNames[0];
  const outName = session.outputNames[0];
  const meta = (session.inputMetadata || []).find((m) => m.name === inName);
  const x = convert(readNpy(opts.input), meta && meta.isTensor ? meta.type : null, opts.input);
  const feeds = { [inName]: new ort.Tensor(x.type, x.data, x.dims) };
  let results;
  try {
    results = await session.run(feeds, [outName]);
  } catch (e) {
    throw new Error(`${opts.model}: ONNX Runtime failed on ${opts.input}: ${e.message}`);
  }
  const y = results[outName];
  writeNpy(opts.output, { type: y.type, dims: Array.from(y.dims), data: y.data });
  if (session.release) await session.release();
}

main().catch((e) => {
  const msg = e instanceof NpyError ? e.message : String(e.message || e).split('\n')[0];
  process.stderr.write(`ort_run.js: ${msg}\n`);
  process.exit(1);
});
