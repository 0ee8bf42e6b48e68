// The guest's Node.js runtime: a long-lived child of the Python agent (agent.py) that runs JS
// handlers. It speaks the agent protocol's framing (docs/agent-protocol.md) over the socket
// passed as fd argv[2]; stdout/stderr stay free for the handlers' own output.
//
//   agent → runtime: invoke {id, function, path, params}, storage.result {id, value | error}
//   runtime → agent: result {id, result | error, t1Ns, t2Ns}, storage.get/put {id, key, value},
//                    log {id, level, msg}
//
// t1Ns/t2Ns are CLOCK_MONOTONIC nanoseconds (process.hrtime), the clock the agent uses, so it
// computes the read/process/write phases itself. Plain JavaScript (Node 18, Debian bookworm's):
// the guest has no TypeScript toolchain.

import { Buffer } from 'node:buffer';
import { Socket } from 'node:net';
import process from 'node:process';
import { pathToFileURL } from 'node:url';

const MAX_FRAME = 0xffffff;

class FrameTooLarge extends Error {}

const fd = Number(process.argv[2]);
if (!Number.isInteger(fd) || fd < 0) {
  process.stderr.write('node-runtime: usage: node node-runtime.mjs FD\n');
  process.exit(2);
}
const channel = new Socket({ fd, readable: true, writable: true });

function send(message) {
  const json = Buffer.from(JSON.stringify(message), 'utf8');
  if (json.length > MAX_FRAME) {
    throw new FrameTooLarge(`message of ${json.length} bytes exceeds ${MAX_FRAME}`);
  }
  const header = Buffer.alloc(4);
  header.writeUInt32BE(json.length, 0);
  channel.write(Buffer.concat([header, json]));
}

// ---- decoding: the agent is trusted, but a bad frame still must not wedge the runtime ----

let buffered = Buffer.alloc(0);
channel.on('data', (chunk) => {
  buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
  while (buffered.length >= 4) {
    const len = buffered.readUInt32BE(0);
    if (len === 0 || len > MAX_FRAME) {
      process.stderr.write(`node-runtime: bad frame length ${len}\n`);
      process.exit(1);
    }
    if (buffered.length < 4 + len) break;
    const payload = buffered.subarray(4, 4 + len);
    buffered = buffered.subarray(4 + len);
    let message;
    try {
      message = JSON.parse(payload.toString('utf8'));
    } catch (e) {
      process.stderr.write(`node-runtime: bad frame: ${e.message}\n`);
      process.exit(1);
    }
    dispatch(message);
  }
});
// The agent closed its end (it exited or killed us): nothing left to do.
channel.on('end', () => process.exit(0));
channel.on('error', () => process.exit(1));

// ---- storage requests, answered by the agent (which relays them to the host) ----

let nextStorageId = 1;
const storageWaiting = new Map();

function storageRequest(fields) {
  const id = nextStorageId++;
  return new Promise((resolve, reject) => {
    storageWaiting.set(id, { resolve, reject });
    try {
      send({ id, ...fields });
    } catch (e) {
      storageWaiting.delete(id);
      reject(e);
    }
  });
}

function dispatch(message) {
  if (message.type === 'invoke') {
    void invoke(message);
  } else if (message.type === 'storage.result') {
    const w = storageWaiting.get(message.id);
    if (!w) return;
    storageWaiting.delete(message.id);
    if (message.error != null) w.reject(new Error(`storage: ${message.error}`));
    else
      w.resolve({
        value: message.value == null ? undefined : Buffer.from(message.value, 'base64'),
        size: message.size,
      });
  }
}

// Values larger than a frame move in chunks of this many bytes (base64 of it fits a frame).
const STORAGE_CHUNK = 8 << 20;

async function storageGet(key) {
  const parts = [];
  let got = 0;
  for (;;) {
    const r = await storageRequest({
      type: 'storage.get',
      key,
      offset: got,
      length: STORAGE_CHUNK,
    });
    if (r.value === undefined) return undefined;
    parts.push(r.value);
    got += r.value.length;
    if (r.size === undefined || got >= r.size) return Buffer.concat(parts);
    if (r.value.length === 0) throw new Error(`storage: ${key} changed while it was read`);
  }
}

async function storagePut(key, value) {
  const data = Buffer.from(value);
  let offset = 0;
  do {
    const chunk = data.subarray(offset, offset + STORAGE_CHUNK);
    await storageRequest({ type: 'storage.put', key, offset, value: chunk.toString('base64') });
    offset += chunk.length;
  } while (offset < data.length);
}

// ---- invocations ----

const modules = new Map();

async function load(path) {
  let mod = modules.get(path);
  if (!mod) {
    mod = await import(pathToFileURL(path).href);
    modules.set(path, mod);
  }
  // ESM `export function handle`, CommonJS `exports.handle`, or a default-exported function.
  const handle =
    mod.handle ??
    mod.default?.handle ??
    (typeof mod.default === 'function' ? mod.default : undefined);
  if (typeof handle !== 'function') throw new Error(`${path} does not export handle(params, ctx)`);
  return handle;
}

function now() {
  return process.hrtime.bigint();
}

async function invoke(message) {
  const marks = { t1: undefined, t2: undefined };
  const ctx = {
    id: message.id,
    function: message.function,
    t1: () => void (marks.t1 = now()),
    t2: () => void (marks.t2 = now()),
    storageGet: (key) => storageGet(String(key)),
    storagePut: (key, value) => storagePut(String(key), value),
    log: (msg, level = 'info') => send({ id: message.id, type: 'log', level, msg: String(msg) }),
  };
  const reply = { id: message.id, type: 'result' };
  try {
    const handle = await load(message.path);
    const tCall = now();
    const result = await handle(message.params, ctx);
    const tEnd = now();
    reply.result = result === undefined ? null : result;
    reply.t1Ns = Number(marks.t1 ?? tCall);
    reply.t2Ns = Number(marks.t2 ?? tEnd);
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    reply.error = {
      type: 'exception',
      message: `${err.name}: ${err.message}`,
      traceback: err.stack,
    };
    if (marks.t1 !== undefined) reply.t1Ns = Number(marks.t1);
    if (marks.t2 !== undefined) reply.t2Ns = Number(marks.t2);
  }
  try {
    send(reply);
  } catch (e) {
    // Too large, or not serialisable (a BigInt, a cycle): report it instead of the result.
    const type = e instanceof FrameTooLarge ? 'result_too_large' : 'exception';
    const msg = e instanceof Error ? e.message : String(e);
    send({ id: message.id, type: 'result', error: { type, message: `result: ${msg}` } });
  }
}
