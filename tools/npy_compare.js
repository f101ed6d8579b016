#!/usr/bin/env node
// This file implements npy_compare.js: compares a result array with a
// reference array, both .npy.
//
//   node tools/npy_compare.js RESULT.npy REFERENCE.npy [--rtol R]
//   node tools/npy_compare.js RESULT.npy REFERENCE.npy --top1 [--min-agree F] [--rtol R]
//
// Default mode prints the largest absolute difference, the largest |ref|
// and relative error = max|a-b| / max|ref|, and fails when the relative
// error exceeds --rtol (default 1e-4).  Shapes must match (a float result
// may be compared with an integer reference and vice versa).
//
// --top1 treats the first axis as rows (each row flattened) and prints the
// fraction of rows whose argmax agrees; the run fails when it is below
// --min-agree (default 1.0).  If REFERENCE is a 1-D integer array with one
// entry per row, it is taken as labels and the fraction is the accuracy.
// In --top1 mode the relative error is still printed but only checked when
// --rtol is given explicitly.
//
// Exit status: 0 pass, 1 fail (including NaN or shape mismatch), 2 usage.
'use strict';

const { readNpy, elementAsNumber, NpyError } = require('./npy.js');

const USAGE = 'usage: node npy_compare.js RESULT.npy REFERENCE.npy [--rtol R] ' +
  '[--top1 [--min-agree F]]';

function usage(msg) {
  process.stderr.write(`npy_compare.js: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const pos = [];
  const o = { rtol: 1e-4, rtolGiven: false, top1: false, minAgree: 1.0 };
  const num = (a, v) => {
    if (v === undefined) usage(`${a} needs a value`);
    const x = Number(v);
    if (!Number.isFinite(x) || x < 0) usage(`${a} needs a non-negative number, got '${v}'`);
    return x;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--rtol') { o.rtol = num(a, argv[++i]); o.rtolGiven = true; }
    else if (a === '--top1') o.top1 = true;
    else if (a === '--min-agree') o.minAgree = num(a, argv[++i]);
    else if (a === '-h' || a === '--help') { process.stdout.write(USAGE + '\n'); process.exit(0); }
    else if (a.startsWith('--')) usage(`unknown option ${a}`);
    else pos.push(a);
  }
  if (pos.length !== 2) usage('expected RESULT.npy REFERENCE.npy');
  [o.a, o.b] = pos;
  return o;
}

const fmt = (x) => (!Number.isFinite(x) ? String(x)
  : x !== 0 && Math.abs(x) < 1e-3 ? x.toExponential(3) : String(Number(x.toPrecision(6))));
const shapeStr = (d) => `[${d.join(',')}]`;

function relError(a, b) {
  let maxAbs = 0, maxRef = 0, nan = 0;
  for (let i = 0; i < a.data.length; i++) {
    const x = elementAsNumber(a, i), y = elementAsNumber(b, i);
    if (Number.isNaN(x) !== Number.isNaN(y)) { nan++; continue; }
    if (Number.isNaN(y)) continue;   // NaN in both: agree
    if (x !== y) maxAbs = Math.max(maxAbs, Math.abs(x - y));   // x !== y: inf == inf agrees
    if (Number.isFinite(y)) maxRef = Math.max(maxRef, Math.abs(y));
  }
  const rel = maxAbs === 0 ? 0 : maxRef === 0 ? Infinity : maxAbs / maxRef;
  return { maxAbs, maxRef, rel, nan };
}

function argmaxRows(t) {
  const rows = t.dims.length ? t.dims[0] : 1;
  const width = rows ? t.data.length / rows : 0;
  const out = new Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0, bv = -Infinity;
    for (let j = 0; j < width; j++) {
      const v = elementAsNumber(t, r * width + j);
      if (v > bv) { bv = v; best = j; }   // first maximum, like numpy
    }
    out[r] = best;
  }
  return out;
}

function main() {
  const o = parseArgs(process.argv.slice(2));
  const a = readNpy(o.a), b = readNpy(o.b);
  const rows = a.dims.length ? a.dims[0] : 1;
  const labels = o.top1 && b.dims.length === 1 && b.dims[0] === rows && a.dims.length > 1 &&
    !['float32', 'float64'].includes(b.type);
  let ok = true;
  const parts = [];
  if (!labels) {
    if (shapeStr(a.dims) !== shapeStr(b.dims)) {
      process.stdout.write(`FAIL shape ${shapeStr(a.dims)} != reference ${shapeStr(b.dims)}\n`);
      process.exit(1);
    }
    const e = relError(a, b);
    parts.push(`max_abs_diff=${fmt(e.maxAbs)}`, `max_abs_ref=${fmt(e.maxRef)}`,
      `rel_err=${fmt(e.rel)}`);
    if (e.nan) { parts.push(`nan_mismatch=${e.nan}`); ok = false; }
    if (!o.top1 || o.rtolGiven) {
      parts.push(`rtol=${o.rtol}`);
      if (!(e.rel <= o.rtol)) ok = false;
    }
  }
  if (o.top1) {
    const pa = argmaxRows(a);
    const pb = labels ? Array.from(b.data, (v) => Number(v)) : argmaxRows(b);
    let same = 0;
    for (let r = 0; r < pa.length; r++) if (pa[r] === pb[r]) same++;
    const agree = pa.length ? same / pa.length : 1;
    parts.push(`${labels ? 'top1_accuracy' : 'top1_agree'}=${agree.toFixed(6)}`,
      `rows=${pa.length}`, `min_agree=${o.minAgree}`);
    if (agree < o.minAgree) ok = false;
  }
  process.stdout.write(`${ok ? 'PASS' : 'FAIL'} ${parts.join(' ')}\n`);
  process.exit(ok ? 0 : 1);
}

try {
  main();
} catch (e) {
  process.stderr.write(`npy_compare.js: ${e instanceof NpyError ? e.message : e.stack}\n`);
  process.exit(1);
}
