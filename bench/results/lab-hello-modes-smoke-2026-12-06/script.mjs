// The smoke script of docs/RESULTS.md's first lab run (run in L1 with `faasnap lab run -- node <this file>`).
/* global console, setTimeout, process */
import { startDaemon } from '/work/main/dist/test/daemon/support.js';
import { guestFiles } from '/work/main/dist/test/guest/support.js';
const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
const files = guestFiles();
log('files', files);
const d = await startDaemon({ guest: files, maxVms: 1, maxMemoryMiB: 2048, poolSize: 2, logLevel: 'info' });
log('daemon up');
try {
  const fn = { name: 'py-hello', runtime: 'python', handler: 'hello', memoryMiB: 256, vcpus: 2, timeoutMs: 60000, recordParams: { name: 'record' } };
  log((await d.call('POST', '/functions', fn)).status);
  log((await d.call('POST', '/functions/py-hello/deploy')).status);
  let last = '';
  for (;;) {
    const f = (await d.call('GET', '/functions/py-hello')).body;
    if (f.state !== last) { log('state', f.state, f.error ? JSON.stringify(f.error).slice(0, 3000) : ''); last = f.state; }
    if (f.state === 'ready' || f.state === 'failed') break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  const modes = (process.env.MODES ?? 'vanilla,cached,eager,reap,faasnap,faasnap-no-concurrent-paging,faasnap-no-regions,faasnap-no-compact-file,warm,warm').split(',');
  for (const mode of modes) {
    const r = await d.call('POST', '/functions/py-hello/invocations', { mode, params: { name: mode } });
    log(mode, r.status, r.body.status, JSON.stringify(r.body.result), r.body.error ? JSON.stringify(r.body.error).slice(0, 2000) : '', `${r.body.durationMs?.toFixed?.(0)} ms`,
      (r.body.phases ?? []).map((p) => `${p.name}=${p.durationMs.toFixed(0)}`).join(' '));
  }
} finally {
  await d.stop();
  log('stopped');
}
