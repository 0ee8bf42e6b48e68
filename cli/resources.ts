// `faasnap snapshots …`, `faasnap vms …`, `faasnap inputs …`: daemon resources other than
// functions. (`faasnap snapshot …`, singular, works on snapshot directories without a daemon.)

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Command } from 'commander';
import type { SnapshotInspectT, SnapshotT, VmT } from '../daemon/schemas.js';
import { api, type ClientOptions } from '../client/daemon.js';
import { clientOptions, output, table } from './output.js';

const MiB = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;

function snapRow(s: SnapshotT): string[] {
  const rec =
    [s.recorded.faasnap ? 'faasnap' : '', s.recorded.reap ? 'reap' : '']
      .filter(Boolean)
      .join('+') || '-';
  return [s.id, s.function, s.status, s.kind, MiB(s.memoryBytes), rec, s.cacheState];
}
const SNAP_HEAD = ['id', 'function', 'status', 'kind', 'memory', 'recorded', 'cache'];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

export function registerResourceCommands(program: Command): void {
  const snaps = program.command('snapshots').description('snapshots kept by the daemon');
  clientOptions(snaps.command('list').option('--function <name>', 'only this function')).action(
    async (o: ClientOptions & { function?: string }) => {
      const list = await api<SnapshotT[]>(
        o,
        'GET',
        `/snapshots${o.function ? `?function=${o.function}` : ''}`,
      );
      output(o, list, () => table([SNAP_HEAD, ...list.map(snapRow)]));
    },
  );
  clientOptions(
    snaps.command('create <vm>').description('snapshot a booted VM (faasnap vms boot)'),
  ).action(async (vm: string, o: ClientOptions) => {
    const s = await api<SnapshotT>(o, 'POST', '/snapshots', { vm });
    output(o, s, () => table([SNAP_HEAD, snapRow(s)]));
  });
  clientOptions(
    snaps.command('inspect <id>').description('sizes, regions, loading set, REAP working set'),
  ).action(async (id: string, o: ClientOptions) => {
    const i = await api<SnapshotInspectT>(o, 'GET', `/snapshots/${id}/inspect`);
    output(o, i, () =>
      [
        `${i.id}  ${i.cpuTemplate}  ${JSON.stringify(i.config)}`,
        `memory ${MiB(i.memoryBytes)}, non-zero ${MiB(i.nonZero.bytes)} in ${i.nonZero.regions} regions, ${(i.residentFraction * 100).toFixed(0)}% in page cache`,
        i.loadingSet
          ? `loading set ${MiB(i.loadingSet.bytes)} in ${i.loadingSet.regions} regions, ${i.loadingSet.scans} scans, groups ${i.loadingSet.groups.map((g) => `${g.group}:${MiB(g.bytes)}`).join(' ')}`
          : 'loading set: not recorded',
        i.reap
          ? `reap working set ${i.reap.pages} pages (${MiB(i.reap.bytes)})`
          : 'reap: not recorded',
      ].join('\n'),
    );
  });
  clientOptions(
    snaps
      .command('record <id>')
      .description('record working sets with an input')
      .option('--kind <kind>', 'faasnap, reap or both', 'both')
      .option('--params <json>', 'record input (default: the function record input)'),
  ).action(async (id: string, o: ClientOptions & { kind: string; params?: string }) => {
    const s = await api<SnapshotT>(o, 'POST', `/snapshots/${id}/record`, {
      kind: o.kind,
      params: o.params ? (JSON.parse(o.params) as object) : undefined,
    });
    output(o, s, () => table([SNAP_HEAD, snapRow(s)]));
  });
  clientOptions(snaps.command('copy <id>').description('copy a snapshot')).action(
    async (id: string, o: ClientOptions) => {
      const s = await api<SnapshotT>(o, 'POST', `/snapshots/${id}/copy`);
      output(o, s, () => table([SNAP_HEAD, snapRow(s)]));
    },
  );
  clientOptions(
    snaps.command('cache <id> <state>').description('page-cache state: dropped or loaded'),
  ).action(async (id: string, state: string, o: ClientOptions) => {
    const s = await api<SnapshotT>(o, 'PUT', `/snapshots/${id}/cache`, { state });
    output(o, s, () => table([SNAP_HEAD, snapRow(s)]));
  });
  clientOptions(snaps.command('delete <id>')).action(async (id: string, o: ClientOptions) => {
    await api(o, 'DELETE', `/snapshots/${id}`);
    output(o, { deleted: id }, () => `deleted ${id}`);
  });

  const vms = program.command('vms').description('live VMs of the daemon');
  clientOptions(vms.command('list')).action(async (o: ClientOptions) => {
    const list = await api<VmT[]>(o, 'GET', '/vms');
    output(o, list, () =>
      table([
        ['id', 'function', 'purpose', 'state', 'pid', 'memory', 'invocation'],
        ...list.map((v) => [
          v.id,
          v.function,
          v.purpose,
          v.state,
          String(v.pid ?? '-'),
          `${v.memoryMiB} MiB`,
          v.invocation ?? '-',
        ]),
      ]),
    );
  });
  clientOptions(
    vms
      .command('boot <function>')
      .description('boot a VM for a function (paused, ready to snapshot)'),
  ).action(async (fn: string, o: ClientOptions) => {
    const v = await api<VmT>(o, 'POST', '/vms', { function: fn });
    output(o, v, () => `${v.id} (pid ${v.pid}) ${v.state}`);
  });
  clientOptions(vms.command('stop <id>')).action(async (id: string, o: ClientOptions) => {
    await api(o, 'DELETE', `/vms/${id}`);
    output(o, { stopped: id }, () => `stopped ${id}`);
  });

  const inputs = program.command('inputs').description('objects in the object store (Redis)');
  clientOptions(
    inputs.command('load <dir>').description('store every file under <dir>, keyed by its basename'),
  ).action(async (dir: string, o: ClientOptions) => {
    const all = files(dir);
    const loaded: { key: string; bytes: number }[] = [];
    for (const [i, f] of all.entries()) {
      const r = await api<{ key: string; bytes: number }>(
        o,
        'PUT',
        `/objects/${encodeURIComponent(basename(f))}`,
        readFileSync(f),
      );
      loaded.push(r);
      if (!o.json) console.error(`  [${i + 1}/${all.length}] ${r.key} (${MiB(r.bytes)})`);
    }
    output(o, loaded, () => `loaded ${loaded.length} objects`);
  });
  clientOptions(inputs.command('list')).action(async (o: ClientOptions) => {
    const list = await api<{ key: string; bytes: number }[]>(o, 'GET', '/objects');
    output(o, list, () => table([['key', 'size'], ...list.map((x) => [x.key, MiB(x.bytes)])]));
  });
}
