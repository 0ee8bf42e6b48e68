import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ERRORS_DOC_PATH, renderErrorsDoc } from './errors-doc.js';

test('docs/errors.md is generated from the registry (run node dist/common/errors-doc.js --write)', () => {
  assert.equal(readFileSync(ERRORS_DOC_PATH, 'utf8'), renderErrorsDoc());
});
