// Generates the OpenAPI document from the route schemas. `node dist/daemon/openapi.js --write`
// rewrites the committed daemon/openapi.json; a test fails when the two differ.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDaemon } from './server.js';

export const OPENAPI_PATH = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '../../daemon/openapi.json',
);

/** The document as the daemon serves it at /openapi.json (no services are started). */
export async function generateOpenApi(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-openapi-'));
  try {
    const d = await createDaemon({ dataDir: dir, logLevel: 'silent', poolSize: 0 });
    try {
      await d.app.ready();
      return d.app.swagger() as unknown as Record<string, unknown>;
    } finally {
      await d.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function serialize(doc: unknown): string {
  return JSON.stringify(doc, null, 2) + '\n';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const text = serialize(await generateOpenApi());
  if (process.argv.includes('--write')) {
    writeFileSync(OPENAPI_PATH, text);
    console.log(`wrote ${OPENAPI_PATH}`);
  } else process.stdout.write(text);
}
