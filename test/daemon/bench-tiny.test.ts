// The experiment harness end to end on a real daemon: the tiny config (micro hello guest,
// cached and faasnap, one repeat) is deployed, run and reported; then the same function with
// two concurrent invocations from separate snapshot copies (E3's path), whose copies are
// deleted afterwards.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../bench/experiments/config.js';
import { readRun } from '../../bench/experiments/results.js';
import { runExperiment } from '../../bench/experiments/runner.js';
import { writeReport } from '../../bench/report/report.js';
import { kvmTest } from '../kvm/support.js';
import { startDaemon } from './support.js';

kvmTest(
  'bench: the tiny config runs against a daemon and its report has the expected rows',
  async () => {
    const d = await startDaemon();
    const out = mkdtempSync(join(tmpdir(), 'faasnap-bench-tiny-'));
    try {
      const tiny = loadConfig('tiny');
      const logs: string[] = [];
      let ticks = 0;
      let total = 0;
      const { dir, doc } = await runExperiment(tiny, {
        url: d.url,
        outDir: join(out, 'results'),
        progress: {
          start: (t) => {
            total = t;
          },
          tick: () => {
            ticks++;
          },
          log: (m) => logs.push(m),
          stop: () => undefined,
        },
      });
      assert.equal(total, 2);
      assert.equal(ticks, 2);
      assert.equal(doc.samples.length, 2, JSON.stringify(doc.samples, null, 2));
      for (const s of doc.samples) {
        assert.equal(s.status, 'succeeded', JSON.stringify(s));
        assert.ok(s.e2eMs !== null && s.e2eMs > 0);
        assert.ok(s.durationMs! >= s.e2eMs!);
        assert.match(s.traceId ?? '', /^[0-9a-f]{32}$/);
        assert.ok(s.phases.restore! > 0, 'restore phase recorded');
        assert.ok(s.phases['guest-run']! > 0, 'guest-run phase recorded');
      }
      assert.deepEqual(
        doc.samples.map((s) => s.setting),
        ['cached', 'faasnap'],
      );
      assert.ok(doc.samples[0]!.phases['page-cache-load'] !== undefined, 'cached loads the cache');
      assert.equal(doc.functions[0]!.registeredAs, 'bench-hello');
      assert.equal(doc.functions[0]!.skipped, null);
      assert.ok(logs.some((l) => l.includes('deploying bench-hello')));
      // The raw results are on disk, JSON and CSV.
      assert.deepEqual(readRun(dir).samples, doc.samples);
      assert.equal(readFileSync(join(dir, 'results.csv'), 'utf8').trim().split('\n').length, 3);

      const rep = writeReport(dir, join(out, 'docs'));
      const md = readFileSync(join(rep.dir, 'README.md'), 'utf8');
      assert.match(md, /\| hello \| micro\/hello \| snap-[0-9a-f]+ \|/);
      assert.match(
        md,
        /\| hello \| 0 \| yes \| cached \| [\d.]+ \| [\d.]+ \| [\d.]+ \| 1 \| 1\.00x \| 0 \|/,
      );
      assert.match(
        md,
        /\| hello \| 0 \| yes \| faasnap \| [\d.]+ \| [\d.]+ \| [\d.]+ \| 1 \| [\d.]+x \| 0 \|/,
      );
      assert.match(
        md,
        /\| T1 \| faasnap ≤ 1\.10x cached on every function \| (\*\*PASS\*\*|\*\*FAIL\*\*) \|/,
      );
      assert.match(md, /\| T2 \| .* \| N\/A \|/); // no vanilla in tiny
      assert.match(md, /## Failures\n\nNone\./);
      assert.ok(existsSync(join(rep.dir, 'normalised.svg')));

      // Second run: the deployed function is reused; 2 concurrent invocations from copies.
      const par = await runExperiment(
        { ...tiny, settings: ['faasnap'], parallelism: [{ n: 2, snapshots: 'separate' }] },
        { url: d.url, outDir: join(out, 'results') },
      );
      assert.equal(par.doc.functions[0]!.reused, true);
      assert.equal(par.doc.samples.length, 2);
      assert.ok(
        par.doc.samples.every((s) => s.status === 'succeeded'),
        JSON.stringify(par.doc.samples),
      );
      const snaps = new Set(par.doc.samples.map((s) => s.snapshot));
      assert.equal(snaps.size, 2, 'each invocation had its own snapshot copy');
      const left = (await d.call('GET', '/snapshots')).body as { id: string }[];
      assert.equal(left.length, 1, 'the copies were deleted');
      const parRep = writeReport(par.dir, join(out, 'docs'));
      assert.ok(existsSync(join(parRep.dir, 'cdf-hello-2.svg')));
    } finally {
      await d.stop();
      rmSync(out, { recursive: true, force: true });
    }
  },
  180_000,
);
