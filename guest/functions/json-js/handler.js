// json-js (SPEC.md §4, the `json` workload in JavaScript): parse a JSON document and
// re-serialize it with 4-space indentation; the output is discarded (no writes). The result
// has the same fields as the Python `json` handler, so tests can compare the two.
/* global exports, Buffer */

exports.handle = async (params, ctx) => {
  const key = params && params.input_object_key;
  if (typeof key !== 'string') throw new Error('params.input_object_key must be a string');
  const raw = await ctx.storageGet(key);
  if (raw === undefined) throw new Error(`no object ${JSON.stringify(key)}`);
  const text = Buffer.from(raw).toString('utf8');
  ctx.t1();
  const doc = JSON.parse(text);
  const out = JSON.stringify(doc, null, 4);
  ctx.t2();
  let lines = 1;
  for (let i = out.indexOf('\n'); i !== -1; i = out.indexOf('\n', i + 1)) lines++;
  const isArray = Array.isArray(doc);
  const isObject = !isArray && doc !== null && typeof doc === 'object';
  return {
    input_bytes: raw.length,
    type: isArray ? 'list' : isObject ? 'dict' : typeof doc,
    items: isArray ? doc.length : isObject ? Object.keys(doc).length : 1,
    output_chars: out.length,
    output_lines: lines,
  };
};
