// Snapshots with their inspection data: sizes, non-zero regions, the FaaSnap loading set and its
// working-set groups, the REAP working set, page-cache residency; and the page-cache controls.

import { useState } from 'preact/hooks';
import { api, asApiError, type ApiError } from '../api.js';
import { ErrorBox } from '../components/error-box.js';
import { StateBadge } from '../components/state-badge.js';
import { bytes, percent, time } from '../format.js';
import { usePoll } from '../poll.js';
import { href } from '../router.js';
import type { SnapshotInspectT, SnapshotT } from '../types.js';

export function SnapshotsPage({ id }: { id: string | undefined }) {
  const snaps = usePoll<SnapshotT[]>('/snapshots', 2000);
  return (
    <section>
      <h2>Snapshots</h2>
      <ErrorBox error={snaps.error} />
      {snaps.data && snaps.data.length === 0 && (
        <p class="muted">No snapshots: deploying a function takes them.</p>
      )}
      {snaps.data && snaps.data.length > 0 && (
        <table class="list" aria-label="snapshots">
          <thead>
            <tr>
              <th>snapshot</th>
              <th>function</th>
              <th>status</th>
              <th>kind</th>
              <th class="num">memory</th>
              <th>recorded</th>
              <th>page cache</th>
              <th>created</th>
            </tr>
          </thead>
          <tbody>
            {snaps.data.map((s) => (
              <tr key={s.id} class={s.id === id ? 'selected' : ''}>
                <td>
                  <a href={href({ page: 'snapshots', id: s.id })}>{s.id}</a>
                </td>
                <td>
                  <a href={href({ page: 'function', name: s.function })}>{s.function}</a>
                </td>
                <td>
                  <StateBadge state={s.status} />
                </td>
                <td>{s.kind}</td>
                <td class="num">{bytes(s.memoryBytes)}</td>
                <td>
                  {[s.recorded.faasnap && 'faasnap', s.recorded.reap && 'reap']
                    .filter(Boolean)
                    .join(', ') || '–'}
                </td>
                <td>{s.cacheState}</td>
                <td>{time(s.createdAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {id && <SnapshotInspection id={id} onChanged={snaps.refresh} key={id} />}
    </section>
  );
}

function SnapshotInspection({ id, onChanged }: { id: string; onChanged: () => void }) {
  // Residency changes as the kernel evicts or loads pages: followed every few seconds.
  const inspect = usePoll<SnapshotInspectT>(`/snapshots/${encodeURIComponent(id)}/inspect`, 5000);
  const [error, setError] = useState<ApiError>();
  const setCache = async (state: 'dropped' | 'loaded') => {
    setError(undefined);
    try {
      await api('PUT', `/snapshots/${encodeURIComponent(id)}/cache`, { state });
    } catch (e) {
      setError(asApiError(e));
    }
    inspect.refresh();
    onChanged();
  };
  const d = inspect.data;
  return (
    <div class="card" aria-label="snapshot inspection">
      <h3>
        Inspect <code>{id}</code>
      </h3>
      <ErrorBox error={inspect.error} />
      {d && (
        <>
          <dl class="facts">
            <dt>guest memory</dt>
            <dd>{bytes(d.memoryBytes)}</dd>
            <dt>non-zero</dt>
            <dd>
              {bytes(d.nonZero.bytes)} in {d.nonZero.regions} regions (
              {percent(d.nonZero.bytes / Math.max(1, d.memoryBytes))})
            </dd>
            <dt>page-cache residency</dt>
            <dd>
              <Meter fraction={d.residentFraction} /> {percent(d.residentFraction)}
            </dd>
            <dt>loading set</dt>
            <dd>
              {d.loadingSet
                ? `${bytes(d.loadingSet.bytes)} in ${d.loadingSet.regions} regions, ${d.loadingSet.scans} scans`
                : 'not recorded'}
            </dd>
            <dt>REAP working set</dt>
            <dd>{d.reap ? `${d.reap.pages} pages, ${bytes(d.reap.bytes)}` : 'not recorded'}</dd>
            <dt>CPU template</dt>
            <dd>{d.cpuTemplate}</dd>
            <dt>checksum</dt>
            <dd>
              <code>{d.checksum}</code>
            </dd>
          </dl>
          {d.loadingSet && d.loadingSet.groups.length > 0 && (
            <>
              <h4>Working-set groups (loading order)</h4>
              <table class="list" aria-label="working-set groups">
                <thead>
                  <tr>
                    <th>group</th>
                    <th class="num">bytes</th>
                    <th>share of the loading set</th>
                  </tr>
                </thead>
                <tbody>
                  {d.loadingSet.groups.map((g) => (
                    <tr key={g.group}>
                      <td>{g.group}</td>
                      <td class="num">{bytes(g.bytes)}</td>
                      <td>
                        <Meter fraction={g.bytes / Math.max(1, d.loadingSet!.bytes)} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )}
          <div class="row">
            <button type="button" onClick={() => void setCache('dropped')}>
              Drop from page cache
            </button>
            <button type="button" onClick={() => void setCache('loaded')}>
              Load into page cache
            </button>
          </div>
        </>
      )}
      <ErrorBox error={error} onDismiss={() => setError(undefined)} />
    </div>
  );
}

function Meter({ fraction }: { fraction: number }) {
  const f = Math.min(1, Math.max(0, fraction));
  return (
    <span class="meter" role="meter" aria-valuenow={f} aria-valuemin={0} aria-valuemax={1}>
      <span style={{ width: `${f * 100}%` }} />
    </span>
  );
}
