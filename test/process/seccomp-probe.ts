// Run inside a jail by seccomp.test.ts: installs the VMM processes' seccomp filter as a VMM
// process does once set up, shows it still does a VMM's work (files, serving a Unix socket),
// then, told to, opens a TCP socket, which the filter must stop.

import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { installVmmFilter } from '../../process/seccomp.js';

const [unixPath, port] = process.argv.slice(2) as [string, string];

installVmmFilter();
const seccomp = /^Seccomp:\s*(\S+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]!;
// As the VMM serves its guest's agent: a Unix socket the daemon connects to.
const server = createServer((s) => s.end('hello from the jail'));
server.listen(unixPath, () => process.send!({ seccomp, listening: unixPath }));
process.once('message', () => {
  // socket(AF_INET): not a VMM's call. The filter ends the process here.
  const s = connect(Number(port), '127.0.0.1');
  s.on('error', (e) => process.send!({ tcp: String(e) }));
  s.on('connect', () => process.send!({ tcp: 'connected' }));
});
