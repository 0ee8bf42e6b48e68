// image-js (SPEC.md §4, the `image` workload in JavaScript): rotate a JPEG by 90, 180 and 270
// degrees. Node has no image codec, so decoding and encoding use jpeg-js 0.4.4 (pure JS,
// BSD-3-Clause), vendored in ./vendor/jpeg-js (see vendor/README.md); the rotations are our own
// pixel transposes, counter-clockwise like Pillow's ROTATE_90/180/270.
//
// read: GET the input, write it to <scratch>/<in>; process: read and decode it, rotate, encode
// each rotation as JPEG at quality 75 (Pillow's default) to <scratch>/rotate-<deg>-<in>;
// write: SET <prefix>rotate-<deg>-<in>. Scratch is /dev/shm (FAASNAP_SCRATCH_DIR overrides).
/* global require, exports, process */
/* eslint-disable @typescript-eslint/no-require-imports -- a CommonJS handler (see ../package.json) */

const fs = require('node:fs');
const path = require('node:path');
const jpeg = require('./vendor/jpeg-js');

const QUALITY = 75;
const DECODE_OPTIONS = { useTArray: true, formatAsRGBA: true };

function scratchDir() {
  return process.env.FAASNAP_SCRATCH_DIR || '/dev/shm';
}

function fileName(key) {
  // Keys name files in a shared directory: keep only the last path component.
  const name = path.basename(String(key));
  if (name === '' || name === '.' || name === '..') {
    throw new Error(`object key ${JSON.stringify(key)} does not name a file`);
  }
  return name;
}

// Rotates RGBA pixels (one 32-bit word per pixel) counter-clockwise by deg (90, 180, 270).
function rotate(src, width, height, deg) {
  const inp = new Uint32Array(src.buffer, src.byteOffset, width * height);
  const out = new Uint32Array(width * height);
  if (deg === 180) {
    for (let i = 0, j = width * height - 1; j >= 0; i++, j--) out[i] = inp[j];
    return { data: new Uint8Array(out.buffer), width, height };
  }
  // 90 and 270 swap the sides: the output is `height` pixels wide and `width` pixels high.
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      // 90 (CCW): source (x, y) lands at (y, width-1-x); 270 (CW): at (height-1-y, x).
      const at = deg === 90 ? (width - 1 - x) * height + y : x * height + (height - 1 - y);
      out[at] = inp[row + x];
    }
  }
  return { data: new Uint8Array(out.buffer), width: height, height: width };
}

exports.handle = async (params, ctx) => {
  const inKey = params && params.input_object_key;
  if (typeof inKey !== 'string') throw new Error('params.input_object_key must be a string');
  const prefix =
    typeof params.output_object_key_prefix === 'string' ? params.output_object_key_prefix : '';
  const name = fileName(inKey);
  const data = await ctx.storageGet(inKey);
  if (data === undefined) throw new Error(`no object ${JSON.stringify(inKey)}`);
  const inPath = path.join(scratchDir(), name);
  fs.writeFileSync(inPath, data);
  ctx.t1();
  const img = jpeg.decode(fs.readFileSync(inPath), DECODE_OPTIONS);
  const saved = [];
  for (const deg of [90, 180, 270]) {
    const file = path.join(scratchDir(), `rotate-${deg}-${name}`);
    fs.writeFileSync(file, jpeg.encode(rotate(img.data, img.width, img.height, deg), QUALITY).data);
    saved.push([deg, file]);
  }
  ctx.t2();
  const outputs = {};
  for (const [deg, file] of saved) {
    const out = fs.readFileSync(file);
    const key = `${prefix}rotate-${deg}-${name}`;
    await ctx.storagePut(key, out);
    outputs[key] = { degrees: deg, bytes: out.length };
  }
  return { input_bytes: data.length, width: img.width, height: img.height, outputs };
};
