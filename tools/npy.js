// This file implements reading and writing NumPy .npy files for the Node
// tools (ort_run.js, npy_compare.js): format 1.0-3.0, little-endian, C order,
// numeric dtypes.  It mirrors core/npy.c's refusals so both sides of a
// comparison accept the same files.
'use strict';

const fs = require('fs');
const path = require('path');

// descr type code -> [ORT tensor type, TypedArray, bytes per element]
const CODES = {
  f4: ['float32', Float32Array, 4],
  f8: ['float64', Float64Array, 8],
  i1: ['int8', Int8Array, 1],
  u1: ['uint8', Uint8Array, 1],
  i2: ['int16', Int16Array, 2],
  u2: ['uint16', Uint16Array, 2],
  i4: ['int32', Int32Array, 4],
  u4: ['uint32', Uint32Array, 4],
  i8: ['int64', BigInt64Array, 8],
  u8: ['uint64', BigUint64Array, 8],
  b1: ['bool', Uint8Array, 1],
};
const DESCR = {};
for (const [code, [type]] of Object.entries(CODES)) {
  DESCR[type] = (code[1] === '1' ? '|' : '<') + code;
}

class NpyError extends Error {}

function fail(file, msg) {
  throw new NpyError(`${file}: ${msg}`);
}

// Parses the header dict text: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
function parseHeader(file, text) {
  let i = 0;
  const ws = () => { while (i < text.length && ' \t\r\n'.includes(text[i])) i++; };
  const bad = (what) => fail(file, `malformed .npy header: ${what}`);
  const expect = (ch, what) => { ws(); if (text[i] !== ch) bad(what); i++; };
  const str = (what) => {
    ws();
    const q = text[i];
    if (q !== "'" && q !== '"') bad(what);
    const end = text.indexOf(q, i + 1);
    if (end < 0) bad('unterminated string');
    const s = text.slice(i + 1, end);
    i = end + 1;
    return s;
  };
  const out = {};
  expect('{', "does not start with '{'");
  for (;;) {
    ws();
    if (text[i] === '}') { i++; break; }
    const key = str('expected a quoted key');
    expect(':', "expected ':' after a key");
    ws();
    if (key in out) bad(`duplicate key '${key}'`);
    if (key === 'descr') {
      if (text[i] === '[') fail(file, '.npy holds a structured array; only plain numeric arrays are supported');
      out.descr = str("'descr' is not a dtype string");
    } else if (key === 'fortran_order') {
      if (text.startsWith('True', i)) { out.fortran_order = true; i += 4; }
      else if (text.startsWith('False', i)) { out.fortran_order = false; i += 5; }
      else bad("'fortran_order' is not True or False");
    } else if (key === 'shape') {
      expect('(', "'shape' is not a tuple");
      const dims = [];
      for (;;) {
        ws();
        if (text[i] === ')') { i++; break; }
        const m = /^(-?\d+)[lL]?/.exec(text.slice(i));
        if (!m) bad("'shape' is not a tuple of integers");
        const d = BigInt(m[1]);
        if (d < 0n) fail(file, '.npy shape has a negative dimension');
        if (d > BigInt(Number.MAX_SAFE_INTEGER)) fail(file, '.npy shape has a dimension too large');
        dims.push(Number(d));
        i += m[0].length;
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === ')') { i++; break; }
        bad("'shape' is not a tuple of integers");
      }
      out.shape = dims;
    } else {
      bad(`unknown key '${key}'`);
    }
    ws();
    if (text[i] === ',') { i++; continue; }
    if (text[i] === '}') { i++; break; }
    bad("expected ',' or '}' after a value");
  }
  ws();
  if (i !== text.length) bad("text after the closing '}'");
  for (const k of ['descr', 'fortran_order', 'shape']) if (!(k in out)) bad(`missing '${k}'`);
  return out;
}

// Reads a .npy file: returns {type, dims, data} where type is an ORT tensor
// type name and data a TypedArray (own, aligned buffer).
function readNpy(file) {
  let buf;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    fail(file, `cannot open: ${e.message}`);
  }
  if (buf.length === 0) fail(file, 'empty file, not a .npy file');
  if (buf.length < 10 || buf[0] !== 0x93 || buf.toString('latin1', 1, 6) !== 'NUMPY') {
    fail(file, 'not a .npy file (bad magic)');
  }
  const major = buf[6], minor = buf[7];
  if (![1, 2, 3].includes(major) || minor !== 0) {
    fail(file, `unsupported .npy format version ${major}.${minor} (supported: 1.0, 2.0, 3.0)`);
  }
  const lenBytes = major === 1 ? 2 : 4;
  if (buf.length < 8 + lenBytes) fail(file, 'truncated .npy file (header length missing)');
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const off = 8 + lenBytes + hlen;
  if (off > buf.length) fail(file, `truncated .npy file (header of ${hlen} bytes, file has ${buf.length})`);
  const h = parseHeader(file, buf.toString(major === 3 ? 'utf8' : 'latin1', 8 + lenBytes, off));

  let order = h.descr[0], code = h.descr.slice(1);
  if (!'<>|='.includes(order)) { order = '='; code = h.descr; }
  if (code[0] === 'O') fail(file, `.npy holds Python objects (dtype '${h.descr}'), which cannot be read without pickle`);
  const entry = CODES[code];
  if (!entry) fail(file, `.npy dtype '${h.descr}' is not supported`);
  const [type, Ctor, size] = entry;
  if (order === '>' && size > 1) fail(file, `.npy array is big-endian (dtype '${h.descr}')`);
  if (h.fortran_order && h.shape.length > 1) fail(file, '.npy array is in Fortran order');

  const n = h.shape.reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(n * size)) fail(file, `.npy shape (${h.shape}) is too large`);
  const have = buf.length - off;
  if (have < n * size) {
    fail(file, `truncated .npy file: shape (${h.shape}) of ${type} needs ${n * size} data bytes, file has ${have}`);
  }
  if (have > n * size) fail(file, `.npy file has ${have - n * size} bytes after the array data`);
  // Copy into a fresh ArrayBuffer: the file buffer's offset need not be
  // aligned for the element type.
  const ab = new ArrayBuffer(n * size);
  new Uint8Array(ab).set(buf.subarray(off, off + n * size));
  return { type, dims: h.shape.slice(), data: new Ctor(ab) };
}

// Writes {type, dims, data} as a version 1.0 .npy file, atomically
// (temporary file in the same folder, then rename).
function writeNpy(file, { type, dims, data }) {
  const descr = DESCR[type];
  if (!descr) fail(file, `cannot write a ${type} tensor to .npy`);
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  dict = dict.padEnd(total - 10 - 1, ' ') + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(dict.length, 8);
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const tmp = path.join(path.dirname(file),
    `.${path.basename(file)}.tmp${process.pid}${Math.random().toString(36).slice(2, 8)}`);
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, Buffer.concat([head, Buffer.from(dict, 'latin1')]));
      fs.writeSync(fd, body);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    try { fs.unlinkSync(tmp); } catch (_) { /* already gone */ }
    fail(file, `cannot write: ${e.message}`);
  }
}

// Element i as a JS number (64-bit integers may lose precision past 2^53,
// which is irrelevant for comparisons of model outputs).
function elementAsNumber(t, i) {
  const v = t.data[i];
  return typeof v === 'bigint' ? Number(v) : v;
}

module.exports = { readNpy, writeNpy, elementAsNumber, NpyError, DESCR };
