import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NODE_MAJOR, unsupportedNode } from './require-node.js';

test('Node versions below the pinned major are refused with the way to the right one', () => {
  assert.match(unsupportedNode('v20.20.2')!, /Node v20\.20\.2.*Node 24 LTS.*node_modules\/\.bin/);
  assert.match(unsupportedNode('v23.11.0')!, /Node 24/);
  assert.equal(unsupportedNode(`v${NODE_MAJOR}.0.0`), undefined);
  assert.equal(unsupportedNode('v26.1.0'), undefined);
  assert.equal(unsupportedNode(process.version), undefined, 'the tests run on a supported Node');
});
