// What a snapshot directory holds, for people and the API: sizes, VM config, non-zero regions,
// the FaaSnap loading set by group, the REAP working set and page-cache residency.

import { existsSync, statSync } from 'node:fs';
import { readLoadingSetManifest } from '../loader/loading-set-file.js';
import { loadingSetSize } from '../loader/loading-set.js';
import { readReapManifest } from '../loader/reap-file.js';
import { scanFile } from '../loader/regions.js';
import { residentFraction } from '../vmm/snapshot/memory-dump.js';
import { snapshotPaths } from './snapshot.js';
import { readStateFile } from '../vmm/snapshot/state-file.js';

export interface SnapshotInspection {
  cpuTemplate: string;
  config: Record<string, unknown>;
  checksum: string;
  stateFileBytes: number;
  memoryBytes: number;
  nonZero: { bytes: number; regions: number };
  /** Fraction of the memory file in the page cache now. */
  residentFraction: number;
  loadingSet: {
    bytes: number;
    regions: number;
    scans: number;
    groups: { group: number; bytes: number }[];
  } | null;
  reap: { pages: number; bytes: number } | null;
}

export async function inspectSnapshot(dir: string): Promise<SnapshotInspection> {
  const p = snapshotPaths(dir);
  const state = await readStateFile(p.stateFile);
  const scan = await scanFile(p.memoryFile);
  const ls = existsSync(p.loadingSetManifest)
    ? await readLoadingSetManifest(p.loadingSetManifest)
    : undefined;
  const reap = await readReapManifest(p.reapDir);
  const groups = new Map<number, number>();
  for (const r of ls?.regions ?? []) groups.set(r.group, (groups.get(r.group) ?? 0) + r.length);
  return {
    cpuTemplate: state.cpuTemplate,
    config: state.config as Record<string, unknown>,
    checksum: state.checksum,
    stateFileBytes: statSync(p.stateFile).size,
    memoryBytes: state.memory.size,
    nonZero: {
      bytes: scan.regions.reduce((n, r) => n + r.length, 0),
      regions: scan.regions.length,
    },
    residentFraction: residentFraction(p.memoryFile, state.memory.size),
    loadingSet: ls
      ? {
          bytes: loadingSetSize(ls.regions),
          regions: ls.regions.length,
          scans: ls.recording.scans,
          groups: [...groups.entries()]
            .sort((a, b) => a[0] - b[0])
            .map(([group, bytes]) => ({ group, bytes })),
        }
      : null,
    reap: reap ? { pages: reap.pages.length, bytes: reap.pages.length * 4096 } : null,
  };
}
