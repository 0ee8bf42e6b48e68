// Per-test-file scratch directories: one temp root removed after the file's tests, and a fresh
// empty subdirectory for each test that asks.

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

export function tempDirs(prefix: string): { root: string; fresh(): string } {
  const root = mkdtempSync(join(tmpdir(), `faasnap-${prefix}-`));
  after(() => rmSync(root, { recursive: true, force: true }));
  let seq = 0;
  return {
    root,
    fresh: () => {
      const d = join(root, `t${seq++}`);
      mkdirSync(d);
      return d;
    },
  };
}
