// hello-js: the bare invocation path of the Node.js runtime (CommonJS: Node 18 loads a .js
// file as CommonJS; handler.mjs would be ESM).
/* global exports */

exports.handle = async (params, ctx) => {
  ctx.t1();
  const name = params && typeof params.name === 'string' ? params.name : 'world';
  const result = { greeting: `Hello, ${name}!`, params, runtime: 'node' };
  ctx.t2();
  return result;
};
