import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFaasnapError } from '../../common/errors.js';
import {
  type AgentMessage,
  type DecodeItem,
  FrameDecoder,
  MAX_FRAME_BYTES,
  encodeFrame,
  parseGuestMessage,
} from './protocol.js';

function messages(items: DecodeItem[]): AgentMessage[] {
  return items.flatMap((i) => ('message' in i ? [i.message] : []));
}
function errors(items: DecodeItem[]): string[] {
  return items.flatMap((i) => ('error' in i ? [i.error.code] : []));
}

test('a frame is a big-endian length and UTF-8 JSON', () => {
  const f = encodeFrame({ id: 7, type: 'ping' });
  const json = '{"id":7,"type":"ping"}';
  assert.equal(f.readUInt32BE(0), json.length);
  assert.equal(f.subarray(4).toString('utf8'), json);
  assert.equal(f[0], 0, 'the first byte of every frame is 0x00');
});

test('frames split at every byte boundary decode once each', () => {
  const frames = Buffer.concat([
    encodeFrame({ id: 1, type: 'pong' }),
    encodeFrame({ id: 2, type: 'log', level: 'info', msg: 'héllo ✓' }),
  ]);
  for (let cut = 0; cut <= frames.length; cut++) {
    const d = new FrameDecoder();
    const got = [...d.push(frames.subarray(0, cut)), ...d.push(frames.subarray(cut))];
    assert.deepEqual(
      messages(got).map((m) => m.id),
      [1, 2],
      `cut at ${cut}`,
    );
    assert.equal(d.bufferedBytes, 0);
  }
});

test('one byte at a time, and several frames in one chunk', () => {
  const all = Buffer.concat([1, 2, 3].map((id) => encodeFrame({ id, type: 'pong' })));
  const d = new FrameDecoder();
  const got: DecodeItem[] = [];
  for (const b of all) got.push(...d.push(Uint8Array.of(b)));
  assert.deepEqual(
    messages(got).map((m) => m.id),
    [1, 2, 3],
  );
  assert.deepEqual(
    messages(new FrameDecoder().push(all)).map((m) => m.id),
    [1, 2, 3],
  );
});

test('a large frame in many chunks is joined once, not per chunk', () => {
  const big = { id: 9, type: 'result', blob: 'x'.repeat(4 << 20) };
  const f = encodeFrame(big as AgentMessage);
  const d = new FrameDecoder();
  const got: DecodeItem[] = [];
  for (let at = 0; at < f.length; at += 65536) got.push(...d.push(f.subarray(at, at + 65536)));
  const m = messages(got);
  assert.equal(m.length, 1);
  assert.equal((m[0] as unknown as { blob: string }).blob.length, 4 << 20);
});

test('oversized frames are refused by the encoder and reported by the decoder', () => {
  assert.throws(
    () => encodeFrame({ id: 1, type: 'x', s: 'y'.repeat(100) } as AgentMessage, 64),
    (e) => isFaasnapError(e, 'AGENT_FRAME_TOO_LARGE'),
  );
  assert.throws(
    () => encodeFrame({ id: 1, type: 'x' }, MAX_FRAME_BYTES + 1),
    (e) => isFaasnapError(e, 'AGENT_CHANNEL'),
  );
  const d = new FrameDecoder({ maxFrameBytes: 1024 });
  const header = Buffer.alloc(4);
  header.writeUInt32BE(2048, 0);
  // The oversized frame's body (JSON text, no 0x00) is skipped up to the next frame.
  const body = Buffer.from(
    JSON.stringify({ id: 1, type: 'x', s: 'z'.repeat(2000) }).slice(0, 2048),
  );
  const next = encodeFrame({ id: 2, type: 'pong' });
  const got = d.push(Buffer.concat([header, body, next]));
  assert.deepEqual(errors(got), ['AGENT_FRAME_TOO_LARGE']);
  assert.deepEqual(
    messages(got).map((m) => m.id),
    [2],
  );
  // The decoder never held the oversized frame.
  assert.equal(d.bufferedBytes, 0);
});

test('a length prefix claiming 4 GiB does not make the decoder wait or allocate', () => {
  const d = new FrameDecoder();
  const got = d.push(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x41, 0x42]));
  assert.deepEqual(errors(got), ['AGENT_FRAME_TOO_LARGE']);
  assert.equal(d.bufferedBytes, 0);
  assert.deepEqual(
    messages(d.push(encodeFrame({ id: 3, type: 'pong' }))).map((m) => m.id),
    [3],
  );
});

test('garbage payloads become errors and decoding continues', () => {
  const raw = (payload: Buffer): Buffer => {
    const h = Buffer.alloc(4);
    h.writeUInt32BE(payload.length, 0);
    return Buffer.concat([h, payload]);
  };
  const d = new FrameDecoder();
  const got = d.push(
    Buffer.concat([
      raw(Buffer.from('not json')),
      raw(Buffer.from([0xc3, 0x28])), // invalid UTF-8
      raw(Buffer.from('[1,2]')), // not an object
      raw(Buffer.from('{"type":"pong"}')), // no id
      raw(Buffer.from('{"id":-1,"type":"pong"}')),
      raw(Buffer.from('{"id":1.5,"type":"pong"}')),
      Buffer.from([0, 0, 0, 0]), // empty frame
      encodeFrame({ id: 4, type: 'pong' }),
    ]),
  );
  assert.deepEqual(errors(got), [
    'AGENT_PROTOCOL',
    'AGENT_PROTOCOL',
    'AGENT_PROTOCOL',
    'AGENT_PROTOCOL',
    'AGENT_PROTOCOL',
    'AGENT_PROTOCOL',
    'AGENT_PROTOCOL',
  ]);
  assert.deepEqual(
    messages(got).map((m) => m.id),
    [4],
  );
});

test('random bytes never throw, and a valid frame after them is found again', () => {
  let seed = 12345;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
  for (let round = 0; round < 50; round++) {
    const d = new FrameDecoder();
    // Text-like garbage (as after a reconnect in the middle of a frame): no 0x00 bytes.
    const junk = Buffer.from(Array.from({ length: 200 }, () => 0x20 + (rnd() % 0x5f)));
    const got = [...d.push(junk), ...d.push(encodeFrame({ id: 5, type: 'pong' }))];
    assert.deepEqual(
      messages(got).map((m) => m.id),
      [5],
    );
    // Arbitrary bytes: no guarantee of recovery, but no exception either.
    new FrameDecoder().push(Buffer.from(Array.from({ length: 500 }, rnd)));
  }
});

test('parseGuestMessage checks each type', () => {
  assert.equal(parseGuestMessage({ id: 1, type: 'pong' }).type, 'pong');
  const result = {
    id: 2,
    type: 'result',
    result: { a: 1 },
    timings: { readMs: 1, processMs: 2, writeMs: 0 },
  };
  assert.equal(parseGuestMessage(result).type, 'result');
  for (const bad of [
    { id: 1, type: 'bogus' },
    { id: 2, type: 'result', result: 1 },
    { id: 3, type: 'storage.get', key: '' },
    { id: 4, type: 'log', level: 'loud', msg: 'x' },
  ]) {
    assert.throws(
      () => parseGuestMessage(bad),
      (e) => isFaasnapError(e, 'AGENT_PROTOCOL'),
    );
  }
});
