// Request size limits on a real daemon: a JSON body over the limit is refused with
// REQUEST_TOO_LARGE (413, naming the limit) before it is parsed, and changes nothing.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_BODY_BYTES } from '../../daemon/api.js';
import { TOUCH_FN, startDaemon } from './support.js';

test('a request body over the limit gets REQUEST_TOO_LARGE and changes nothing', async () => {
  const d = await startDaemon({ poolSize: 0 });
  try {
    const padded = (bytes: number) => {
      const body = JSON.stringify({ ...TOUCH_FN, description: '' });
      return body.replace('"description":""', `"description":"${'x'.repeat(bytes - body.length)}"`);
    };
    const over = await d.call('POST', '/functions', padded(MAX_BODY_BYTES + 1));
    assert.equal(over.status, 413, over.text);
    assert.equal(over.body.code, 'REQUEST_TOO_LARGE');
    assert.equal(over.body.details.limit, MAX_BODY_BYTES);
    assert.deepEqual((await d.call('GET', '/functions')).body, []);
    // At the limit the body is read and judged by the schema instead.
    const at = await d.call('POST', '/functions', padded(MAX_BODY_BYTES));
    assert.notEqual(at.status, 413, at.text);
    const invoke = await d.call(
      'POST',
      `/functions/${TOUCH_FN.name}/invocations`,
      JSON.stringify({ params: { pad: 'x'.repeat(MAX_BODY_BYTES) } }),
    );
    assert.equal(invoke.body.code, 'REQUEST_TOO_LARGE', invoke.text);
  } finally {
    await d.stop();
  }
});
