// Renders docs/errors.md from the registry (`node dist/common/errors-doc.js --write`); a test
// keeps the committed file in sync.

import { writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERRORS } from './errors.js';

export const ERRORS_DOC_PATH = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '../../docs/errors.md',
);

export function renderErrorsDoc(): string {
  const lines = [
    '# Error codes',
    '',
    '<!-- Generated from common/errors.ts by `node dist/common/errors-doc.js --write`; do not edit. -->',
    '',
    'Every error the daemon answers has the body `{ "code", "message", "details"? }`; `code` is one',
    'of these, and the HTTP status is the one listed. A function that fails or times out is not an',
    'API error: its invocation answers 200 with `status: "failed"` and `error.code` `FUNCTION_ERROR`',
    'or `FUNCTION_TIMEOUT`. The CLI prints `faasnap: CODE: message`.',
    '',
    '| code | HTTP status | message |',
    '| --- | --- | --- |',
  ];
  for (const [code, e] of Object.entries(ERRORS))
    lines.push(`| \`${code}\` | ${e.status} | ${e.message} |`);
  return lines.join('\n') + '\n';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  writeFileSync(ERRORS_DOC_PATH, renderErrorsDoc());
  console.log(`wrote ${ERRORS_DOC_PATH}`);
}
