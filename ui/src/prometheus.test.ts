// The dashboard's reading of /metrics: the text format, per-mode figures and quantiles as
// Prometheus' histogram_quantile gives them.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { figuresByMode, parsePrometheus, phaseMeans, quantile } from './prometheus.js';

const TEXT = `# HELP faasnap_invocations_total Invocations by function, mode and outcome
# TYPE faasnap_invocations_total counter
faasnap_invocations_total{function="a",mode="faasnap",status="succeeded"} 3
faasnap_invocations_total{function="b",mode="faasnap",status="failed"} 1
faasnap_invocations_total{function="a",mode="reap",status="succeeded"} 2
faasnap_invocation_duration_seconds_bucket{le="0.01",mode="faasnap"} 1
faasnap_invocation_duration_seconds_bucket{le="0.1",mode="faasnap"} 3
faasnap_invocation_duration_seconds_bucket{le="+Inf",mode="faasnap"} 4
faasnap_invocation_duration_seconds_sum{mode="faasnap"} 0.5
faasnap_invocation_duration_seconds_count{mode="faasnap"} 4
faasnap_invocation_phase_seconds_sum{mode="reap",phase="restore"} 0.03
faasnap_invocation_phase_seconds_count{mode="reap",phase="restore"} 2
faasnap_vmm_pool_size 2
weird{label="a \\"quoted\\" \\\\ value"} 1
`;

test('parses samples with labels, escapes and special values', () => {
  const samples = parsePrometheus(TEXT);
  assert.equal(samples.length, 12);
  assert.deepEqual(
    samples.find((s) => s.name === 'faasnap_vmm_pool_size'),
    {
      name: 'faasnap_vmm_pool_size',
      labels: {},
      value: 2,
    },
  );
  assert.equal(samples.find((s) => s.name === 'weird')?.labels['label'], 'a "quoted" \\ value');
  assert.equal(samples.find((s) => s.labels['le'] === '+Inf')?.value, 4);
});

test('per mode: invocations of every function and outcome, latency sum, count and buckets', () => {
  const byMode = figuresByMode(parsePrometheus(TEXT));
  const f = byMode.get('faasnap')!;
  assert.equal(f.invocations, 4);
  assert.equal(f.latencyCount, 4);
  assert.equal(f.latencySum, 0.5);
  assert.deepEqual(
    f.buckets.map((b) => b.le),
    [0.01, 0.1, Infinity],
  );
  assert.equal(byMode.get('reap')!.invocations, 2);
  assert.equal(phaseMeans(parsePrometheus(TEXT)).get('reap')!.get('restore'), 0.015);
});

test('quantiles interpolate within the bucket that holds them', () => {
  const buckets = [
    { le: 0.01, count: 1 },
    { le: 0.1, count: 3 },
    { le: Infinity, count: 4 },
  ];
  assert.equal(quantile(0.25, buckets), 0.01);
  assert.ok(Math.abs(quantile(0.5, buckets)! - 0.055) < 1e-12);
  // Past the last finite bound: that bound.
  assert.equal(quantile(0.99, buckets), 0.1);
  assert.equal(quantile(0.5, []), undefined);
  assert.equal(quantile(0.5, [{ le: Infinity, count: 0 }]), undefined);
});
