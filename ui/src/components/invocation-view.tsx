// One invocation: outcome, result or error, phase timings, and the waterfall of its trace.

import { usePoll } from '../poll.js';
import { ms, time } from '../format.js';
import type { InvocationT, TraceT } from '../types.js';
import { ErrorBox } from './error-box.js';
import { JsonView } from './json-view.js';
import { StateBadge } from './state-badge.js';
import { Waterfall } from './waterfall.js';
import { errorOfBody } from '../api.js';

export function InvocationView({ inv }: { inv: InvocationT }) {
  // A finished trace does not change: fetched once (a long interval), a running one followed.
  const trace = usePoll<TraceT>(
    `/traces/${inv.traceId}`,
    inv.status === 'running' ? 1000 : 3_600_000,
  );
  return (
    <div class="invocation" aria-label="invocation" data-invocation={inv.id}>
      <div class="row">
        <StateBadge state={inv.status} />
        <span>
          <code>{inv.id}</code> · mode <strong>{inv.mode}</strong> · {ms(inv.durationMs)} ·{' '}
          {time(inv.startedAt)}
          {inv.snapshot && (
            <>
              {' '}
              · snapshot <code>{inv.snapshot}</code>
            </>
          )}
        </span>
      </div>
      {inv.error && <ErrorBox error={errorOfBody(inv.error)} />}
      {inv.status === 'succeeded' && (
        <>
          <h4>Result</h4>
          <JsonView value={inv.result} label="result" />
        </>
      )}
      <h4>Waterfall</h4>
      <ErrorBox error={trace.error} />
      {trace.data ? (
        <Waterfall trace={trace.data} />
      ) : (
        !trace.error && <p class="muted">loading trace…</p>
      )}
    </div>
  );
}
