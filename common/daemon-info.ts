// Where a running daemon can be found: its default port and data directory, the file in the
// data directory (daemon.json) where it writes its URL, and its API token file. Shared by the
// daemon, which writes them, and its HTTP client (client/daemon.ts), which reads them.

import { homedir } from 'node:os';
import { join } from 'node:path';

export const DEFAULT_PORT = 8720;

/** `${FAASNAP_HOME:-$HOME/.local/share/faasnap}` */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.FAASNAP_HOME || join(homedir(), '.local', 'share', 'faasnap');
}

/** The file that tells CLI commands where the daemon listens. */
export function daemonInfoPath(dataDir: string): string {
  return join(dataDir, 'daemon.json');
}

/** The API token a daemon bound beyond loopback generates (mode 0600) when given none. */
export function tokenPath(dataDir: string): string {
  return join(dataDir, 'api-token');
}
