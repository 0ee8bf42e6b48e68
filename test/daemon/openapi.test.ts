// The committed OpenAPI document is the one the route schemas generate.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { OPENAPI_PATH, generateOpenApi, serialize } from '../../daemon/openapi.js';

test('daemon/openapi.json equals the generated document (run node dist/daemon/openapi.js --write)', async () => {
  const generated = serialize(await generateOpenApi());
  assert.equal(readFileSync(OPENAPI_PATH, 'utf8'), generated);
});
